//! API keys.

use async_trait::async_trait;
use rwa_domain::api_key::{ApiKey, KeyDigest, NewApiKey, StoredCredential};
use rwa_domain::audit::AuditRecord;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::ports::ApiKeyRepository;
use rwa_domain::{Actor, ApiKeyId, OrgId, RepoError, RepoResult};
use serde_json::json;

use crate::Store;
use crate::connect::{in_write_tx, on_reader, on_writer};
use crate::error::DbResult;

/// The audit record of a key's creation (never the secret, nor its digest).
pub(crate) fn created_record(key: &NewApiKey) -> AuditRecord {
    AuditRecord {
        action: "api_key.created",
        target: format!("api_key:{}", key.id),
        data: json!({ "role": key.role.as_str(), "prefix": key.prefix, "label": key.label }),
    }
}

#[async_trait]
impl ApiKeyRepository for Store {
    async fn create(&self, org: OrgId, key: &NewApiKey, actor: &Actor) -> RepoResult<ApiKey> {
        in_write_tx!(self, |tx, sql| {
            let row = sql::insert_key(&mut tx, org.as_uuid(), key).await.db()?;
            sql::append_audit(&mut tx, org, actor, &created_record(key))
                .await
                .db()?;
            ApiKey::try_from(row)
        })
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<ApiKey>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_keys(pool, org.as_uuid(), page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let keys = rows
            .into_iter()
            .map(ApiKey::try_from)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(keys, page.limit, |k| k.id.as_uuid()))
    }

    async fn get(&self, org: OrgId, id: ApiKeyId) -> RepoResult<ApiKey> {
        let row = on_reader!(self, |pool, sql| {
            sql::get_key(pool, org.as_uuid(), id.as_uuid()).await.db()?
        });
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn revoke(&self, org: OrgId, id: ApiKeyId, actor: &Actor) -> RepoResult<ApiKey> {
        in_write_tx!(self, |tx, sql| {
            let row = sql::revoke_key(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let key = ApiKey::try_from(row)?;
            let record = AuditRecord {
                action: "api_key.revoked",
                target: format!("api_key:{id}"),
                data: json!({ "prefix": key.prefix }),
            };
            sql::append_audit(&mut tx, org, actor, &record).await.db()?;
            Ok::<_, RepoError>(key)
        })
    }

    async fn system_find_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> RepoResult<Option<StoredCredential>> {
        let row = on_reader!(self, |pool, sql| {
            sql::find_key_by_digest(pool, digest.as_hex()).await.db()?
        });
        row.map(|r| r.into_credential()).transpose()
    }

    async fn system_touch_last_used(&self, id: ApiKeyId) -> RepoResult<()> {
        on_writer!(self, |pool, sql| sql::touch_key(pool, id.as_uuid())
            .await
            .db())
    }
}
