//! Organizations.

use async_trait::async_trait;
use rwa_domain::api_key::NewApiKey;
use rwa_domain::audit::AuditRecord;
use rwa_domain::org::{OrgName, Organization};
use rwa_domain::ports::OrgRepository;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult};
use serde_json::json;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

#[async_trait]
impl OrgRepository for Store {
    async fn get(&self, org: OrgId) -> RepoResult<Organization> {
        let row = on_reader!(self, |pool, sql| sql::get_org(pool, org.as_uuid())
            .await
            .db()?);
        row.map(Organization::from).ok_or(RepoError::NotFound)
    }

    async fn system_create_with_key(
        &self,
        name: &OrgName,
        first_key: &NewApiKey,
        actor: &Actor,
    ) -> RepoResult<Organization> {
        let id = OrgId::new();
        in_write_tx!(self, |tx, sql| {
            let org = sql::insert_org(&mut tx, id.as_uuid(), name.as_str())
                .await
                .db()?;
            let key = sql::insert_key(&mut tx, id.as_uuid(), first_key)
                .await
                .db()?;
            drop(key);
            let created = AuditRecord {
                action: "org.created",
                target: format!("org:{id}"),
                data: json!({ "name": name.as_str() }),
            };
            sql::append_audit(&mut tx, id, actor, &created).await.db()?;
            let key_created = crate::keys::created_record(first_key);
            sql::append_audit(&mut tx, id, actor, &key_created)
                .await
                .db()?;
            Ok::<_, RepoError>(Organization::from(org))
        })
    }
}
