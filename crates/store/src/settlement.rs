//! Settlement batches ([`SettlementRepository`]): approved transfers of one
//! token grouped into a batch (a managed transaction each), the
//! organization's `transfers-settlement` job kept to one by its flag in
//! `flow_syncs` (`sync_flag.rs`), and the transaction's state mirrored onto
//! the transfers it carries, one event per status change.
//!
//! Forming batches re-checks each approved transfer under its token's lock,
//! with the same snapshot and rules as the compliance check
//! (`transfers.rs`), so a transfer that became invalid since its approval
//! (a freeze, a pause, a KYC lapse) is rejected and never sent.

use async_trait::async_trait;
use rwa_domain::audit::AuditRecord;
use rwa_domain::chain::B256;
use rwa_domain::compliance::all_passed;
use rwa_domain::settlement::{SETTLEMENT_KIND, SettlementRepository, TransferBatch};
use rwa_domain::transfer::{Transfer, TransferId, TransferStatus};
use rwa_domain::tx::{TxId, TxState};
use rwa_domain::{Actor, OrgId, RepoError, RepoResult, TokenId};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use crate::sync_flag::{self, Flow};
use crate::transfers::{TransferRow, changed, event_data};

/// Attempts of a settlement job before it is discarded; the operations
/// maintenance revives the flow of an organization that has no job left.
const SYNC_ATTEMPTS: i32 = 60;

/// The settlement flow, one job per organization.
pub(crate) const FLOW: Flow = Flow {
    name: "settlement",
    namespace: 0x5e77_1e00_0000_0000,
    kind: SETTLEMENT_KIND,
    job: sync_job,
};

/// The job that carries `org`'s approved transfers to the chain.
pub(crate) fn sync_job(org: Uuid) -> NewJob {
    NewJob::new(
        rwa_domain::operation::SETTLEMENT_QUEUE,
        SETTLEMENT_KIND,
        json!({ "org_id": org }),
    )
    .for_org(org)
    .max_attempts(SYNC_ATTEMPTS)
}

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    id: Uuid,
    org_id: Uuid,
    token_id: Uuid,
    tx_id: Option<Uuid>,
    tx_state: String,
    tx_hash: Option<String>,
    block_number: Option<i64>,
}

/// An approved transfer waiting for a batch, with whether it goes alone.
#[derive(sqlx::FromRow)]
pub(crate) struct WaitingRow {
    isolate: bool,
    #[sqlx(flatten)]
    row: TransferRow,
}

fn batch_of(row: BatchRow, items: Vec<Transfer>) -> RepoResult<TransferBatch> {
    Ok(TransferBatch {
        id: row.id,
        org_id: OrgId::from_uuid(row.org_id),
        token_id: TokenId::from_uuid(row.token_id),
        items,
        tx_id: row.tx_id.map(TxId),
        tx_state: row.tx_state.parse()?,
        tx_hash: row
            .tx_hash
            .as_deref()
            .map(|h| {
                h.parse::<B256>()
                    .map_err(|_| RepoError::Internal(format!("stored tx hash {h:?}")))
            })
            .transpose()?,
        block_number: row.block_number.map(|b| b as u64),
    })
}

/// The status of a transfer whose batch's transaction is in `state`.
fn status_of(state: TxState) -> TransferStatus {
    match state {
        TxState::Pending => TransferStatus::Approved,
        TxState::Submitted => TransferStatus::Submitted,
        TxState::Confirmed => TransferStatus::Confirmed,
        TxState::Settled => TransferStatus::Settled,
        TxState::Failed => TransferStatus::Failed,
    }
}

/// The statuses a transfer went through from `from` to `to`, in order: a
/// step may see a transaction only once it is confirmed, and readers of the
/// events still see it submitted first.
fn path(from: TransferStatus, to: TransferStatus) -> Vec<TransferStatus> {
    use TransferStatus::{Approved, Confirmed, Settled, Submitted};
    let order = [Approved, Submitted, Confirmed, Settled];
    let at = |s| order.iter().position(|o| *o == s);
    match (at(from), at(to)) {
        (Some(a), Some(b)) if b > a => order[a + 1..=b].to_vec(),
        _ => vec![to],
    }
}

