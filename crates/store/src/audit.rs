//! The audit trail port: appends happen inside each repository write (see
//! `sql::append_audit`); this module builds entries and serves reads and
//! verification.

use async_trait::async_trait;
use rwa_domain::audit::{
    AuditEntry, AuditRecord, ChainVerification, GENESIS_HASH, HashInput, chain_hash, verify_run,
};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::ports::AuditTrail;
use rwa_domain::{Actor, AuditId, OrgId, RepoError, RepoResult};

use crate::Store;
use crate::connect::on_reader;
use crate::error::DbResult;
use crate::rows::HeadRow;

/// Builds the entry that follows the locked chain head.
pub(crate) fn next_entry(
    head: HeadRow,
    org: OrgId,
    actor: &Actor,
    record: &AuditRecord,
) -> AuditEntry {
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
