//! Port traits implemented by adapters (today: `rwa-store`). Methods named
//! `system_*` cross organizations and are for the service's own parts (CLI,
//! authentication, workers); every other method is scoped to the caller's
//! organization and answers [`RepoError::NotFound`] for another organization's ids.

use async_trait::async_trait;

use crate::api_key::{ApiKey, KeyDigest, NewApiKey, StoredCredential};
use crate::audit::{AuditEntry, ChainVerification};
use crate::event::Event;
use crate::org::{OrgName, Organization};
use crate::page::{Page, PageRequest};
use crate::{Actor, ApiKeyId, OrgId, RepoError, RepoResult};

/// Organizations.
#[async_trait]
pub trait OrgRepository: Send + Sync {
    /// The caller's own organization.
    async fn get(&self, org: OrgId) -> RepoResult<Organization>;

    /// Sets what a session's changed fingerprint does; audited.
    async fn set_session_fingerprint(
        &self,
        org: OrgId,
        mode: crate::session::FingerprintMode,
        actor: &Actor,
    ) -> RepoResult<Organization>;

    /// Sets the organization's rate-limit tier (`None`: the default); done
    /// by the platform's operator, not by the organization; audited.
    async fn system_set_rate_tier(
        &self,
        org: OrgId,
        tier: Option<&str>,
        actor: &Actor,
    ) -> RepoResult<Organization>;

    /// Creates an organization together with its first (admin) key, atomically.
    async fn system_create_with_key(
        &self,
        name: &OrgName,
        first_key: &NewApiKey,
        actor: &Actor,
    ) -> RepoResult<Organization>;
}

/// API keys.
#[async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a new key for `org`; [`RepoError::NotFound`] if `org` does not exist.
    async fn create(&self, org: OrgId, key: &NewApiKey, actor: &Actor) -> RepoResult<ApiKey>;

    /// Keys of `org`, revoked ones included, in creation order.
    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<ApiKey>>;

    /// One key of `org`.
    async fn get(&self, org: OrgId, id: ApiKeyId) -> RepoResult<ApiKey>;

    /// Revokes a key of `org`. Revoking an already revoked key returns it unchanged.
    async fn revoke(&self, org: OrgId, id: ApiKeyId, actor: &Actor) -> RepoResult<ApiKey>;

    /// Finds a key by the digest of a presented secret, whatever its organization.
    async fn system_find_by_digest(
        &self,
        digest: &KeyDigest,
    ) -> RepoResult<Option<StoredCredential>>;

    /// Finds the key bound to a verified client certificate's subject,
    /// whatever its organization.
    async fn system_find_by_cert_subject(&self, subject: &str) -> RepoResult<Option<ApiKey>>;

    /// Records that a key was just used.
    async fn system_touch_last_used(&self, id: ApiKeyId) -> RepoResult<()>;
}

/// The hash-chained audit trail.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Entries of `org` that `filter` admits, oldest first.
    async fn list(
        &self,
        org: OrgId,
        filter: &crate::audit::AuditFilter,
        page: PageRequest,
    ) -> RepoResult<Page<AuditEntry>>;

    /// Appends a security event that changes nothing else (a refused login,
    /// a refused role), in its own transaction.
    async fn record(
        &self,
        org: OrgId,
        actor: &Actor,
        record: &crate::audit::AuditRecord,
    ) -> RepoResult<()>;

    /// Walks the whole chain and reports the first broken link.
    async fn system_verify(&self) -> RepoResult<ChainVerification>;
}

/// Domain events, in commit order.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Events of `org` with `seq > after` (of the types `filter` admits),
    /// at most `limit`, in `seq` order.
    async fn list(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
        filter: Option<&crate::event::TypeFilter>,
    ) -> RepoResult<Vec<Event>>;

    /// Numbered events of `org` after `after`, oldest first, without
    /// numbering pending ones first: for the notification outboxes, which
    /// read constantly while the sequencer numbers on its own.
    async fn system_numbered_after(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> RepoResult<Vec<Event>>;

    /// The numbered event `seq` of `org`.
    async fn system_numbered(&self, org: OrgId, seq: i64) -> RepoResult<Option<Event>>;

    /// The highest `seq` numbered, over every organization (0: none).
    async fn system_last_numbered(&self) -> RepoResult<i64>;

    /// Numbered events of every organization after `after`, oldest first:
    /// for the event stream, which publishes them all from one cursor.
    async fn system_all_numbered_after(&self, after: i64, limit: u32) -> RepoResult<Vec<Event>>;
}

/// Connection pool figures, exported as metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStats {
    /// Pool name (`primary`, `sqlite_writer`, ...).
    pub name: &'static str,
    /// Open connections.
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
}

/// Liveness of the database, for health checks and metrics.
#[async_trait]
pub trait DatabaseProbe: Send + Sync {
    /// Round-trips a trivial query.
    async fn ping(&self) -> RepoResult<()>;

    /// Current pool figures.
    fn pool_stats(&self) -> Vec<PoolStats>;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
}

impl From<crate::ValidationError> for RepoError {
    fn from(e: crate::ValidationError) -> Self {
        RepoError::Internal(format!("stored value failed validation: {e}"))
    }
}

/// The right to do one process's job across processes (index a chain,
/// deliver notifications), held by one process at a time.
#[async_trait]
pub trait Lease: Send {
    /// Whether it is still held (the database connection holding it may
    /// have been cut): the holder stops writing when it is not.
    async fn alive(&mut self) -> bool;
}
