//! Organizations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::api_key::NewApiKey;
use rwa_domain::audit::AuditRecord;
use rwa_domain::org::{OrgName, Organization};
use rwa_domain::ports::OrgRepository;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct OrgRow {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<OrgRow> for Organization {
    fn from(r: OrgRow) -> Self {
        Organization {
            id: OrgId::from_uuid(r.id),
            name: r.name,
            created_at: r.created_at,
        }
    }
}

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
        let (name, first_key, actor) = (name.clone(), first_key.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, keys, audit| {
            let org = sql::insert_org(&mut tx, id.as_uuid(), name.as_str())
                .await
                .db()?;
            let key = keys::insert_key(&mut tx, id.as_uuid(), &first_key)
                .await
                .db()?;
            drop(key);
            let created = AuditRecord {
                action: "org.created",
                target: format!("org:{id}"),
                data: json!({ "name": name.as_str() }),
            };
            audit::append_audit(&mut tx, id, &actor, &created)
                .await
                .db()?;
            let key_created = crate::keys::created_record(&first_key);
            audit::append_audit(&mut tx, id, &actor, &key_created)
                .await
                .db()?;
            Ok::<_, RepoError>(Organization::from(org))
        })
    }
}

crate::dialect::statements! {
    use sqlx::query_as;
    use uuid::Uuid;

    use super::OrgRow;

    pub(crate) async fn insert_org(c: &mut Conn, id: Uuid, name: &str) -> sqlx::Result<OrgRow> {
        query_as(
            "INSERT INTO organizations (id, name) VALUES ($1, $2) \
             RETURNING id, name, created_at",
        )
        .bind(id)
        .bind(name)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn get_org(pool: &Pool, id: Uuid) -> sqlx::Result<Option<OrgRow>> {
        query_as("SELECT id, name, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
    }
}