#[async_trait]
impl SettlementRepository for Store {
    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<TransferBatch>> {
        let found = on_reader!(self, |pool, sql| {
            let batches = sql::open_batches(pool, org.as_uuid()).await.db()?;
            let mut found = Vec::with_capacity(batches.len());
            for b in batches {
                let items = sql::items_of(pool, b.id).await.db()?;
                found.push((b, items));
            }
            found
        });
        found
            .into_iter()
            .map(|(b, rows)| {
                let items = rows
                    .into_iter()
                    .map(Transfer::try_from)
                    .collect::<RepoResult<Vec<_>>>()?;
                batch_of(b, items)
            })
            .collect()
    }

    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<TransferBatch>> {
        let fetch = (max_items * 8) as i64;
        in_write_tx!(self, |tx, sql, transfers, audit, events| {
            let waiting = sql::waiting(&mut tx, org.as_uuid(), fetch).await.db()?;
            let mut batches: Vec<(TransferBatch, bool)> = Vec::new();
            let mut checked_tokens: Vec<Uuid> = Vec::new();
            for w in waiting {
                let t = Transfer::try_from(w.row)?;
                let token = t.token_id.as_uuid();
                if !checked_tokens.contains(&token) {
                    transfers::lock_token(&mut tx, token).await.db()?;
                    checked_tokens.push(token);
                }
                let record = transfers::evaluate_stored(&mut tx, &t).await?;
                if !all_passed(&record.verdicts) {
                    // Invalid since its approval: rejected, never sent.
                    let failed: Vec<String> = record
                        .verdicts
                        .iter()
                        .filter(|v| !v.passed)
                        .map(|v| v.rule.clone())
                        .collect();
                    let stored = serde_json::to_string(&record)
                        .map_err(|e| RepoError::Internal(format!("compliance record: {e}")))?;
                    transfers::decide(&mut tx, t.id, TransferStatus::Rejected.as_str(), &stored)
                        .await
                        .db()?;
                    changed!(
                        tx,
                        transfers,
                        audit,
                        events,
                        t.id,
                        &Actor::system("settlement"),
                        "transfer.rechecked",
                        &TransferStatus::Rejected.event(),
                        json!({ "failed_rules": failed, "rechecked": true })
                    );
                    continue;
                }
                // Transfers of one token share a batch; one released from a
                // failed batch goes alone.
                match batches.iter_mut().find(|(b, alone)| {
                    !alone && !w.isolate && b.token_id == t.token_id && b.items.len() < max_items
                }) {
                    Some((b, _)) => b.items.push(t),
                    None => batches.push((
                        TransferBatch {
                            id: Uuid::now_v7(),
                            org_id: org,
                            token_id: t.token_id,
                            items: vec![t],
                            tx_id: None,
                            tx_state: TxState::Pending,
                            tx_hash: None,
                            block_number: None,
                        },
                        w.isolate,
                    )),
                }
            }
            let batches: Vec<TransferBatch> = batches.into_iter().map(|(b, _)| b).collect();
            for b in &batches {
                sql::insert_batch(&mut tx, b).await.db()?;
                for item in &b.items {
                    sql::carry(&mut tx, item.id, b.id).await.db()?;
                }
            }
            Ok::<_, RepoError>(batches)
        })
    }

    async fn system_refuse_item(
        &self,
        batch: Uuid,
        transfer: TransferId,
        reason: &str,
    ) -> RepoResult<()> {
        let reason = reason.to_owned();
        in_write_tx!(self, |tx, sql, transfers, audit, events| {
            if !sql::take_out(&mut tx, batch, transfer, &reason)
                .await
                .db()?
            {
                return Ok(()); // refused already (a repeated step)
            }
            changed!(
                tx,
                transfers,
                audit,
                events,
                transfer,
                &Actor::system("settlement"),
                "transfer.refused_on_chain",
                &TransferStatus::Rejected.event(),
                json!({ "reason": reason })
            );
            Ok::<_, RepoError>(())
        })
    }

