//! API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::api_key::{ApiKey, KeyDigest, NewApiKey, StoredCredential};
use rwa_domain::audit::AuditRecord;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::ports::ApiKeyRepository;
use rwa_domain::{Actor, ApiKeyId, OrgId, RepoError, RepoResult};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader, on_writer};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct ApiKeyRow {
    id: Uuid,
    org_id: Uuid,
    role: String,
    label: Option<String>,
    prefix: String,
    digest: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    user_id: Option<Uuid>,
    allowed_cidrs: Option<String>,
    cert_subject: Option<String>,
}

impl ApiKeyRow {
    fn into_credential(self) -> Result<StoredCredential, RepoError> {
        let digest = KeyDigest::from_stored(self.digest.clone());
        Ok(StoredCredential {
            key: self.try_into()?,
            digest,
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = RepoError;

    fn try_from(r: ApiKeyRow) -> Result<Self, RepoError> {
        Ok(ApiKey {
            id: ApiKeyId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            role: r.role.parse()?,
            label: r.label,
            prefix: r.prefix,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
            user_id: r.user_id.map(rwa_domain::UserId::from_uuid),
            allowed_cidrs: rwa_domain::network::AllowedNetworks::from_stored(
                r.allowed_cidrs.as_deref(),
            ),
            cert_subject: r.cert_subject,
        })
    }
}

/// The audit record of a key's creation (never the secret, nor its digest).
pub(crate) fn created_record(key: &NewApiKey) -> AuditRecord {
    AuditRecord {
        action: "api_key.created",
        target: format!("api_key:{}", key.id),
        data: json!({
            "role": key.role.as_str(),
            "prefix": key.prefix,
            "label": key.label,
            "acts_as_user": key.user.map(|u| u.to_string()),
            "allowed_cidrs": key.allowed_cidrs.to_strings(),
            "cert_subject": key.cert_subject,
        }),
    }
}

#[async_trait]
impl ApiKeyRepository for Store {
    async fn create(&self, org: OrgId, key: &NewApiKey, actor: &Actor) -> RepoResult<ApiKey> {
        // The unit may run on the SQLite writer's task: it owns its inputs.
        let (key, actor) = (key.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let row = sql::insert_key(&mut tx, org.as_uuid(), &key).await.db()?;
            audit::append_audit(&mut tx, org, &actor, &created_record(&key))
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
        let actor = actor.clone();
        let revoked: RepoResult<(ApiKey, String)> = in_write_tx!(self, |tx, sql, audit| {
            let row = sql::revoke_key(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let digest = row.digest.clone();
            // Other processes drop their cached copy when this commits.
            sql::notify(&mut tx, crate::key_cache::CHANNEL, &digest)
                .await
                .db()?;
            let key = ApiKey::try_from(row)?;
            let record = AuditRecord {
                action: "api_key.revoked",
                target: format!("api_key:{id}"),
                data: json!({ "prefix": key.prefix }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Ok::<_, RepoError>((key, digest))
        });
        let (key, digest) = revoked?;
        self.key_cache.invalidate(&digest);
        Ok(key)
    }

    async fn system_find_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> RepoResult<Option<StoredCredential>> {
        if let Some(cached) = self.key_cache.get(digest.as_hex()) {
            return Ok(Some(cached));
        }
        if let crate::connect::Pools::Postgres(pool) = &self.pools {
            let cache = self.key_cache.clone();
            self.key_listener
                .get_or_init(|| tokio::spawn(crate::key_cache::listen(pool.clone(), cache)));
        }
        let generation = self.key_cache.generation();
        let row = on_reader!(self, |pool, sql| {
            sql::find_key_by_digest(pool, digest.as_hex()).await.db()?
        });
        let found = row.map(|r| r.into_credential()).transpose()?;
        if let Some(credential) = &found {
            self.key_cache
                .insert(digest.as_hex(), credential, generation);
        }
        Ok(found)
    }

    async fn system_find_by_cert_subject(&self, subject: &str) -> RepoResult<Option<ApiKey>> {
        // Not cached: a certificate's session is verified once per
        // connection, and the row's revocation must be read each time.
        let row = on_reader!(self, |pool, sql| {
            sql::find_key_by_cert_subject(pool, subject).await.db()?
        });
        row.map(ApiKey::try_from).transpose()
    }

    async fn system_touch_last_used(&self, id: ApiKeyId) -> RepoResult<()> {
        let touched = on_writer!(self, |pool, sql| sql::touch_key(pool, id.as_uuid())
            .await
            .db()?);
        if let Some((digest, at)) = touched {
            self.key_cache.touched(&digest, at);
        }
        Ok(())
    }
}

crate::dialect::statements! {
    use sqlx::{query, query_as};
    use uuid::Uuid;

    use super::ApiKeyRow;

    pub(crate) async fn insert_key(
        c: &mut Conn,
        org: Uuid,
        key: &rwa_domain::api_key::NewApiKey,
    ) -> sqlx::Result<ApiKeyRow> {
        query_as(
            "INSERT INTO api_keys (id, org_id, role, label, prefix, digest, user_id, allowed_cidrs, cert_subject) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject",
        )
        .bind(key.id.as_uuid())
        .bind(org)
        .bind(key.role.as_str())
        .bind(key.label.as_deref())
        .bind(&key.prefix)
        .bind(key.digest.as_hex())
        .bind(key.user.map(|u| u.as_uuid()))
        .bind(key.allowed_cidrs.to_stored())
        .bind(key.cert_subject.as_deref())
        .fetch_one(c)
        .await
    }

    pub(crate) async fn list_keys(
        pool: &Pool,
        org: Uuid,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<ApiKeyRow>> {
        query_as(
            "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject \
             FROM api_keys WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(org)
        .bind(after)
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn get_key(
        pool: &Pool,
        org: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<ApiKeyRow>> {
        query_as(
            "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject \
             FROM api_keys WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// Sets `revoked_at` once; a second revocation keeps the first time.
    pub(crate) async fn revoke_key(
        c: &mut Conn,
        org: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<ApiKeyRow>> {
        query_as(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ",
            now!(),
            ") WHERE org_id = $1 AND id = $2 \
             RETURNING id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn find_key_by_digest(
        pool: &Pool,
        digest: &str,
    ) -> sqlx::Result<Option<ApiKeyRow>> {
        query_as(
            "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject \
             FROM api_keys WHERE digest = $1",
        )
        .bind(digest)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn find_key_by_cert_subject(
        pool: &Pool,
        subject: &str,
    ) -> sqlx::Result<Option<ApiKeyRow>> {
        query_as(
            "SELECT id, org_id, role, label, prefix, digest, created_at, last_used_at, revoked_at, user_id, allowed_cidrs, cert_subject \
             FROM api_keys WHERE cert_subject = $1",
        )
        .bind(subject)
        .fetch_optional(pool)
        .await
    }

    /// Records a use; returns the key's digest and the time written.
    pub(crate) async fn touch_key(
        pool: &Pool,
        id: Uuid,
    ) -> sqlx::Result<Option<(String, chrono::DateTime<chrono::Utc>)>> {
        query_as(concat!(
            "UPDATE api_keys SET last_used_at = ",
            now!(),
            " WHERE id = $1 RETURNING digest, last_used_at"
        ))
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    /// Announces `payload` on `channel` to every process when the transaction commits.
    pub(crate) async fn notify(c: &mut Conn, channel: &str, payload: &str) -> sqlx::Result<()> {
        query(notify!()).bind(channel).bind(payload).execute(c).await.map(|_| ())
    }
}
