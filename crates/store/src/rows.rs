//! Row shapes shared by both backends, and their conversion to domain records.

use chrono::{DateTime, Utc};
use rwa_domain::api_key::{ApiKey, KeyDigest, StoredCredential};
use rwa_domain::audit::AuditEntry;
use rwa_domain::org::Organization;
use rwa_domain::{ApiKeyId, AuditId, OrgId, RepoError};
use uuid::Uuid;

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
}

impl ApiKeyRow {
    pub(crate) fn into_credential(self) -> Result<StoredCredential, RepoError> {
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
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    seq: i64,
    id: Uuid,
    org_id: Uuid,
    actor: String,
    action: String,
    target: String,
    data: String,
    created_at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            seq: r.seq,
            id: AuditId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            actor: r.actor,
            action: r.action,
            target: r.target,
            data: r.data,
            created_at: r.created_at,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The chain head read under lock before an append.
#[derive(sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) now: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    id: Uuid,
    kind: String,
    org_id: Uuid,
    created_at: DateTime<Utc>,
    data: String,
}

impl TryFrom<EventRow> for rwa_domain::event::Event {
    type Error = rwa_domain::RepoError;

    fn try_from(r: EventRow) -> Result<Self, Self::Error> {
        Ok(rwa_domain::event::Event {
            seq: r.seq,
            id: rwa_domain::EventId::from_uuid(r.id),
            kind: r.kind,
            org_id: OrgId::from_uuid(r.org_id),
            created_at: r.created_at,
            data: serde_json::from_str(&r.data).map_err(|e| {
                rwa_domain::RepoError::Internal(format!("stored event data is not JSON: {e}"))
            })?,
        })
    }
}
