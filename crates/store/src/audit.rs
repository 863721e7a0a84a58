//! The audit trail: its statements, including the append every repository
//! write calls inside its own transaction (`append_audit`, one unstamped
//! insert), the chaining of pending entries that the sequencer
//! (`sequencer.rs`) runs after commit, and the [`AuditTrail`] port's reads and
//! verification, which see stamped entries only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::{
    AuditEntry, AuditFilter, AuditRecord, ChainVerification, GENESIS_HASH, HashInput, chain_hash,
    verify_run,
};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::ports::AuditTrail;
use rwa_domain::{Actor, AuditId, OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
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
    request_id: Option<String>,
    ip: Option<String>,
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
            request_id: r.request_id,
            ip: r.ip,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The chain head, read by the sequencer in its transaction.
#[derive(sqlx::FromRow)]
pub(crate) struct HeadRow {
    seq: i64,
    hash: String,
}

/// An entry appended but not yet stamped, in insertion order.
#[derive(sqlx::FromRow)]
pub(crate) struct PendingRow {
    pos: i64,
    id: Uuid,
    org_id: Uuid,
    actor: String,
    action: String,
    target: String,
    data: String,
    created_at: DateTime<Utc>,
    request_id: Option<String>,
    ip: Option<String>,
}

/// What the sequencer writes into one pending row.
pub(crate) struct Stamp {
    pub(crate) pos: i64,
    pub(crate) seq: i64,
    pub(crate) prev_hash: String,
    pub(crate) hash: String,
}

/// Chains `pending` (in order) after `head`: the stamps to write, and the new
/// head. The hash covers exactly what is stored, `created_at` included, as
/// read back from the database.
pub(crate) fn chain_pending(head: HeadRow, pending: &[PendingRow]) -> (Vec<Stamp>, HeadRow) {
    let (mut seq, mut prev) = (head.seq, head.hash);
    let stamps = pending
        .iter()
        .map(|p| {
            seq += 1;
            let hash = chain_hash(
                &prev,
                &HashInput {
                    seq,
                    id: AuditId::from_uuid(p.id),
                    org_id: OrgId::from_uuid(p.org_id),
                    actor: &p.actor,
                    action: &p.action,
                    target: &p.target,
                    data: &p.data,
                    created_at: p.created_at,
                    request_id: p.request_id.as_deref(),
                    ip: p.ip.as_deref(),
                },
            );
            Stamp {
                pos: p.pos,
                seq,
                prev_hash: std::mem::replace(&mut prev, hash.clone()),
                hash,
            }
        })
        .collect();
    (stamps, HeadRow { seq, hash: prev })
}

/// Entries read per round trip while verifying.
const VERIFY_BATCH: i64 = 1_000;

#[async_trait]
impl AuditTrail for Store {
    async fn list(
        &self,
        org: OrgId,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> RepoResult<Page<AuditEntry>> {
        // Entries committed by this caller are listed: read your writes.
        self.stamp_pending().await?;
        let rows = on_reader!(self, |pool, sql| {
            sql::list_audit(
                pool,
                org.as_uuid(),
                filter,
                page.after,
                i64::from(page.limit) + 1,
            )
            .await
            .db()?
        });
        let entries = rows.into_iter().map(AuditEntry::from).collect();
        Ok(Page::from_overfetch(entries, page.limit, |e| {
            e.id.as_uuid()
        }))
    }

    async fn record(&self, org: OrgId, actor: &Actor, record: &AuditRecord) -> RepoResult<()> {
        let (actor, record) = (actor.clone(), record.clone());
        in_write_tx!(self, |tx, sql| {
            sql::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn system_verify(&self) -> RepoResult<ChainVerification> {
        // Everything committed is chained first, so the walk covers it all.
        self.stamp_pending().await?;
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

/// The columns of [`AuditRow`].
macro_rules! audit_columns {
    () => {
        "seq, id, org_id, actor, action, target, data, created_at, request_id, ip, prev_hash, hash"
    };
}

crate::dialect::statements! {
    use rwa_domain::audit::{AuditFilter, AuditRecord};
    use rwa_domain::{Actor, AuditId, OrgId};
    use sqlx::{query, query_as};
    use uuid::Uuid;

    use super::{AuditRow, HeadRow, PendingRow};

    /// Appends one entry, unstamped, inside the caller's transaction: one
    /// statement and no lock. The sequencer gives it its `seq` and hashes
    /// after commit, so the entry exists exactly when the change does.
    pub(crate) async fn append_audit(
        c: &mut Conn,
        org: OrgId,
        actor: &Actor,
        record: &AuditRecord,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO audit_log (id, org_id, actor, action, target, data, request_id, ip) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(AuditId::new().as_uuid())
        .bind(org.as_uuid())
        .bind(actor.to_string())
        .bind(record.action)
        .bind(&record.target)
        .bind(record.data.to_string())
        .bind(actor.request_id())
        .bind(actor.ip().map(|ip| ip.to_string()))
        .execute(c)
        .await
        .map(|_| ())
    }

    /// The chain head, locked on PostgreSQL (the sequencer's advisory lock
    /// already excludes other stampers; the row lock guards against anything else).
    pub(crate) async fn lock_audit_head(c: &mut Conn) -> sqlx::Result<HeadRow> {
        query_as(concat!("SELECT seq, hash FROM audit_head WHERE id = 1 ", lock!()))
            .fetch_one(c)
            .await
    }

    /// Up to `limit` unstamped entries, oldest insertion first.
    pub(crate) async fn pending_audit(c: &mut Conn, limit: i64) -> sqlx::Result<Vec<PendingRow>> {
        query_as(
            "SELECT pos, id, org_id, actor, action, target, data, created_at, request_id, ip \
             FROM audit_log WHERE seq IS NULL ORDER BY pos LIMIT $1",
        )
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn set_audit_head(c: &mut Conn, head: &HeadRow) -> sqlx::Result<()> {
        query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
            .bind(head.seq)
            .bind(&head.hash)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// An organization's stamped entries that `filter` admits (an action
    /// ending in `.*` matches its noun), after the entry `after`.
    pub(crate) async fn list_audit(
        pool: &Pool,
        org: Uuid,
        filter: &AuditFilter,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<AuditRow>> {
        let (action, noun) = match filter.action.as_deref() {
            Some(a) => match a.strip_suffix(".*") {
                Some(noun) => (None, Some(format!("{noun}."))),
                None => (Some(a), None),
            },
            None => (None, None),
        };
        query_as(concat!(
            "SELECT ", audit_columns!(), " \
             FROM audit_log WHERE org_id = $1 AND seq IS NOT NULL \
             AND ($2 IS NULL OR seq > (SELECT seq FROM audit_log WHERE id = $2)) \
             AND ($4 IS NULL OR action = $4) \
             AND ($5 IS NULL OR substr(action, 1, length($5)) = $5) \
             AND ($6 IS NULL OR actor = $6) AND ($7 IS NULL OR target = $7) \
             AND ($8 IS NULL OR request_id = $8) \
             AND ($9 IS NULL OR created_at >= $9) AND ($10 IS NULL OR created_at < $10) \
             ORDER BY seq LIMIT $3",
        ))
        .bind(org)
        .bind(after)
        .bind(fetch)
        .bind(action)
        .bind(noun)
        .bind(filter.actor.as_deref())
        .bind(filter.target.as_deref())
        .bind(filter.request_id.as_deref())
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn audit_run(
        pool: &Pool,
        after_seq: i64,
        fetch: i64,
    ) -> sqlx::Result<Vec<AuditRow>> {
        query_as(concat!(
            "SELECT ", audit_columns!(), " FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        ))
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

/// PostgreSQL: the append of one unstamped entry as a common table
/// expression (`audit`), numbered from `$first`, for a unit of work that is
/// one statement; bind it with [`bind_audit_cte`]. The same insert as
/// `append_audit`.
pub(crate) fn append_audit_cte(first: usize) -> String {
    let p: Vec<String> = (first..first + 8).map(|i| format!("${i}")).collect();
    format!(
        "audit AS (INSERT INTO audit_log (id, org_id, actor, action, target, data, request_id, ip) \
         VALUES ({}))",
        p.join(", ")
    )
}

/// Binds the parameters of [`append_audit_cte`].
pub(crate) fn bind_audit_cte<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    org: OrgId,
    actor: &rwa_domain::Actor,
    record: &rwa_domain::audit::AuditRecord,
) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
    q.bind(AuditId::new().as_uuid())
        .bind(org.as_uuid())
        .bind(actor.to_string())
        .bind(record.action)
        .bind(record.target.clone())
        .bind(record.data.to_string())
        .bind(actor.request_id().map(str::to_owned))
        .bind(actor.ip().map(|ip| ip.to_string()))
}

/// Writing the stamps of many entries in one statement differs by backend:
/// arrays bound per column on PostgreSQL, a JSON array on SQLite.
pub(crate) mod stamp {
    use super::Stamp;

    pub(crate) async fn sqlite(
        c: &mut sqlx::SqliteConnection,
        stamps: &[Stamp],
    ) -> sqlx::Result<()> {
        let rows: Vec<serde_json::Value> = stamps
            .iter()
            .map(|s| serde_json::json!([s.pos, s.seq, s.prev_hash, s.hash]))
            .collect();
        sqlx::query(
            "UPDATE audit_log SET seq = json_extract(j.value, '$[1]'), \
             prev_hash = json_extract(j.value, '$[2]'), hash = json_extract(j.value, '$[3]') \
             FROM json_each($1) AS j WHERE audit_log.pos = json_extract(j.value, '$[0]')",
        )
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn postgres(c: &mut sqlx::PgConnection, stamps: &[Stamp]) -> sqlx::Result<()> {
        let pos: Vec<i64> = stamps.iter().map(|s| s.pos).collect();
        let seq: Vec<i64> = stamps.iter().map(|s| s.seq).collect();
        let prev: Vec<&str> = stamps.iter().map(|s| s.prev_hash.as_str()).collect();
        let hash: Vec<&str> = stamps.iter().map(|s| s.hash.as_str()).collect();
        sqlx::query(
            "UPDATE audit_log a SET seq = u.seq, prev_hash = u.prev_hash, hash = u.hash \
             FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) \
             AS u(pos, seq, prev_hash, hash) WHERE a.pos = u.pos",
        )
        .bind(pos)
        .bind(seq)
        .bind(prev)
        .bind(hash)
        .execute(c)
        .await
        .map(|_| ())
    }
}
