//! Issuer operations ([`OperationRepository`]): the operations, the batches
//! carrying them (a managed transaction each), and the organization's
//! `operations-sync` job, kept to one by its flag in `flow_syncs`
//! (`sync_flag.rs`).
//!
//! A request stores its operation, its audit entry, its event, its job
//! trigger and its idempotent response in one transaction. The job forms
//! batches from pending operations (stored before their transaction is
//! submitted, so a crash in between sends nothing twice) and mirrors each
//! batch's transaction onto its operations, one event per status change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::amount::Amount;
use rwa_domain::audit::AuditRecord;
use rwa_domain::chain::{Address, B256, U256};
use rwa_domain::idempotency::Completion;
use rwa_domain::investor::INVESTOR_WALLET_REMOVED;
use rwa_domain::operation::{
    Created, MAINTENANCE_KIND, MintContext, MintGate, NewOperation, Operation, OperationBatch,
    OperationFilter, OperationId, OperationKind, OperationRepository, OperationStatus, OperationTx,
    PendingMints, SETTLEMENT_QUEUE, SYNC_KIND, check_mint,
};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::rule_set::RuleChange;
use rwa_domain::tx::{TxId, TxState};
use rwa_domain::{Actor, InvestorId, OrgId, RepoError, RepoResult, TokenId};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use crate::sync_flag::{self, Flow};
use crate::transfers::json_of;

/// Attempts of an operations job before it is discarded; the expiry sweep
/// revives the flow of an organization that has no job left.
const SYNC_ATTEMPTS: i32 = 60;

/// The operations flow, one job per organization.
pub(crate) const FLOW: Flow = Flow {
    name: "operations",
    namespace: 0x0e7a_0b5e_0000_0000,
    kind: SYNC_KIND,
    job: sync_job,
};

/// The job that carries `org`'s operations to the chain.
pub(crate) fn sync_job(org: Uuid) -> NewJob {
    NewJob::new(SETTLEMENT_QUEUE, SYNC_KIND, json!({ "org_id": org }))
        .for_org(org)
        .max_attempts(SYNC_ATTEMPTS)
}

/// The periodic maintenance of operations.
pub fn maintenance_job() -> NewJob {
    NewJob::new(SETTLEMENT_QUEUE, MAINTENANCE_KIND, json!({})).max_attempts(3)
}

/// Columns of an operation with its (last) batch, in [`OpRow`] order.
macro_rules! op_columns {
    () => {
        "o.id, o.org_id, o.token_id, o.kind, o.status, o.wallet, o.counterparty, o.investor_id, \
         o.amount, o.reason, o.requested_by, o.approved_by, o.rejected_by, o.rejection_reason, \
         o.isolate, o.error, o.rule_change, o.created_at, o.updated_at, b.token_id AS b_token, \
         b.tx_state AS b_state, b.tx_hash AS b_hash, b.block_number AS b_block, b.error AS b_error"
    };
}

