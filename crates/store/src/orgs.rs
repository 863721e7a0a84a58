//! Organizations.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::api_key::NewApiKey;
use rwa_domain::audit::AuditRecord;
use rwa_domain::org::{OrgName, Organization};
use rwa_domain::ports::OrgRepository;
use rwa_domain::session::FingerprintMode;
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
    session_fingerprint: String,
    rate_tier: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<OrgRow> for Organization {
    type Error = RepoError;

    fn try_from(r: OrgRow) -> RepoResult<Self> {
        Ok(Organization {
            id: OrgId::from_uuid(r.id),
            name: r.name,
            session_fingerprint: r.session_fingerprint.parse()?,
            rate_tier: r.rate_tier,
            created_at: r.created_at,
        })
    }
}

#[async_trait]
impl OrgRepository for Store {
    async fn get(&self, org: OrgId) -> RepoResult<Organization> {
        let row = on_reader!(self, |pool, sql| sql::get_org(pool, org.as_uuid())
            .await
            .db()?);
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn set_session_fingerprint(
        &self,
        org: OrgId,
        mode: FingerprintMode,
        actor: &Actor,
    ) -> RepoResult<Organization> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit| {
            let row = sql::set_fingerprint(&mut tx, org.as_uuid(), mode.as_str())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let record = AuditRecord {
                action: "org.session_fingerprint_changed",
                target: format!("org:{org}"),
                data: json!({ "session_fingerprint": mode.as_str() }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Organization::try_from(row)
        })
    }

    async fn system_set_rate_tier(
        &self,
        org: OrgId,
        tier: Option<&str>,
        actor: &Actor,
    ) -> RepoResult<Organization> {
        let (tier, actor) = (tier.map(str::to_owned), actor.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let row = sql::set_rate_tier(&mut tx, org.as_uuid(), tier.as_deref())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let record = AuditRecord {
                action: "org.rate_tier_changed",
                target: format!("org:{org}"),
                data: json!({ "rate_tier": tier }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Organization::try_from(row)
        })
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
            Organization::try_from(org)
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
             RETURNING id, name, session_fingerprint, rate_tier, created_at",
        )
        .bind(id)
        .bind(name)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn get_org(pool: &Pool, id: Uuid) -> sqlx::Result<Option<OrgRow>> {
        query_as("SELECT id, name, session_fingerprint, rate_tier, created_at FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_optional(pool)
            .await
    }

    pub(crate) async fn set_rate_tier(
        c: &mut Conn,
        id: Uuid,
        tier: Option<&str>,
    ) -> sqlx::Result<Option<OrgRow>> {
        query_as(
            "UPDATE organizations SET rate_tier = $2 WHERE id = $1 \
             RETURNING id, name, session_fingerprint, rate_tier, created_at",
        )
        .bind(id)
        .bind(tier)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn set_fingerprint(
        c: &mut Conn,
        id: Uuid,
        mode: &str,
    ) -> sqlx::Result<Option<OrgRow>> {
        query_as(
            "UPDATE organizations SET session_fingerprint = $2 WHERE id = $1 \
             RETURNING id, name, session_fingerprint, rate_tier, created_at",
        )
        .bind(id)
        .bind(mode)
        .fetch_optional(c)
        .await
    }
}
