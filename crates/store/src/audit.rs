//! The audit trail: its statements, including the append every repository
//! write calls inside its own transaction (`append_audit`), the building of
//! entries, and the [`AuditTrail`] port's reads and verification.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::{
    AuditEntry, AuditRecord, ChainVerification, GENESIS_HASH, HashInput, chain_hash, verify_run,
};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::ports::AuditTrail;
use rwa_domain::{Actor, AuditId, OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::on_reader;
use crate::error::DbResult;

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
struct HeadRow {
    seq: i64,
    hash: String,
    now: DateTime<Utc>,
}

/// Builds the entry that follows the locked chain head.
fn next_entry(head: HeadRow, org: OrgId, actor: &Actor, record: &AuditRecord) -> AuditEntry {
    let seq = head.seq + 1;
    let id = AuditId::new();
    let actor = actor.to_string();
    let data = record.data.to_string();
    // Stored at microsecond precision on PostgreSQL: truncate so the hash covers
    // exactly what is stored.
    let created_at =
        chrono::DurationRound::duration_trunc(head.now, chrono::TimeDelta::microseconds(1))
            .unwrap_or(head.now);
    let hash = chain_hash(
        &head.hash,
        &HashInput {
            seq,
            id,
            org_id: org,
            actor: &actor,
            action: record.action,
            target: &record.target,
            data: &data,
            created_at,
        },
    );
    AuditEntry {
        seq,
        id,
        org_id: org,
        actor,
        action: record.action.to_owned(),
        target: record.target.clone(),
        data,
        created_at,
        prev_hash: head.hash,
        hash,
    }
}

/// Entries read per round trip while verifying.
const VERIFY_BATCH: i64 = 1_000;

#[async_trait]
impl AuditTrail for Store {
    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<AuditEntry>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_audit(pool, org.as_uuid(), page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let entries = rows.into_iter().map(AuditEntry::from).collect();
        Ok(Page::from_overfetch(entries, page.limit, |e| {
            e.id.as_uuid()
        }))
    }

    async fn system_verify(&self) -> RepoResult<ChainVerification> {
        let (mut prev_hash, mut prev_seq) = (GENESIS_HASH.to_owned(), 0_i64);
        let mut entries = 0_u64;
        loop {
            let rows = on_reader!(self, |pool, sql| {
                sql::audit_run(pool, prev_seq, VERIFY_BATCH).await.db()?
            });
            if rows.is_empty() {
                break;
            }
            let run: Vec<AuditEntry> = rows.into_iter().map(AuditEntry::from).collect();
            let before = prev_seq;
            if let Some(broken) = verify_run(&run, &mut prev_hash, &mut prev_seq) {
                entries += (broken.seq - before - 1).max(0) as u64;
                return Ok(ChainVerification {
                    entries,
                    first_broken: Some(broken),
                });
            }
            entries += run.len() as u64;
        }
        // The head must point at the last entry: a truncated tail is tampering too.
        let (head_seq, head_hash) =
            on_reader!(self, |pool, sql| sql::audit_head(pool).await.db()?);
        let first_broken = (head_seq != prev_seq || head_hash != prev_hash).then(|| {
            rwa_domain::audit::BrokenLink {
                seq: prev_seq + 1,
                reason: format!(
                    "chain ends at {prev_seq} but its head records {head_seq}: entries were removed"
                ),
            }
        });
        Ok(ChainVerification {
            entries,
            first_broken,
        })
    }
}

impl From<crate::StoreError> for RepoError {
    fn from(e: crate::StoreError) -> Self {
        RepoError::Unavailable(e.to_string())
    }
}

crate::dialect::statements! {
    use rwa_domain::audit::{AuditEntry, AuditRecord};
    use rwa_domain::{Actor, OrgId};
    use sqlx::{query, query_as};
    use uuid::Uuid;

    use super::{AuditRow, HeadRow};

    async fn lock_audit_head(c: &mut Conn) -> sqlx::Result<HeadRow> {
        query_as(concat!(
            "SELECT seq, hash, ",
            now!(),
            " AS now FROM audit_head WHERE id = 1 ",
            lock!()
        ))
        .fetch_one(c)
        .await
    }

    /// Appends one entry to the audit chain inside the caller's transaction.
    pub(crate) async fn append_audit(
        c: &mut Conn,
        org: OrgId,
        actor: &Actor,
        record: &AuditRecord,
    ) -> sqlx::Result<()> {
        let head = lock_audit_head(&mut *c).await?;
        let entry = super::next_entry(head, org, actor, record);
        insert_audit(c, &entry).await
    }

    async fn insert_audit(c: &mut Conn, e: &AuditEntry) -> sqlx::Result<()> {
        query(
            "INSERT INTO audit_log \
             (seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.seq)
        .bind(e.id.as_uuid())
        .bind(e.org_id.as_uuid())
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.target)
        .bind(&e.data)
        .bind(e.created_at)
        .bind(&e.prev_hash)
        .bind(&e.hash)
        .execute(&mut *c)
        .await?;
        query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(e.seq)
            .bind(&e.hash)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn list_audit(
        pool: &Pool,
        org: Uuid,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<AuditRow>> {
        query_as(
            "SELECT seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash \
             FROM audit_log WHERE org_id = $1 \
             AND ($2 IS NULL OR seq > (SELECT seq FROM audit_log WHERE id = $2)) \
             ORDER BY seq LIMIT $3",
        )
        .bind(org)
        .bind(after)
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn audit_run(
        pool: &Pool,
        after_seq: i64,
        fetch: i64,
    ) -> sqlx::Result<Vec<AuditRow>> {
        query_as(
            "SELECT seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash \
             FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn audit_head(pool: &Pool) -> sqlx::Result<(i64, String)> {
        query_as("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(pool)
            .await
    }
}