/// An operation joined with its batch.
macro_rules! op_from {
    () => {
        " FROM operations o LEFT JOIN operation_batches b ON b.id = o.batch_id \
         AND o.kind <> 'recovery' "
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct OpRow {
    id: Uuid,
    org_id: Uuid,
    token_id: Option<Uuid>,
    kind: String,
    status: String,
    wallet: Option<String>,
    counterparty: Option<String>,
    investor_id: Option<Uuid>,
    amount: Option<String>,
    reason: Option<String>,
    requested_by: String,
    approved_by: Option<String>,
    rejected_by: Option<String>,
    rejection_reason: Option<String>,
    isolate: bool,
    error: Option<String>,
    rule_change: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    b_token: Option<Uuid>,
    b_state: Option<String>,
    b_hash: Option<String>,
    b_block: Option<i64>,
    b_error: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct LegRow {
    recovery_of: Uuid,
    token_id: Uuid,
    tx_state: String,
    tx_hash: Option<String>,
    block_number: Option<i64>,
    error: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    id: Uuid,
    org_id: Uuid,
    token_id: Uuid,
    kind: String,
    recovery_of: Option<Uuid>,
    tx_id: Option<Uuid>,
    tx_state: String,
    tx_hash: Option<String>,
    block_number: Option<i64>,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

fn address(s: Option<&str>) -> RepoResult<Option<Address>> {
    s.map(|a| parse::<Address>(a, "address")).transpose()
}

fn stored(a: Option<Address>) -> Option<String> {
    a.map(|a| format!("{a:#x}"))
}

fn leg(
    token: Uuid,
    state: &str,
    hash: Option<&str>,
    block: Option<i64>,
    error: Option<String>,
) -> RepoResult<OperationTx> {
    Ok(OperationTx {
        token_id: TokenId::from_uuid(token),
        state: parse::<TxState>(state, "tx state")?,
        tx_hash: hash.map(|h| parse::<B256>(h, "tx hash")).transpose()?,
        block_number: block.map(|b| b as u64),
        error,
    })
}

impl TryFrom<OpRow> for Operation {
    type Error = RepoError;

    fn try_from(r: OpRow) -> RepoResult<Operation> {
        let transactions = match (r.b_token, r.b_state.as_deref()) {
            (Some(token), Some(state)) => {
                vec![leg(
                    token,
                    state,
                    r.b_hash.as_deref(),
                    r.b_block,
                    r.b_error,
                )?]
            }
            _ => Vec::new(),
        };
        Ok(Operation {
            id: r.id,
            org_id: OrgId::from_uuid(r.org_id),
            token_id: r.token_id.map(TokenId::from_uuid),
            kind: r
                .kind
                .parse()
                .map_err(|e: rwa_domain::ValidationError| RepoError::Internal(e.to_string()))?,
            status: r
                .status
                .parse()
                .map_err(|e: rwa_domain::ValidationError| RepoError::Internal(e.to_string()))?,
            wallet: address(r.wallet.as_deref())?,
            counterparty: address(r.counterparty.as_deref())?,
            investor_id: r.investor_id.map(InvestorId::from_uuid),
            amount: r
                .amount
                .as_deref()
                .map(|a| Amount::parse(a, "amount").map_err(|e| RepoError::Internal(e.to_string())))
                .transpose()?,
            reason: r.reason,
            requested_by: r.requested_by,
            approved_by: r.approved_by,
            rejected_by: r.rejected_by,
            rejection_reason: r.rejection_reason,
            rule_change: r
                .rule_change
                .as_deref()
                .map(|raw| {
                    let value: serde_json::Value = json_of(raw, "rule change")?;
                    Ok::<_, RepoError>(RuleChange::from_stored(&value)?)
                })
                .transpose()?,
            transactions,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// Operations from rows, recoveries given their legs.
fn assemble(rows: Vec<OpRow>, legs: Vec<LegRow>) -> RepoResult<Vec<Operation>> {
    let mut ops = rows
        .into_iter()
        .map(Operation::try_from)
        .collect::<RepoResult<Vec<_>>>()?;
    for l in legs {
        if let Some(op) = ops.iter_mut().find(|o| o.id == l.recovery_of) {
            op.transactions.push(leg(
                l.token_id,
                &l.tx_state,
                l.tx_hash.as_deref(),
                l.block_number,
                l.error,
            )?);
        }
    }
    Ok(ops)
}

/// What `operation.*` events and audit entries carry.
pub(crate) fn event_data(op: &Operation) -> serde_json::Value {
    json!({
        "id": op.id,
        "kind": op.kind,
        "token_id": op.token_id,
        "status": op.status,
        "wallet": stored(op.wallet),
        "counterparty": stored(op.counterparty),
        "investor_id": op.investor_id,
        "amount": op.amount,
        "transactions": op.transactions,
        "error": op.error,
    })
}

/// The sum of stored amounts (they are canonical decimals).
fn total(amounts: &[String]) -> RepoResult<U256> {
    amounts.iter().try_fold(U256::ZERO, |sum, a| {
        let a = Amount::parse(a, "amount").map_err(|e| RepoError::Internal(e.to_string()))?;
        Ok(sum.saturating_add(a.get()))
    })
}

/// Splits pending operations into batches: mints and burns of a token
/// together up to `max_items` (unless isolated), everything else alone.
/// Recoveries are formed apart (one batch per token).
fn group(
    org: OrgId,
    ops: Vec<Operation>,
    isolated: &[Uuid],
    max_items: usize,
) -> Vec<OperationBatch> {
    let mut batches: Vec<OperationBatch> = Vec::new();
    for op in ops {
        let Some(token) = op.token_id else { continue };
        let alone = !op.kind.batched() || isolated.contains(&op.id);
        if !alone
            && let Some(b) = batches.iter_mut().find(|b| {
                b.token_id == token
                    && b.kind == op.kind
                    && b.items.len() < max_items
                    && !isolated.contains(&b.items[0].id)
                    && b.kind.batched()
            })
        {
            b.items.push(op);
            continue;
        }
        batches.push(OperationBatch {
            id: Uuid::now_v7(),
            org_id: org,
            token_id: token,
            kind: op.kind,
            items: vec![op],
            tx_id: None,
            tx_state: TxState::Pending,
            tx_hash: None,
            block_number: None,
        });
    }
    batches
}

impl Store {
    async fn read_op(&self, org: Option<OrgId>, id: OperationId) -> RepoResult<Operation> {
        let (rows, legs) = on_reader!(self, |pool, sql| {
            let rows = sql::get_op(pool, org.map(|o| o.as_uuid()), id).await.db()?;
            let legs = sql::legs_of(pool, &[id]).await.db()?;
            (rows, legs)
        });
        assemble(rows, legs)?.pop().ok_or(RepoError::NotFound)
    }
}

/// The statuses an operation went through from `from` to `to`, in order:
/// a step may observe a transaction only once it is confirmed, and readers
/// of the events still see it submitted first.
fn path(from: OperationStatus, to: OperationStatus) -> Vec<OperationStatus> {
    use OperationStatus::{Confirmed, Pending, Settled, Submitted};
    let order = [Pending, Submitted, Confirmed, Settled];
    let at = |s| order.iter().position(|o| *o == s);
    match (at(from), at(to)) {
        (Some(a), Some(b)) if b > a => order[a + 1..=b].to_vec(),
        _ => vec![to],
    }
}

/// Appends `operation.<status>` for each operation and each status it went
/// through since `from`.
/// Stores a requested operation (`awaiting_approval` when it needs a second
/// actor, else `pending` with the operations job asked for), with its audit
/// entry and `operation.requested` event, in the unit's transaction; the
/// stored operation. Expanded inside `in_write_tx!` with `audit`, `events`
/// and `sync_flag` in scope, `$ops` naming this module's statements.
macro_rules! record_request {
    ($tx:ident, $ops:ident, $org:expr, $id:expr, $op:expr, $new_holder:expr, $actor:expr) => {{
        let (org, id, op, actor): (OrgId, Uuid, &NewOperation, &Actor) = ($org, $id, $op, $actor);
        let status = if op.four_eyes {
            OperationStatus::AwaitingApproval
        } else {
            OperationStatus::Pending
        };
        $ops::insert_op(
            &mut $tx,
            id,
            org.as_uuid(),
            op,
            status.as_str(),
            $new_holder,
            &actor.to_string(),
        )
        .await
        .db()?;
        let stored = Operation::try_from(
            $ops::lock_op(&mut $tx, org.as_uuid(), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?,
        )?;
        let data = $crate::operations::event_data(&stored);
        let record = AuditRecord {
            action: "operation.requested",
            target: id.to_string(),
            data: data.clone(),
        };
        audit::append_audit(&mut $tx, org, actor, &record)
            .await
            .db()?;
        events::append_event(&mut $tx, org.as_uuid(), "operation.requested", &data)
            .await
            .db()?;
        if status == OperationStatus::Pending {
            sync_flag::request(&mut $tx, &$crate::operations::FLOW, org.as_uuid()).await?;
        }
        stored
    }};
}
pub(crate) use record_request;

macro_rules! append_status_events {
    ($tx:ident, $events:ident, $moves:expr) => {
        for (op, from) in $moves {
            for status in path(*from, op.status) {
                let mut data = event_data(op);
                data["status"] = serde_json::json!(status);
                $events::append_event(&mut $tx, op.org_id.as_uuid(), &status.event(), &data)
                    .await
                    .db()?;
            }
        }
    };
}

/// Operations that moved, with the status each left.
fn moved(rows: Vec<(OpRow, String)>) -> RepoResult<Vec<(Operation, OperationStatus)>> {
    rows.into_iter()
        .map(|(row, from)| {
            let from = from
                .parse()
                .map_err(|e: rwa_domain::ValidationError| RepoError::Internal(e.to_string()))?;
            Ok((Operation::try_from(row)?, from))
        })
        .collect()
}

#[async_trait]
impl OperationRepository for Store {
    async fn create(
        &self,
        org: OrgId,
        op: &NewOperation,
        gate: Option<&MintGate>,
        actor: &Actor,
        done: &Completion<Operation>,
    ) -> RepoResult<Created> {
        let (op, gate, actor, done) = (op.clone(), gate.cloned(), actor.clone(), done.clone());
        let id = Uuid::now_v7();
        in_write_tx!(self, |tx, sql, audit, events, idempotency, sync_flag| {
            let mut new_holder = false;
            if let (Some(gate), Some(token)) = (&gate, op.token_id) {
                let limited = gate.rules.max_balance_per_investor.is_some()
                    || gate.rules.max_holders.is_some();
                if limited {
                    // Mints of a limited token are checked one at a time.
                    sql::lock_token(&mut tx, token.as_uuid()).await.db()?;
                }
                let investor = gate.investor.id.as_uuid();
                let indexed = gate.holding.indexed_block as i64;
                let amounts = sql::open_mint_amounts(&mut tx, token.as_uuid(), investor, indexed)
                    .await
                    .db()?;
                let (new_holders, counted) =
                    sql::open_new_holders(&mut tx, token.as_uuid(), investor, indexed)
                        .await
                        .db()?;
                let pending = PendingMints {
                    to_investor: total(&amounts)?,
                    investor_counted: counted,
                    new_holders: new_holders as u64,
                };
                let checked = check_mint(&MintContext {
                    investor: &gate.investor,
                    wallet: op.wallet.unwrap_or_default(),
                    amount: op.amount.unwrap_or_default(),
                    rules: &gate.rules,
                    holding: gate.holding,
                    pending,
                    now: gate.now,
                });
                match checked {
                    Ok(fresh) => new_holder = fresh,
                    Err(failure) => return Ok(Created::Refused(failure)),
                }
            }
            let stored = record_request!(tx, sql, org, id, &op, new_holder, &actor);
            let body = (done.render)(&stored);
            idempotency::complete(
                &mut tx,
                org.as_uuid(),
                done.key.as_str(),
                done.claim,
                done.status,
                &body,
            )
            .await?;
            Ok::<_, RepoError>(Created::Stored(Box::new(stored)))
        })
    }

    async fn get(&self, org: OrgId, id: OperationId) -> RepoResult<Operation> {
        self.read_op(Some(org), id).await
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &OperationFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Operation>> {
        let fetch = i64::from(page.limit) + 1;
        let filter = filter.clone();
        let (rows, legs) = on_reader!(self, |pool, sql| {
            let rows = sql::list_ops(pool, org.as_uuid(), &filter, page.after, fetch)
                .await
                .db()?;
            let recoveries: Vec<Uuid> = rows
                .iter()
                .filter(|r| r.kind == "recovery")
                .map(|r| r.id)
                .collect();
            let legs = if recoveries.is_empty() {
                Vec::new()
            } else {
                sql::legs_of(pool, &recoveries).await.db()?
            };
            (rows, legs)
        });
        let ops = assemble(rows, legs)?;
        Ok(Page::from_overfetch(ops, page.limit, |o| o.id))
    }

    async fn approve(&self, org: OrgId, id: OperationId, actor: &Actor) -> RepoResult<Operation> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit, events, sync_flag| {
            let row = sql::lock_op(&mut tx, org.as_uuid(), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let current = Operation::try_from(row)?;
            if current.status != OperationStatus::AwaitingApproval {
                return Err(RepoError::Conflict(format!(
                    "the operation is {}, not awaiting approval",
                    current.status
                )));
            }
            if current.requested_by == actor.to_string() {
                return Err(RepoError::Conflict(
                    "the requester cannot approve their own operation".into(),
                ));
            }
            sql::approve(&mut tx, id, &actor.to_string()).await.db()?;
            let op = Operation::try_from(
                sql::lock_op(&mut tx, org.as_uuid(), id)
                    .await
                    .db()?
                    .ok_or(RepoError::NotFound)?,
            )?;
            let data = event_data(&op);
            audit::append_audit(
                &mut tx,
                org,
                &actor,
                &AuditRecord {
                    action: "operation.approved",
                    target: id.to_string(),
                    data: json!({ "requested_by": op.requested_by, "operation": data }),
                },
            )
            .await
            .db()?;
            events::append_event(&mut tx, org.as_uuid(), "operation.approved", &data)
                .await
                .db()?;
            sync_flag::request(&mut tx, &FLOW, org.as_uuid()).await?;
            Ok::<_, RepoError>(op)
        })
    }

    async fn reject(
        &self,
        org: OrgId,
        id: OperationId,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Operation> {
        let (actor, reason) = (actor.clone(), reason.to_owned());
        in_write_tx!(self, |tx, sql, audit, events| {
            let row = sql::lock_op(&mut tx, org.as_uuid(), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let current = Operation::try_from(row)?;
            if current.status != OperationStatus::AwaitingApproval {
                return Err(RepoError::Conflict(format!(
                    "the operation is {}, not awaiting approval",
                    current.status
                )));
            }
            sql::reject(&mut tx, id, &actor.to_string(), &reason)
                .await
                .db()?;
            let op = Operation::try_from(
                sql::lock_op(&mut tx, org.as_uuid(), id)
                    .await
                    .db()?
                    .ok_or(RepoError::NotFound)?,
            )?;
            let data = event_data(&op);
            audit::append_audit(
                &mut tx,
                org,
                &actor,
                &AuditRecord {
                    action: "operation.rejected",
                    target: id.to_string(),
                    data: json!({ "requested_by": op.requested_by, "reason": reason }),
                },
            )
            .await
            .db()?;
            events::append_event(&mut tx, org.as_uuid(), "operation.rejected", &data)
                .await
                .db()?;
            Ok::<_, RepoError>(op)
        })
    }

    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<OperationBatch>> {
        let (batches, rows) = on_reader!(self, |pool, sql| {
            let batches = sql::open_batches(pool, org.as_uuid()).await.db()?;
            let ids: Vec<Uuid> = batches.iter().map(|b| b.id).collect();
            let rows = if ids.is_empty() {
                Vec::new()
            } else {
                sql::items_of(pool, &ids).await.db()?
            };
            (batches, rows)
        });
        with_items(batches, rows)
    }

    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<OperationBatch>> {
        let fetch = (max_items * 8) as i64;
        in_write_tx!(self, |tx, sql, events| {
            let rows = sql::todo(&mut tx, org.as_uuid(), fetch).await.db()?;
            let isolated: Vec<Uuid> = rows.iter().filter(|r| r.isolate).map(|r| r.id).collect();
            let ops = rows
                .into_iter()
                .map(Operation::try_from)
                .collect::<RepoResult<Vec<_>>>()?;
            let (recoveries, ops): (Vec<_>, Vec<_>) = ops
                .into_iter()
                .partition(|o| o.kind == OperationKind::Recovery);
            let mut batches = group(org, ops, &isolated, max_items);
            for b in &batches {
                sql::insert_batch(&mut tx, b, None).await.db()?;
                for item in &b.items {
                    sql::carry(&mut tx, item.id, b.id).await.db()?;
                }
            }
            for op in recoveries {
                let new_wallet = stored(op.counterparty).unwrap_or_default();
                match sql::registration_status(&mut tx, org.as_uuid(), &new_wallet)
                    .await
                    .db()?
                {
                    Some((status, _)) if status == "registered" => {}
                    Some((status, error)) if status == "failed" => {
                        let why = format!(
                            "the new wallet's registration failed: {}",
                            error.unwrap_or_default()
                        );
                        sql::fail_op(&mut tx, op.id, &why).await.db()?;
                        let failed = Operation {
                            status: OperationStatus::Failed,
                            error: Some(why),
                            ..op
                        };
                        append_status_events!(tx, events, [(&failed, &OperationStatus::Pending)]);
                        continue;
                    }
                    _ => continue, // its registration is on its way
                }
                let tokens = sql::deployed_tokens(&mut tx, org.as_uuid()).await.db()?;
                if tokens.is_empty() {
                    sql::set_status(&mut tx, op.id, "settled").await.db()?;
                    let settled = Operation {
                        status: OperationStatus::Settled,
                        ..op
                    };
                    append_status_events!(tx, events, [(&settled, &OperationStatus::Pending)]);
                    continue;
                }
                let mut first = None;
                for token in tokens {
                    let b = OperationBatch {
                        id: Uuid::now_v7(),
                        org_id: org,
                        token_id: TokenId::from_uuid(token),
                        kind: OperationKind::Recovery,
                        items: vec![op.clone()],
                        tx_id: None,
                        tx_state: TxState::Pending,
                        tx_hash: None,
                        block_number: None,
                    };
                    sql::insert_batch(&mut tx, &b, Some(op.id)).await.db()?;
                    first.get_or_insert(b.id);
                    batches.push(b);
                }
                sql::carry(&mut tx, op.id, first.expect("one token at least"))
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(batches)
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
        in_write_tx!(self, |tx,
                            sql,
                            events,
                            investors,
                            identity,
                            audit,
                            rule_sets| {
            let Some(row) = sql::lock_open_batch(&mut tx, batch).await.db()? else {
                return Ok(()); // closed already (a repeated step)
            };
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
            let changed = if let Some(op) = row.recovery_of {
                let legs = sql::leg_states(&mut tx, op).await.db()?;
                let status = recovery_status(&legs)?;
                let why = legs.iter().find_map(|(_, e)| e.clone());
                let rows = sql::move_ops(&mut tx, "id", op, status.as_str(), why.as_deref())
                    .await
                    .db()?;
                let (ops, from): (Vec<_>, Vec<_>) = moved(rows)?.into_iter().unzip();
                let ids: Vec<Uuid> = ops.iter().map(|o| o.id).collect();
                let legs = sql::legs_of_conn(&mut tx, &ids).await.db()?;
                // Recovered: the lost wallet leaves the investor, and so the
                // identity registry, so it can receive nothing more.
                for op in ops.iter().filter(|o| o.status == OperationStatus::Settled) {
                    let (Some(investor), Some(lost)) = (op.investor_id, op.wallet) else {
                        continue;
                    };
                    let (org, address) = (op.org_id, format!("{lost:#x}"));
                    let Some(owner) =
                        investors::investor_for_update(&mut tx, org.as_uuid(), investor.as_uuid())
                            .await
                            .db()?
                    else {
                        continue;
                    };
                    let gone = investors::delete_wallet(
                        &mut tx,
                        org.as_uuid(),
                        investor.as_uuid(),
                        &address,
                    )
                    .await
                    .db()?;
                    if gone == 1 {
                        let record = crate::investors::wallet_record(
                            INVESTOR_WALLET_REMOVED,
                            investor,
                            &address,
                        );
                        audit::append_audit(&mut tx, org, &Actor::system("operations"), &record)
                            .await
                            .db()?;
                        events::append_event(
                            &mut tx,
                            org.as_uuid(),
                            INVESTOR_WALLET_REMOVED,
                            &record.data,
                        )
                        .await
                        .db()?;
                        identity::plan(
                            &mut tx,
                            org.as_uuid(),
                            investor.as_uuid(),
                            crate::investors::want_of(&owner)?,
                        )
                        .await?;
                    }
                }
                assemble_ops(ops, legs)?.into_iter().zip(from).collect()
            } else if state == TxState::Failed && sql::count_items(&mut tx, batch).await.db()? > 1 {
                // One of them made the transaction fail: each goes alone.
                moved(sql::release(&mut tx, batch).await.db()?)?
            } else {
                let status = OperationStatus::of_tx(state);
                let failure = (state == TxState::Failed)
                    .then(|| error.clone().unwrap_or_else(|| "reverted".into()));
                let rows = sql::move_ops(
                    &mut tx,
                    "batch_id",
                    batch,
                    status.as_str(),
                    failure.as_deref(),
                )
                .await
                .db()?;
                moved(rows)?
            };
            append_status_events!(tx, events, changed.iter().map(|(o, f)| (o, f)));
            // A rule-set change in force: transfers read its on-chain rules
            // from the token from now on.
            for (op, _) in &changed {
                let (OperationStatus::Settled, Some(change), Some(token)) =
                    (op.status, &op.rule_change, op.token_id)
                else {
                    continue;
                };
                if rule_sets::applied(&mut tx, token.as_uuid(), change)
                    .await
                    .db()?
                {
                    let data = crate::rule_sets::applied_event(token, op.id, change);
                    let kind = crate::rule_sets::RULE_SET_APPLIED;
                    events::append_event(&mut tx, op.org_id.as_uuid(), kind, &data)
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

fn assemble_ops(ops: Vec<Operation>, legs: Vec<LegRow>) -> RepoResult<Vec<Operation>> {
    let mut ops = ops;
    for op in &mut ops {
        op.transactions.clear();
    }
    for l in legs {
        if let Some(op) = ops.iter_mut().find(|o| o.id == l.recovery_of) {
            op.transactions.push(leg(
                l.token_id,
                &l.tx_state,
                l.tx_hash.as_deref(),
                l.block_number,
                l.error,
            )?);
        }
    }
    Ok(ops)
}

/// A recovery's status from its legs' transaction states: failed if one
/// failed, settled when all settled, otherwise the least advanced.
fn recovery_status(legs: &[(String, Option<String>)]) -> RepoResult<OperationStatus> {
    let states = legs
        .iter()
        .map(|(s, _)| parse::<TxState>(s, "tx state"))
        .collect::<RepoResult<Vec<_>>>()?;
    if states.contains(&TxState::Failed) {
        return Ok(OperationStatus::Failed);
    }
    let rank = |s: &TxState| match s {
        TxState::Pending => 0,
        TxState::Submitted => 1,
        TxState::Confirmed => 2,
        TxState::Settled => 3,
        TxState::Failed => 4,
    };
    let least = states
        .iter()
        .min_by_key(|s| rank(s))
        .copied()
        .unwrap_or(TxState::Settled);
    Ok(OperationStatus::of_tx(least))
}

/// Batches given their operations (recovery legs carry their one operation).
fn with_items(batches: Vec<BatchRow>, rows: Vec<(Uuid, OpRow)>) -> RepoResult<Vec<OperationBatch>> {
    let mut out: Vec<OperationBatch> = batches
        .into_iter()
        .map(|b| {
            Ok(OperationBatch {
                id: b.id,
                org_id: OrgId::from_uuid(b.org_id),
                token_id: TokenId::from_uuid(b.token_id),
                kind: b
                    .kind
                    .parse()
                    .map_err(|e: rwa_domain::ValidationError| RepoError::Internal(e.to_string()))?,
                items: Vec::new(),
                tx_id: b.tx_id.map(TxId),
                tx_state: parse(&b.tx_state, "tx state")?,
                tx_hash: b
                    .tx_hash
                    .as_deref()
                    .map(|h| parse(h, "tx hash"))
                    .transpose()?,
                block_number: b.block_number.map(|n| n as u64),
            })
        })
        .collect::<RepoResult<_>>()?;
    for (batch, row) in rows {
        if let Some(b) = out.iter_mut().find(|b| b.id == batch) {
            b.items.push(Operation::try_from(row)?);
        }
    }
    Ok(out)
}

/// A row of [`sql::items_of`]: the batch it belongs to, then the operation.
#[derive(sqlx::FromRow)]
pub(crate) struct ItemRow {
    item_batch: Uuid,
    #[sqlx(flatten)]
    op: OpRow,
}

crate::dialect::statements! {
    use rwa_domain::operation::{NewOperation, OperationBatch, OperationFilter};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{BatchRow, ItemRow, LegRow, OpRow};

    pub(crate) async fn lock_token(c: &mut Conn, token: Uuid) -> sqlx::Result<()> {
        query(concat!("SELECT id FROM tokens WHERE id = $1 ", lock!()))
            .bind(token)
            .fetch_optional(c)
            .await
            .map(|_| ())
    }

    /// Mints of the token accepted and not in the index as of block `$3`:
    /// not sent, or sent in a later block (settled ones included: the index
    /// may not have reached their block yet).
    macro_rules! mints_on_their_way {
        () => {
            " FROM operations o LEFT JOIN operation_batches b ON b.id = o.batch_id \
             WHERE o.token_id = $1 AND o.kind = 'mint' \
             AND o.status IN ('awaiting_approval', 'pending', 'submitted', 'confirmed', 'settled') \
             AND (b.block_number IS NULL OR b.block_number > $3)"
        };
    }

    /// Amounts of the token's mints to the investor that are on their way.
    pub(crate) async fn open_mint_amounts(
        c: &mut Conn,
        token: Uuid,
        investor: Uuid,
        indexed: i64,
    ) -> sqlx::Result<Vec<String>> {
        query_scalar(concat!("SELECT o.amount", mints_on_their_way!(), " AND o.investor_id = $2"))
            .bind(token)
            .bind(investor)
            .bind(indexed)
            .fetch_all(c)
            .await
    }

    /// How many of the token's mints on their way make a new holder, and
    /// whether one of them is the investor's.
    pub(crate) async fn open_new_holders(
        c: &mut Conn,
        token: Uuid,
        investor: Uuid,
        indexed: i64,
    ) -> sqlx::Result<(i64, bool)> {
        query_as(concat!(
            "SELECT count(DISTINCT o.investor_id), \
             coalesce(max(CASE WHEN o.investor_id = $2 THEN 1 ELSE 0 END), 0) = 1",
            mints_on_their_way!(),
            " AND o.new_holder"
        ))
        .bind(token)
        .bind(investor)
        .bind(indexed)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn insert_op(
        c: &mut Conn,
        id: Uuid,
        org: Uuid,
        op: &NewOperation,
        status: &str,
        new_holder: bool,
        actor: &str,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO operations (id, org_id, token_id, kind, status, wallet, counterparty, \
             investor_id, amount, reason, new_holder, requested_by, rule_change) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(id)
        .bind(org)
        .bind(op.token_id.map(|t| t.as_uuid()))
        .bind(op.kind.as_str())
        .bind(status)
        .bind(super::stored(op.wallet))
        .bind(super::stored(op.counterparty))
        .bind(op.investor_id.map(|i| i.as_uuid()))
        .bind(op.amount.map(|a| a.to_string()))
        .bind(op.reason.as_deref())
        .bind(new_holder)
        .bind(actor)
        .bind(op.rule_change.as_ref().map(|c| c.to_stored().to_string()))
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn lock_op(c: &mut Conn, org: Uuid, id: Uuid) -> sqlx::Result<Option<OpRow>> {
        // The row lock is taken on the operation alone (a join's outer side
        // cannot be locked on PostgreSQL).
        query(concat!("SELECT id FROM operations WHERE org_id = $1 AND id = $2 ", lock!()))
            .bind(org)
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
        query_as(concat!("SELECT ", op_columns!(), op_from!(), "WHERE o.org_id = $1 AND o.id = $2"))
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn get_op(pool: &Pool, org: Option<Uuid>, id: Uuid) -> sqlx::Result<Vec<OpRow>> {
        query_as(concat!(
            "SELECT ", op_columns!(), op_from!(),
            "WHERE o.id = $1 AND ($2 IS NULL OR o.org_id = $2)"
        ))
        .bind(id)
        .bind(org)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn list_ops(
        pool: &Pool,
        org: Uuid,
        f: &OperationFilter,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<OpRow>> {
        query_as(concat!(
            "SELECT ", op_columns!(), op_from!(),
            "WHERE o.org_id = $1 AND ($2 IS NULL OR o.id > $2) AND ($3 IS NULL OR o.token_id = $3) \
             AND ($4 IS NULL OR o.kind = $4) AND ($5 IS NULL OR o.status = $5) ORDER BY o.id LIMIT $6"
        ))
        .bind(org)
        .bind(after)
        .bind(f.token_id.map(|t| t.as_uuid()))
        .bind(f.kind.map(|k| k.as_str()))
        .bind(f.status.map(|s| s.as_str()))
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn legs_of(pool: &Pool, ops: &[Uuid]) -> sqlx::Result<Vec<LegRow>> {
        let mut c = pool.acquire().await?;
        legs_of_conn(&mut c, ops).await
    }

    pub(crate) async fn legs_of_conn(c: &mut Conn, ops: &[Uuid]) -> sqlx::Result<Vec<LegRow>> {
        let mut legs = Vec::new();
        for op in ops {
            let mut rows: Vec<LegRow> = query_as(
                "SELECT recovery_of, token_id, tx_state, tx_hash, block_number, error \
                 FROM operation_batches WHERE recovery_of = $1 ORDER BY id",
            )
            .bind(op)
            .fetch_all(&mut *c)
            .await?;
            legs.append(&mut rows);
        }
        Ok(legs)
    }

    pub(crate) async fn approve(c: &mut Conn, id: Uuid, actor: &str) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE operations SET status = 'pending', approved_by = $2, updated_at = ", now!(),
            " WHERE id = $1"
        ))
        .bind(id)
        .bind(actor)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn reject(c: &mut Conn, id: Uuid, actor: &str, reason: &str) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE operations SET status = 'rejected', rejected_by = $2, rejection_reason = $3, \
             updated_at = ", now!(), " WHERE id = $1"
        ))
        .bind(id)
        .bind(actor)
        .bind(reason)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn todo(c: &mut Conn, org: Uuid, limit: i64) -> sqlx::Result<Vec<OpRow>> {
        // Locks the operations alone first (see `lock_op`).
        query(concat!(
            "SELECT id FROM operations WHERE org_id = $1 AND status = 'pending' AND batch_id IS NULL \
             ORDER BY id LIMIT $2 ",
            lock!()
        ))
        .bind(org)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
        query_as(concat!(
            "SELECT ", op_columns!(), op_from!(),
            "WHERE o.org_id = $1 AND o.status = 'pending' AND o.batch_id IS NULL ORDER BY o.id LIMIT $2"
        ))
        .bind(org)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn insert_batch(c: &mut Conn, b: &OperationBatch, recovery_of: Option<Uuid>) -> sqlx::Result<()> {
        query(
            "INSERT INTO operation_batches (id, org_id, token_id, kind, recovery_of) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(b.id)
        .bind(b.org_id.as_uuid())
        .bind(b.token_id.as_uuid())
        .bind(b.kind.as_str())
        .bind(recovery_of)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn carry(c: &mut Conn, op: Uuid, batch: Uuid) -> sqlx::Result<()> {
        query(concat!("UPDATE operations SET batch_id = $2, isolate = false, updated_at = ", now!(), " WHERE id = $1"))
            .bind(op)
            .bind(batch)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// The registration of a wallet of the organization: status and error.
    pub(crate) async fn registration_status(
        c: &mut Conn,
        org: Uuid,
        address: &str,
    ) -> sqlx::Result<Option<(String, Option<String>)>> {
        query_as("SELECT status, error FROM identity_registrations WHERE org_id = $1 AND address = $2")
            .bind(org)
            .bind(address)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn deployed_tokens(c: &mut Conn, org: Uuid) -> sqlx::Result<Vec<Uuid>> {
        query_scalar("SELECT id FROM tokens WHERE org_id = $1 AND status = 'deployed' ORDER BY id")
            .bind(org)
            .fetch_all(c)
            .await
    }

    pub(crate) async fn fail_op(c: &mut Conn, op: Uuid, error: &str) -> sqlx::Result<()> {
        query(concat!("UPDATE operations SET status = 'failed', error = $2, updated_at = ", now!(), " WHERE id = $1"))
            .bind(op)
            .bind(error)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn set_status(c: &mut Conn, op: Uuid, status: &str) -> sqlx::Result<()> {
        query(concat!("UPDATE operations SET status = $2, updated_at = ", now!(), " WHERE id = $1"))
            .bind(op)
            .bind(status)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn record_batch_tx(c: &mut Conn, batch: Uuid, tx: Uuid) -> sqlx::Result<()> {
        query("UPDATE operation_batches SET tx_id = $2 WHERE id = $1 AND tx_id IS NULL")
            .bind(batch)
            .bind(tx)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn open_batches(pool: &Pool, org: Uuid) -> sqlx::Result<Vec<BatchRow>> {
        query_as(
            "SELECT id, org_id, token_id, kind, recovery_of, tx_id, tx_state, tx_hash, block_number \
             FROM operation_batches \
             WHERE org_id = $1 AND open ORDER BY created_at, id",
        )
        .bind(org)
        .fetch_all(pool)
        .await
    }

    /// The operations of open batches: those carried by them, and the
    /// operation a recovery leg belongs to.
    pub(crate) async fn items_of(pool: &Pool, batches: &[Uuid]) -> sqlx::Result<Vec<(Uuid, OpRow)>> {
        let mut c = pool.acquire().await?;
        let mut out = Vec::new();
        for batch in batches {
            let rows: Vec<ItemRow> = query_as(concat!(
                "SELECT ob.id AS item_batch, ", op_columns!(),
                " FROM operation_batches ob JOIN operations o ON (o.batch_id = ob.id AND ob.recovery_of IS NULL) \
                 OR o.id = ob.recovery_of \
                 LEFT JOIN operation_batches b ON b.id = o.batch_id AND o.kind <> 'recovery' \
                 WHERE ob.id = $1 ORDER BY o.id"
            ))
            .bind(batch)
            .fetch_all(&mut *c)
            .await?;
            out.extend(rows.into_iter().map(|r| (r.item_batch, r.op)));
        }
        Ok(out)
    }

    pub(crate) async fn lock_open_batch(c: &mut Conn, batch: Uuid) -> sqlx::Result<Option<BatchRow>> {
        query_as(concat!(
            "SELECT id, org_id, token_id, kind, recovery_of, tx_id, tx_state, tx_hash, block_number \
             FROM operation_batches \
             WHERE id = $1 AND open ",
            lock!()
        ))
        .bind(batch)
        .fetch_optional(c)
        .await
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
            "UPDATE operation_batches SET tx_state = $2, tx_hash = coalesce($3, tx_hash), block_number = $4, \
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

    pub(crate) async fn leg_states(c: &mut Conn, op: Uuid) -> sqlx::Result<Vec<(String, Option<String>)>> {
        query_as("SELECT tx_state, error FROM operation_batches WHERE recovery_of = $1 ORDER BY id")
            .bind(op)
            .fetch_all(c)
            .await
    }

    /// Moves the operations selected by `column = key` to `status` (with
    /// `error` when failing) where they are not there yet; answers those
    /// that moved, each with the status it left. The batch's row lock (or
    /// the operation's) is held, so nothing moves them in between.
    pub(crate) async fn move_ops(
        c: &mut Conn,
        column: &'static str,
        key: Uuid,
        status: &str,
        error: Option<&str>,
    ) -> sqlx::Result<Vec<(OpRow, String)>> {
        let (select, update) = if column == "id" {
            (
                "SELECT id, status FROM operations WHERE id = $1 AND status <> $2",
                concat!(
                    "UPDATE operations SET status = $2, error = $3, updated_at = ", now!(),
                    " WHERE id = $1 AND status <> $2"
                ),
            )
        } else {
            (
                "SELECT id, status FROM operations WHERE batch_id = $1 AND status <> $2",
                concat!(
                    "UPDATE operations SET status = $2, error = $3, updated_at = ", now!(),
                    " WHERE batch_id = $1 AND status <> $2"
                ),
            )
        };
        let before: Vec<(Uuid, String)> = query_as(select)
            .bind(key)
            .bind(status)
            .fetch_all(&mut *c)
            .await?;
        if before.is_empty() {
            return Ok(Vec::new());
        }
        query(update)
            .bind(key)
            .bind(status)
            .bind(error)
            .execute(&mut *c)
            .await?;
        reread(c, before).await
    }

    /// The operations named, as they are now, each with the status it had.
    async fn reread(c: &mut Conn, before: Vec<(Uuid, String)>) -> sqlx::Result<Vec<(OpRow, String)>> {
        let mut rows = Vec::with_capacity(before.len());
        for (id, from) in before {
            let row: OpRow = query_as(concat!("SELECT ", op_columns!(), op_from!(), "WHERE o.id = $1"))
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
            rows.push((row, from));
        }
        Ok(rows)
    }

    pub(crate) async fn count_items(c: &mut Conn, batch: Uuid) -> sqlx::Result<i64> {
        query_scalar("SELECT count(*) FROM operations WHERE batch_id = $1")
            .bind(batch)
            .fetch_one(c)
            .await
    }

    /// A failed batch of several: its operations go back to `pending`,
    /// each alone next time; answers those whose status changed.
    pub(crate) async fn release(c: &mut Conn, batch: Uuid) -> sqlx::Result<Vec<(OpRow, String)>> {
        let before: Vec<(Uuid, String)> =
            query_as("SELECT id, status FROM operations WHERE batch_id = $1 AND status <> 'pending'")
                .bind(batch)
                .fetch_all(&mut *c)
                .await?;
        query(concat!(
            "UPDATE operations SET batch_id = NULL, isolate = true, status = 'pending', updated_at = ",
            now!(), " WHERE batch_id = $1"
        ))
        .bind(batch)
        .execute(&mut *c)
        .await?;
        reread(c, before).await
    }

    pub(crate) async fn has_work(c: &mut Conn, org: Uuid) -> sqlx::Result<bool> {
        query_scalar(
            "SELECT EXISTS (SELECT 1 FROM operations WHERE org_id = $1 AND status = 'pending' \
             AND batch_id IS NULL) OR EXISTS (SELECT 1 FROM operation_batches WHERE org_id = $1 AND open)",
        )
        .bind(org)
        .fetch_one(c)
        .await
    }
}