    async fn system_record_batch_tx(&self, batch: Uuid, tx_id: TxId) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| sql::record_batch_tx(
            &mut tx, batch, tx_id.0
        )
        .await
        .db())
    }

    async fn system_follow_batch(
        &self,
        batch: Uuid,
        state: TxState,
        tx_hash: Option<B256>,
        block_number: Option<u64>,
        error: Option<&str>,
    ) -> RepoResult<()> {
        let error = error.map(str::to_owned);
        let hash = tx_hash.map(|h| format!("{h:#x}"));
        in_write_tx!(self, |tx, sql, events| {
            if !sql::lock_open_batch(&mut tx, batch).await.db()? {
                return Ok(()); // closed already (a repeated step)
            }
            let block = block_number.map(|b| b as i64);
            sql::update_batch(
                &mut tx,
                batch,
                state.as_str(),
                hash.as_deref(),
                block,
                error.as_deref(),
                state.is_terminal(),
            )
            .await
            .db()?;
            let moved =
                if state == TxState::Failed && sql::count_items(&mut tx, batch).await.db()? > 1 {
                    // One of them made the transaction fail: each goes alone.
                    sql::release(&mut tx, batch).await.db()?
                } else {
                    let status = status_of(state);
                    let failure = (state == TxState::Failed)
                        .then(|| error.clone().unwrap_or_else(|| "reverted".into()));
                    sql::move_items(&mut tx, batch, status.as_str(), failure.as_deref())
                        .await
                        .db()?
                };
            for (row, from) in moved {
                let t = Transfer::try_from(row)?;
                let from: TransferStatus = from.parse()?;
                for status in path(from, t.status) {
                    let mut data = event_data(&t);
                    data["status"] = json!(status);
                    events::append_event(&mut tx, t.org_id.as_uuid(), &status.event(), &data)
                        .await
                        .db()?;
                }
            }
            Ok::<_, RepoError>(())
        })
    }

    async fn system_finish_sync(&self, org: OrgId) -> RepoResult<bool> {
        in_write_tx!(self, |tx, sql, sync_flag| {
            sync_flag::lock(&mut tx, &FLOW, org.as_uuid()).await.db()?;
            if sql::has_work(&mut tx, org.as_uuid()).await.db()? {
                return Ok(false);
            }
            sync_flag::stop(&mut tx, &FLOW, org.as_uuid()).await.db()?;
            Ok::<_, RepoError>(true)
        })
    }

    async fn system_revive(&self) -> RepoResult<u64> {
        sync_flag::revive(self, &FLOW).await
    }
}

crate::dialect::statements! {
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{BatchRow, WaitingRow};
    use crate::transfers::TransferRow;

    macro_rules! columns {
        () => {
            "id, org_id, token_id, from_investor_id, from_wallet, to_investor_id, to_wallet, amount, \
             status, compliance, review, tx_hash, block_number, error, requested_by, created_at, updated_at"
        };
    }

    pub(crate) async fn open_batches(pool: &Pool, org: Uuid) -> sqlx::Result<Vec<BatchRow>> {
        query_as(
            "SELECT id, org_id, token_id, tx_id, tx_state, tx_hash, block_number FROM transfer_batches \
             WHERE org_id = $1 AND open ORDER BY created_at, id",
        )
        .bind(org)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn items_of(pool: &Pool, batch: Uuid) -> sqlx::Result<Vec<TransferRow>> {
        query_as(concat!("SELECT ", columns!(), " FROM transfers WHERE batch_id = $1 ORDER BY id"))
            .bind(batch)
            .fetch_all(pool)
            .await
    }

    /// Approved transfers of `org` not in a batch, oldest first (locked).
    pub(crate) async fn waiting(c: &mut Conn, org: Uuid, limit: i64) -> sqlx::Result<Vec<WaitingRow>> {
        query_as(concat!(
            "SELECT isolate, ", columns!(),
            " FROM transfers WHERE org_id = $1 AND status = 'approved' AND batch_id IS NULL \
             ORDER BY id LIMIT $2 ", lock!()
        ))
        .bind(org)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn insert_batch(c: &mut Conn, b: &rwa_domain::settlement::TransferBatch) -> sqlx::Result<()> {
        query("INSERT INTO transfer_batches (id, org_id, token_id) VALUES ($1, $2, $3)")
            .bind(b.id)
            .bind(b.org_id.as_uuid())
            .bind(b.token_id.as_uuid())
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn carry(c: &mut Conn, transfer: Uuid, batch: Uuid) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE transfers SET batch_id = $2, isolate = false, updated_at = ", now!(), " WHERE id = $1"
        ))
        .bind(transfer)
        .bind(batch)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Takes an approved transfer out of a batch not yet submitted and
    /// rejects it with `reason`; answers whether it was there.
    pub(crate) async fn take_out(c: &mut Conn, batch: Uuid, transfer: Uuid, reason: &str) -> sqlx::Result<bool> {
        query(concat!(
            "UPDATE transfers SET batch_id = NULL, status = 'rejected', error = $3, updated_at = ", now!(),
            " WHERE id = $2 AND batch_id = $1 AND status = 'approved'"
        ))
        .bind(batch)
        .bind(transfer)
        .bind(reason)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    pub(crate) async fn record_batch_tx(c: &mut Conn, batch: Uuid, tx: Uuid) -> sqlx::Result<()> {
        query("UPDATE transfer_batches SET tx_id = $2 WHERE id = $1 AND tx_id IS NULL")
            .bind(batch)
            .bind(tx)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn lock_open_batch(c: &mut Conn, batch: Uuid) -> sqlx::Result<bool> {
        let found: Option<Uuid> = query_scalar(concat!(
            "SELECT id FROM transfer_batches WHERE id = $1 AND open ", lock!()
        ))
        .bind(batch)
        .fetch_optional(c)
        .await?;
        Ok(found.is_some())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn update_batch(
        c: &mut Conn,
        batch: Uuid,
        state: &str,
        hash: Option<&str>,
        block: Option<i64>,
        error: Option<&str>,
        close: bool,
    ) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE transfer_batches SET tx_state = $2, tx_hash = coalesce($3, tx_hash), block_number = $4, \
             error = $5, open = NOT $6, finished_at = CASE WHEN $6 THEN ", now!(), " ELSE NULL END WHERE id = $1"
        ))
        .bind(batch)
        .bind(state)
        .bind(hash)
        .bind(block)
        .bind(error)
        .bind(close)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn count_items(c: &mut Conn, batch: Uuid) -> sqlx::Result<i64> {
        query_scalar("SELECT count(*) FROM transfers WHERE batch_id = $1")
            .bind(batch)
            .fetch_one(c)
            .await
    }

    /// Moves the batch's transfers to `status` (with `error` when failing)
    /// and mirrors its hash and block onto them; answers those whose status
    /// changed, each with the status it left.
    pub(crate) async fn move_items(
        c: &mut Conn,
        batch: Uuid,
        status: &str,
        error: Option<&str>,
    ) -> sqlx::Result<Vec<(TransferRow, String)>> {
        let before: Vec<(Uuid, String)> =
            query_as("SELECT id, status FROM transfers WHERE batch_id = $1 AND status <> $2")
                .bind(batch)
                .bind(status)
                .fetch_all(&mut *c)
                .await?;
        query(concat!(
            "UPDATE transfers SET status = $2, error = $3, \
             tx_hash = (SELECT tx_hash FROM transfer_batches WHERE id = $1), \
             block_number = (SELECT block_number FROM transfer_batches WHERE id = $1), \
             updated_at = ", now!(), " WHERE batch_id = $1"
        ))
        .bind(batch)
        .bind(status)
        .bind(error)
        .execute(&mut *c)
        .await?;
        reread(c, before).await
    }

    async fn reread(c: &mut Conn, before: Vec<(Uuid, String)>) -> sqlx::Result<Vec<(TransferRow, String)>> {
        let mut rows = Vec::with_capacity(before.len());
        for (id, from) in before {
            let row: TransferRow = query_as(concat!("SELECT ", columns!(), " FROM transfers WHERE id = $1"))
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
            rows.push((row, from));
        }
        Ok(rows)
    }

    /// A failed batch of several: its transfers go back to `approved`,
    /// each alone next time; answers those whose status changed.
    pub(crate) async fn release(c: &mut Conn, batch: Uuid) -> sqlx::Result<Vec<(TransferRow, String)>> {
        let before: Vec<(Uuid, String)> =
            query_as("SELECT id, status FROM transfers WHERE batch_id = $1 AND status <> 'approved'")
                .bind(batch)
                .fetch_all(&mut *c)
                .await?;
        query(concat!(
            "UPDATE transfers SET batch_id = NULL, isolate = true, status = 'approved', tx_hash = NULL, \
             block_number = NULL, updated_at = ", now!(), " WHERE batch_id = $1"
        ))
        .bind(batch)
        .execute(&mut *c)
        .await?;
        reread(c, before).await
    }

    pub(crate) async fn has_work(c: &mut Conn, org: Uuid) -> sqlx::Result<bool> {
        query_scalar(
            "SELECT EXISTS (SELECT 1 FROM transfers WHERE org_id = $1 AND status = 'approved' \
             AND batch_id IS NULL) OR EXISTS (SELECT 1 FROM transfer_batches WHERE org_id = $1 AND open)",
        )
        .bind(org)
        .fetch_one(c)
        .await
    }
}
