//! Transfers ([`TransferRepository`]): the rows, their compliance-check
//! jobs, and the [`Snapshot`] the rules read, taken from the database and
//! the index.
//!
//! A request stores its transfer, its job, its audit entry, its event and
//! its idempotent response in one transaction. A check takes the token's
//! lock, reads the snapshot, evaluates the rules and writes the decision in
//! one transaction: approved transfers not yet seen by the indexer count as
//! reserved against the sender's balance (and as on their way to the
//! receiver), so checks of one token are serialized and two can never
//! approve against one balance.
//!
//! Balances, frozen amounts, the wallet-frozen flag, the pause and lockups
//! come from the index (`holdings`, `onchain_events`), never from a chain
//! call; registrations, KYC and screenings from the organization's own
//! tables. Time windows (velocity, structuring, the list's `from`/`until`)
//! are bounds on the UUIDv7 ids, which carry their creation time.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rwa_domain::amount::Amount;
use rwa_domain::audit::AuditRecord;
use rwa_domain::chain::{Address, B256, U256};
use rwa_domain::compliance::{
    Activity, Party, RISK_ENGINE_RULE, RiskOutcome, RuleSet, Snapshot, all_passed, evaluate,
};
use rwa_domain::country::Country;
use rwa_domain::idempotency::Completion;
use rwa_domain::investor::KycStatus;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::sanctions::ScreeningStatus;
use rwa_domain::token::ComplianceRules;
use rwa_domain::transfer::{
    CHECK_KIND, COMPLIANCE_QUEUE, Check, ComplianceRecord, Resolved, Review, Transfer,
    TransferFilter, TransferId, TransferRepository, TransferRequest, TransferStatus, decide,
};
use rwa_domain::{Actor, InvestorId, OrgId, RepoError, RepoResult, TokenId};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use crate::holdings::hex;

/// Attempts of a compliance check before it is discarded (it only reads the
/// database, so failures are outages).
const CHECK_ATTEMPTS: i32 = 20;

/// The job checking one transfer.
pub(crate) fn check_job(org: Uuid, transfer: Uuid) -> NewJob {
    NewJob::new(
        COMPLIANCE_QUEUE,
        CHECK_KIND,
        json!({ "transfer_id": transfer }),
    )
    .for_org(org)
    .max_attempts(CHECK_ATTEMPTS)
}

macro_rules! transfer_columns {
    () => {
        "id, org_id, token_id, from_investor_id, from_wallet, to_investor_id, to_wallet, amount, \
         status, compliance, review, tx_hash, block_number, error, requested_by, created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct TransferRow {
    id: Uuid,
    org_id: Uuid,
    token_id: Uuid,
    from_investor_id: Option<Uuid>,
    from_wallet: String,
    to_investor_id: Option<Uuid>,
    to_wallet: String,
    amount: String,
    status: String,
    compliance: Option<String>,
    review: Option<String>,
    tx_hash: Option<String>,
    block_number: Option<i64>,
    error: Option<String>,
    requested_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

fn amount(s: &str) -> RepoResult<Amount> {
    Amount::parse(s, "amount").map_err(|e| RepoError::Internal(format!("stored amount: {e}")))
}

pub(crate) fn json_of<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> RepoResult<T> {
    serde_json::from_str(s).map_err(|e| RepoError::Internal(format!("stored {what}: {e}")))
}

impl TryFrom<TransferRow> for Transfer {
    type Error = RepoError;

    fn try_from(r: TransferRow) -> RepoResult<Transfer> {
        Ok(Transfer {
            id: r.id,
            org_id: OrgId::from_uuid(r.org_id),
            token_id: TokenId::from_uuid(r.token_id),
            from_investor_id: r.from_investor_id.map(InvestorId::from_uuid),
            from_wallet: parse(&r.from_wallet, "wallet")?,
            to_investor_id: r.to_investor_id.map(InvestorId::from_uuid),
            to_wallet: parse(&r.to_wallet, "wallet")?,
            amount: amount(&r.amount)?,
            status: r.status.parse()?,
            compliance: r
                .compliance
                .as_deref()
                .map(|c| json_of(c, "compliance"))
                .transpose()?,
            review: r
                .review
                .as_deref()
                .map(|c| json_of(c, "review"))
                .transpose()?,
            tx_hash: r
                .tx_hash
                .as_deref()
                .map(|h| parse::<B256>(h, "tx hash"))
                .transpose()?,
            block_number: r.block_number.map(|b| b as u64),
            error: r.error,
            requested_by: r.requested_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn event_data(t: &Transfer) -> serde_json::Value {
    json!({
        "transfer_id": t.id,
        "token_id": t.token_id,
        "from_investor_id": t.from_investor_id,
        "from_wallet": t.from_wallet,
        "to_investor_id": t.to_investor_id,
        "to_wallet": t.to_wallet,
        "amount": t.amount,
        "status": t.status,
    })
}

/// The smallest UUIDv7 of the millisecond `at`: ids at or above it were
/// created at or after `at`.
pub(crate) fn v7_floor(at: DateTime<Utc>) -> Uuid {
    let ms = at.timestamp_millis().max(0) as u64;
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8] = 0x80;
    Uuid::from_bytes(b)
}

/// The token as the rules need it.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenFacts {
    id: Uuid,
    org_id: Uuid,
    status: String,
    chain_id: Option<i64>,
    address: Option<String>,
    compliance_address: Option<String>,
    /// The on-chain rules the contract enforces.
    compliance: String,
    /// The latest rule-set version.
    rule_version: i32,
    /// Its rules (none: version 1, the deployed rules).
    rules: Option<String>,
    /// The version whose on-chain rules `compliance` holds.
    onchain_version: i32,
    /// The organization's defaults.
    compliance_defaults: Option<String>,
}

impl TokenFacts {
    /// The rules transfers are checked against now ([`RuleSet::effective`]).
    pub(crate) fn rule_set(&self) -> RepoResult<RuleSet> {
        let stored: serde_json::Value = json_of(&self.compliance, "compliance rules")?;
        let applied = ComplianceRules::from_stored(&stored)?;
        let latest = match &self.rules {
            Some(raw) => json_of::<RuleSet>(raw, "rule set")?,
            None => RuleSet::from(&applied),
        };
        let defaults = crate::rule_sets::parse_defaults(self.compliance_defaults.as_deref())?;
        Ok(latest.effective(&applied, &defaults))
    }

    /// The record of a check under these rules.
    pub(crate) fn record(
        &self,
        rules: RuleSet,
        verdicts: Vec<rwa_domain::compliance::Verdict>,
        snapshot: Snapshot,
    ) -> ComplianceRecord {
        ComplianceRecord {
            rule_set_version: self.rule_version as u32,
            onchain_rule_set_version: self.onchain_version as u32,
            rules: Some(rules),
            verdicts,
            snapshot,
        }
    }
}

/// A party resolved: its wallet and investor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ResolvedParty {
    wallet: Address,
    investor: Option<Uuid>,
}

impl ResolvedParty {
    /// A stored transfer's side.
    pub(crate) fn of(wallet: Address, investor: Option<InvestorId>) -> Self {
        Self {
            wallet,
            investor: investor.map(|i| i.as_uuid()),
        }
    }
}

/// An investor's facts for the rules.
#[derive(sqlx::FromRow)]
pub(crate) struct InvestorFacts {
    kyc_status: String,
    kyc_expires_at: Option<DateTime<Utc>>,
    country: String,
    screening: Option<String>,
}

/// A current holding of the token, with its wallet's investor and country.
#[derive(sqlx::FromRow)]
pub(crate) struct HolderRow {
    wallet: String,
    balance: String,
    investor_id: Option<Uuid>,
    country: Option<String>,
}

/// A transfer on its way (approved, not yet indexed).
#[derive(sqlx::FromRow)]
pub(crate) struct OnItsWay {
    from_wallet: String,
    to_wallet: String,
    to_investor_id: Option<Uuid>,
    amount: String,
}

/// Who a holding counts under: the investor, or the wallet itself (as the
/// compliance contract counts a wallet nobody registered).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum HolderKey {
    Investor(Uuid),
    Wallet(Address),
}

fn key_of(wallet: Address, investor: Option<Uuid>) -> HolderKey {
    investor.map_or(HolderKey::Wallet(wallet), HolderKey::Investor)
}

/// Everything read for a snapshot, before it is assembled.
pub(crate) struct Readings {
    now: DateTime<Utc>,
    amount: Amount,
    from: ResolvedParty,
    to: ResolvedParty,
    from_facts: Option<InvestorFacts>,
    to_facts: Option<InvestorFacts>,
    from_registered: bool,
    to_registered: bool,
    indexed_block: u64,
    holders: Vec<HolderRow>,
    sender_holding: (Amount, Amount, bool),
    receiver_frozen: bool,
    on_its_way: Vec<OnItsWay>,
    paused: bool,
    unlock_at: Option<DateTime<Utc>>,
    recent: Vec<(Uuid, String)>,
    rules: RuleSet,
}

fn party(p: ResolvedParty, facts: Option<&InvestorFacts>, registered: bool) -> RepoResult<Party> {
    Ok(Party {
        wallet: p.wallet,
        investor_id: p.investor.map(InvestorId::from_uuid),
        kyc_status: facts
            .map(|f| parse::<KycStatus>(&f.kyc_status, "kyc status"))
            .transpose()?,
        kyc_expires_at: facts.and_then(|f| f.kyc_expires_at),
        country: facts
            .map(|f| {
                Country::parse(&f.country, "country")
                    .map_err(|e| RepoError::Internal(e.to_string()))
            })
            .transpose()?,
        registered,
        wallet_frozen: false,
        screening: facts
            .and_then(|f| f.screening.as_deref())
            .map(|s| parse::<ScreeningStatus>(s, "screening"))
            .transpose()?,
        investor_balance: Amount::ZERO,
        holder: false,
    })
}

/// Assembles the snapshot from what was read.
pub(crate) fn assemble(r: Readings) -> RepoResult<Snapshot> {
    let mut balances: BTreeMap<HolderKey, U256> = BTreeMap::new();
    let mut countries: BTreeMap<HolderKey, Option<String>> = BTreeMap::new();
    for h in &r.holders {
        let wallet: Address = parse(&h.wallet, "wallet")?;
        let key = key_of(wallet, h.investor_id);
        let v = balances.entry(key).or_default();
        *v = v.saturating_add(amount(&h.balance)?.get());
        countries.insert(key, h.country.clone());
    }
    let from_key = key_of(r.from.wallet, r.from.investor);
    let to_key = key_of(r.to.wallet, r.to.investor);
    let mut reserved = U256::ZERO;
    let mut incoming = U256::ZERO;
    let mut arriving: BTreeSet<HolderKey> = BTreeSet::new();
    for t in &r.on_its_way {
        let from: Address = parse(&t.from_wallet, "wallet")?;
        let to: Address = parse(&t.to_wallet, "wallet")?;
        let v = amount(&t.amount)?.get();
        if from == r.from.wallet {
            reserved = reserved.saturating_add(v);
        }
        let key = key_of(to, t.to_investor_id);
        if key == to_key {
            incoming = incoming.saturating_add(v);
        }
        if !balances.contains_key(&key) {
            arriving.insert(key);
        }
    }
    let holders: BTreeSet<HolderKey> = balances
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, _)| *k)
        .chain(arriving.iter().copied())
        .collect();
    let to_country = r.to_facts.as_ref().map(|f| f.country.clone());
    let country_holder_count = match &to_country {
        Some(c) => holders
            .iter()
            .filter(|k| countries.get(k).and_then(|x| x.as_ref()) == Some(c))
            .count() as u64,
        None => 0,
    };
    let mut from = party(r.from, r.from_facts.as_ref(), r.from_registered)?;
    from.wallet_frozen = r.sender_holding.2;
    from.investor_balance = Amount::new(balances.get(&from_key).copied().unwrap_or_default());
    from.holder = holders.contains(&from_key);
    let mut to = party(r.to, r.to_facts.as_ref(), r.to_registered)?;
    to.wallet_frozen = r.receiver_frozen;
    to.investor_balance = Amount::new(
        balances
            .get(&to_key)
            .copied()
            .unwrap_or_default()
            .saturating_add(incoming),
    );
    to.holder = holders.contains(&to_key);
    Ok(Snapshot {
        taken_at: r.now,
        indexed_block: r.indexed_block,
        amount: r.amount,
        from,
        to,
        sender_balance: r.sender_holding.0,
        sender_frozen: r.sender_holding.1,
        sender_reserved: Amount::new(reserved),
        sender_unlock_at: r.unlock_at,
        paused: r.paused,
        holder_count: holders.len() as u64,
        country_holder_count,
        activity: activity(&r.rules, r.now, &r.recent)?,
    })
}

/// The sender's recent transfers counted as velocity and structuring see
/// them.
fn activity(
    rules: &RuleSet,
    now: DateTime<Utc>,
    recent: &[(Uuid, String)],
) -> RepoResult<Activity> {
    let day = v7_floor(now - TimeDelta::days(1));
    let month = v7_floor(now - TimeDelta::days(30));
    let band = rules.structuring.as_ref().map(|s| {
        (
            s,
            v7_floor(now - TimeDelta::seconds(s.window_seconds.min(i64::MAX as u64) as i64)),
        )
    });
    let mut a = Activity::default();
    for (id, raw) in recent {
        let v = amount(raw)?.get();
        if *id >= day {
            a.day_count += 1;
            a.day_volume = Amount::new(a.day_volume.get().saturating_add(v));
        }
        if *id >= month {
            a.month_count += 1;
            a.month_volume = Amount::new(a.month_volume.get().saturating_add(v));
        }
        if let Some((s, since)) = band
            && *id >= since
            && s.in_band(v)
        {
            a.in_band += 1;
        }
    }
    Ok(a)
}

/// Reads the `LockupSet` end of `wallet` from a stored compliance event.
fn unlock_at_of(data: Option<String>) -> RepoResult<Option<DateTime<Utc>>> {
    let Some(data) = data else { return Ok(None) };
    let v: serde_json::Value = json_of(&data, "compliance event")?;
    let secs = v["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f[0] == "unlock_at")
        .and_then(|f| f[1].as_str())
        .and_then(|s| s.parse::<i64>().ok())
        .unwrap_or(0);
    Ok(if secs == 0 {
        None
    } else {
        DateTime::from_timestamp(secs, 0)
    })
}

/// Inside a unit: appends the audit entry `$action` by `$actor` and the
/// event `$event` of the transfer `$stored`, both carrying the transfer and
/// the fields of `$extra`.
macro_rules! recorded {
    ($tx:ident, $audit:ident, $events:ident, $stored:expr, $actor:expr,
     $action:expr, $event:expr, $extra:expr) => {{
        let stored: &Transfer = $stored;
        let mut data = event_data(stored);
        if let (Some(map), serde_json::Value::Object(extra)) = (data.as_object_mut(), $extra) {
            map.extend(extra);
        }
        let record = AuditRecord {
            action: $action,
            target: stored.id.to_string(),
            data: data.clone(),
        };
        $audit::append_audit(&mut $tx, stored.org_id, $actor, &record)
            .await
            .db()?;
        $events::append_event(&mut $tx, stored.org_id.as_uuid(), $event, &data)
            .await
            .db()?;
    }};
}

/// Inside a unit, after a change to transfer `$id`: re-reads it and
/// appends its audit entry and event ([`recorded!`]); evaluates to the
/// transfer.
macro_rules! changed {
    ($tx:ident, $sql:ident, $audit:ident, $events:ident, $id:expr, $actor:expr,
     $action:expr, $event:expr, $extra:expr) => {{
        let stored = Transfer::try_from(
            $sql::lock(&mut $tx, None, $id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?,
        )?;
        $crate::transfers::recorded!(
            $tx, $audit, $events, &stored, $actor, $action, $event, $extra
        );
        stored
    }};
}
pub(crate) use {changed, recorded};

/// Inside a unit holding the token's lock: records a check's `$record` and
/// the `$status` it leads to (an approval turns the organization's
/// settlement on, so the amount is reserved and sent), then the audit entry
/// `$action` by `$actor` and the status's event, with the failing rules;
/// evaluates to the transfer.
macro_rules! decided {
    ($tx:ident, $sql:ident, $audit:ident, $events:ident, $sync_flag:ident, $current:expr,
     $status:expr, $record:expr, $actor:expr, $action:expr, $extra:expr) => {{
        let (current, status, record): (&Transfer, TransferStatus, &ComplianceRecord) =
            ($current, $status, $record);
        let stored_record = serde_json::to_string(record)
            .map_err(|e| RepoError::Internal(format!("compliance record: {e}")))?;
        $sql::decide(&mut $tx, current.id, status.as_str(), &stored_record)
            .await
            .db()?;
        if status == TransferStatus::Approved {
            $sync_flag::request(&mut $tx, &crate::settlement::FLOW, current.org_id.as_uuid())
                .await?;
        }
        let failed: Vec<&str> = record
            .verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.rule.as_str())
            .collect();
        let mut extra = json!({
            "failed_rules": failed,
            "rule_set_version": record.rule_set_version,
        });
        if let (Some(map), serde_json::Value::Object(more)) = (extra.as_object_mut(), $extra) {
            map.extend(more);
        }
        changed!($tx, $sql, $audit, $events, current.id, $actor, $action, &status.event(), extra)
    }};
}

#[async_trait]
impl TransferRepository for Store {
    async fn create(
        &self,
        org: OrgId,
        request: &TransferRequest,
        actor: &Actor,
        done: &Completion<Transfer>,
    ) -> RepoResult<Resolved<Transfer>> {
        // Resolved on a reader, off the (SQLite) writer: what it reads can
        // change before the insert commits, and the check reads it again.
        let resolved = on_reader!(self, |pool, sql| {
            let mut c = pool.acquire().await.db()?;
            sql::resolve(&mut c, org.as_uuid(), request).await?
        });
        let (from, to) = match resolved {
            Ok((_, from, to)) => (from, to),
            Err(refusal) => return Ok(Resolved::Refused(refusal)),
        };
        let (request, actor, done) = (request.clone(), actor.clone(), done.clone());
        let id = Uuid::now_v7();
        let out: RepoResult<Resolved<Transfer>> =
            in_write_tx!(self, |tx, sql, audit, events, idempotency, jobs| {
                let row = sql::insert(
                    &mut tx,
                    id,
                    org.as_uuid(),
                    &request,
                    from,
                    to,
                    &actor.to_string(),
                )
                .await
                .db()?;
                let stored = Transfer::try_from(row)?;
                recorded!(
                    tx,
                    audit,
                    events,
                    &stored,
                    &actor,
                    "transfer.requested",
                    "transfer.pending_compliance",
                    json!({})
                );
                jobs::enqueue_job(&mut tx, &check_job(org.as_uuid(), id)).await?;
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
                Ok::<_, RepoError>(Resolved::Done(stored))
            });
        // Workers in this process poll; on SQLite nothing else would wake them.
        self.wake_jobs();
        out
    }

    async fn check(&self, org: OrgId, request: &TransferRequest) -> RepoResult<Resolved<Check>> {
        let request = request.clone();
        on_reader!(self, |pool, sql| {
            let mut c = pool.acquire().await.db()?;
            let (facts, from, to) = match sql::resolve(&mut c, org.as_uuid(), &request).await? {
                Ok(found) => found,
                Err(refusal) => return Ok(Resolved::Refused(refusal)),
            };
            let rules = facts.rule_set()?;
            let readings = sql::read(
                &mut c,
                org.as_uuid(),
                &facts,
                &rules,
                from,
                to,
                request.amount,
                None,
            )
            .await?;
            let snapshot = assemble(readings)?;
            let verdicts = evaluate(&rules, &snapshot);
            Ok(Resolved::Done(Check {
                record: facts.record(rules.clone(), verdicts, snapshot),
                rule_set: rules,
            }))
        })
    }

    async fn get(&self, org: OrgId, id: TransferId) -> RepoResult<Transfer> {
        let row = on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid(), id)
            .await
            .db()?);
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn list(
        &self,
        org: OrgId,
        filter: &TransferFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Transfer>> {
        let fetch = i64::from(page.limit) + 1;
        let filter = filter.clone();
        let rows = on_reader!(self, |pool, sql| {
            sql::list(pool, org.as_uuid(), &filter, page.after, fetch)
                .await
                .db()?
        });
        let items = rows
            .into_iter()
            .map(Transfer::try_from)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, page.limit, |t| t.id))
    }

    async fn cancel(&self, org: OrgId, id: TransferId, actor: &Actor) -> RepoResult<Transfer> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit, events| {
            let row = sql::lock(&mut tx, Some(org.as_uuid()), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let current = Transfer::try_from(row)?;
            if sql::in_batch(&mut tx, id).await.db()? {
                return Err(RepoError::Conflict(
                    "the transfer is in a batch being submitted and can no longer be cancelled"
                        .into(),
                ));
            }
            if !current.status.cancellable() {
                return Err(RepoError::Conflict(format!(
                    "the transfer is {} and can no longer be cancelled",
                    current.status
                )));
            }
            sql::set_status(&mut tx, id, TransferStatus::Cancelled.as_str())
                .await
                .db()?;
            let stored = changed!(
                tx,
                sql,
                audit,
                events,
                id,
                &actor,
                "transfer.cancelled",
                "transfer.cancelled",
                json!({ "from_status": current.status })
            );
            Ok::<_, RepoError>(stored)
        })
    }

    async fn system_precheck(
        &self,
        id: TransferId,
    ) -> RepoResult<Option<(Transfer, ComplianceRecord)>> {
        on_reader!(self, |pool, sql| {
            let mut c = pool.acquire().await.db()?;
            let Some(row) = sql::get_any(&mut c, id).await.db()? else {
                return Err(RepoError::NotFound);
            };
            let t = Transfer::try_from(row)?;
            if t.status != TransferStatus::PendingCompliance {
                return Ok(None);
            }
            let record = sql::evaluate_stored(&mut c, &t).await?;
            Ok(Some((t, record)))
        })
    }

    async fn system_check(
        &self,
        id: TransferId,
        engine: Option<RiskOutcome>,
    ) -> RepoResult<Transfer> {
        in_write_tx!(self, |tx, sql, audit, events, sync_flag| {
            let row = sql::lock(&mut tx, None, id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let current = Transfer::try_from(row)?;
            if current.status != TransferStatus::PendingCompliance {
                return Ok(current);
            }
            sql::lock_token(&mut tx, current.token_id.as_uuid())
                .await
                .db()?;
            let mut record = sql::evaluate_stored(&mut tx, &current).await?;
            let status = decide(all_passed(&record.verdicts), engine.as_ref());
            if let Some(outcome) = &engine {
                record.verdicts.push(outcome.verdict());
            }
            let stored = decided!(
                tx,
                sql,
                audit,
                events,
                sync_flag,
                &current,
                status,
                &record,
                &Actor::system("compliance"),
                "transfer.compliance_checked",
                json!({})
            );
            Ok::<_, RepoError>(stored)
        })
    }

    async fn review(
        &self,
        org: OrgId,
        id: TransferId,
        review: &Review,
        actor: &Actor,
    ) -> RepoResult<Transfer> {
        let (review, actor) = (review.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit, events, sync_flag| {
            let row = sql::lock(&mut tx, Some(org.as_uuid()), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let current = Transfer::try_from(row)?;
            if current.status != TransferStatus::ManualReview {
                return Err(RepoError::Conflict(format!(
                    "the transfer is {}, not waiting for a manual review",
                    current.status
                )));
            }
            let stored_review = serde_json::to_string(&review)
                .map_err(|e| RepoError::Internal(format!("review: {e}")))?;
            sql::set_review(&mut tx, id, &stored_review).await.db()?;
            // An approval is checked again against the current state, under
            // the token's lock, so its reservation is as sound as the first.
            sql::lock_token(&mut tx, current.token_id.as_uuid())
                .await
                .db()?;
            let mut record = sql::evaluate_stored(&mut tx, &current).await?;
            let status = match review.decision {
                TransferStatus::Approved => decide(all_passed(&record.verdicts), None),
                _ => TransferStatus::Rejected,
            };
            if let Some(engine) = current
                .compliance
                .as_ref()
                .and_then(|c| c.verdicts.iter().find(|v| v.rule == RISK_ENGINE_RULE))
            {
                record.verdicts.push(engine.clone());
            }
            let extra = json!({ "review": review });
            let stored = decided!(
                tx,
                sql,
                audit,
                events,
                sync_flag,
                &current,
                status,
                &record,
                &actor,
                "transfer.reviewed",
                extra
            );
            Ok::<_, RepoError>(stored)
        })
    }
}

crate::dialect::statements! {
    use chrono::{TimeDelta, Utc};
    use rwa_domain::amount::Amount;
    use rwa_domain::chain::Address;
    use rwa_domain::compliance::{RuleSet, evaluate};
    use rwa_domain::transfer::{ComplianceRecord, PartyRef, Transfer, TransferFilter, TransferRequest};
    use rwa_domain::{RepoError, RepoResult, ValidationError};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{
        HolderRow, InvestorFacts, OnItsWay, Readings, ResolvedParty, TokenFacts, TransferRow,
        hex, unlock_at_of, v7_floor,
    };
    use crate::error::DbResult as _;

    /// Statuses whose amount is reserved until the indexer sees the
    /// transfer's block (`$2`: the indexed block).
    macro_rules! on_its_way {
        () => {
            "(status IN ('approved', 'submitted', 'confirmed') \
             OR (status = 'settled' AND (block_number IS NULL OR block_number > $2)))"
        };
    }

    pub(crate) async fn lock_token(c: &mut Conn, token: Uuid) -> sqlx::Result<()> {
        query(concat!("SELECT id FROM tokens WHERE id = $1 ", lock!()))
            .bind(token)
            .fetch_optional(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn token_facts(c: &mut Conn, token: Uuid) -> sqlx::Result<Option<TokenFacts>> {
        query_as(
            "SELECT t.id, t.org_id, t.status, t.chain_id, t.address, t.compliance_address, \
             t.compliance, t.rule_version, t.rules, t.onchain_version, o.compliance_defaults \
             FROM tokens t JOIN organizations o ON o.id = t.org_id WHERE t.id = $1",
        )
        .bind(token)
        .fetch_optional(c)
        .await
    }

    /// The wallets of an investor of `org`, oldest first (none: no such
    /// investor).
    async fn wallets_of(c: &mut Conn, org: Uuid, investor: Uuid) -> sqlx::Result<Option<Vec<String>>> {
        let exists: Option<Uuid> = query_scalar("SELECT id FROM investors WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(investor)
            .fetch_optional(&mut *c)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        query_scalar("SELECT address FROM investor_wallets WHERE org_id = $1 AND investor_id = $2 ORDER BY created_at")
            .bind(org)
            .bind(investor)
            .fetch_all(c)
            .await
            .map(Some)
    }

    async fn investor_of(c: &mut Conn, org: Uuid, wallet: Address) -> sqlx::Result<Option<Uuid>> {
        query_scalar("SELECT investor_id FROM investor_wallets WHERE org_id = $1 AND address = $2")
            .bind(org)
            .bind(hex(wallet))
            .fetch_optional(c)
            .await
    }

    async fn party(
        c: &mut Conn,
        org: Uuid,
        p: PartyRef,
        field: &str,
    ) -> RepoResult<Result<ResolvedParty, ValidationError>> {
        match p {
            PartyRef::Wallet(wallet) => Ok(Ok(ResolvedParty {
                wallet,
                investor: investor_of(c, org, wallet).await.db()?,
            })),
            PartyRef::Investor(id) => {
                let Some(wallets) = wallets_of(c, org, id.as_uuid()).await.db()? else {
                    return Ok(Err(ValidationError::new(field, "no such investor in this organization")));
                };
                match wallets.as_slice() {
                    [one] => Ok(Ok(ResolvedParty {
                        wallet: super::parse(one, "wallet")?,
                        investor: Some(id.as_uuid()),
                    })),
                    [] => Ok(Err(ValidationError::new(field, "the investor has no wallet"))),
                    _ => Ok(Err(ValidationError::new(
                        field,
                        "the investor has several wallets; name the wallet instead of the investor",
                    ))),
                }
            }
        }
    }

    /// The token (deployed, of `org`) and both parties, or the field that
    /// does not resolve.
    pub(crate) async fn resolve(
        c: &mut Conn,
        org: Uuid,
        r: &TransferRequest,
    ) -> RepoResult<Result<(TokenFacts, ResolvedParty, ResolvedParty), ValidationError>> {
        let facts = token_facts(&mut *c, r.token_id.as_uuid()).await.db()?;
        let Some(facts) = facts.filter(|f| f.org_id == org) else {
            return Ok(Err(ValidationError::new("token_id", "no such token in this organization")));
        };
        if facts.status != "deployed" {
            return Ok(Err(ValidationError::new(
                "token_id",
                format!("the token is {}, not deployed", facts.status),
            )));
        }
        let from = match party(&mut *c, org, r.from, "from").await? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let to = match party(&mut *c, org, r.to, "to").await? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        if from.wallet == to.wallet {
            return Ok(Err(ValidationError::new("to", "must be another wallet than the sender's")));
        }
        Ok(Ok((facts, from, to)))
    }

    async fn investor_facts(c: &mut Conn, investor: Option<Uuid>) -> sqlx::Result<Option<InvestorFacts>> {
        let Some(id) = investor else { return Ok(None) };
        query_as(
            "SELECT i.kyc_status, i.kyc_expires_at, i.country, s.status AS screening \
             FROM investors i LEFT JOIN investor_screenings s ON s.investor_id = i.id WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(c)
        .await
    }

    async fn registered(c: &mut Conn, org: Uuid, wallet: Address) -> sqlx::Result<bool> {
        let status: Option<String> = query_scalar(
            "SELECT status FROM identity_registrations WHERE org_id = $1 AND address = $2",
        )
        .bind(org)
        .bind(hex(wallet))
        .fetch_optional(c)
        .await?;
        Ok(status.as_deref() == Some("registered"))
    }

    /// Reads everything the snapshot needs, on one connection (inside the
    /// check's transaction, or a reader's for a dry run). `exclude` is the
    /// transfer being checked, left out of its sender's activity.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn read(
        c: &mut Conn,
        org: Uuid,
        token: &TokenFacts,
        rules: &RuleSet,
        from: ResolvedParty,
        to: ResolvedParty,
        amount: Amount,
        exclude: Option<Uuid>,
    ) -> RepoResult<Readings> {
        let now = Utc::now();
        let chain_id = token.chain_id.unwrap_or_default();
        let contract = token.address.clone().unwrap_or_default();
        let indexed_block: Option<i64> = query_scalar("SELECT block_number FROM indexer_state WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_optional(&mut *c)
            .await
            .db()?;
        let indexed_block = indexed_block.unwrap_or(0);
        let holders: Vec<HolderRow> = query_as(
            "SELECT h.wallet, h.balance, w.investor_id, i.country FROM holdings h \
             LEFT JOIN investor_wallets w ON w.org_id = $3 AND w.address = h.wallet \
             LEFT JOIN investors i ON i.id = w.investor_id \
             WHERE h.chain_id = $1 AND h.contract = $2 AND h.token_id = '' AND h.balance <> '0'",
        )
        .bind(chain_id)
        .bind(&contract)
        .bind(org)
        .fetch_all(&mut *c)
        .await
        .db()?;
        let holding = |w: Address| {
            query_as::<_, (String, String, bool)>(
                "SELECT balance, frozen, wallet_frozen FROM holdings \
                 WHERE chain_id = $1 AND contract = $2 AND token_id = '' AND wallet = $3",
            )
            .bind(chain_id)
            .bind(contract.clone())
            .bind(hex(w))
        };
        let sender = holding(from.wallet).fetch_optional(&mut *c).await.db()?;
        let sender_holding = match sender {
            Some((b, f, frozen)) => (super::amount(&b)?, super::amount(&f)?, frozen),
            None => (Amount::ZERO, Amount::ZERO, false),
        };
        let receiver = holding(to.wallet).fetch_optional(&mut *c).await.db()?;
        let receiver_frozen = receiver.is_some_and(|r| r.2);
        let on_its_way: Vec<OnItsWay> = query_as(concat!(
            "SELECT from_wallet, to_wallet, to_investor_id, amount FROM transfers \
             WHERE token_id = $1 AND ", on_its_way!(), " AND ($3 IS NULL OR id <> $3)"
        ))
        .bind(token.id)
        .bind(indexed_block)
        .bind(exclude)
        .fetch_all(&mut *c)
        .await
        .db()?;
        let paused: Option<String> = query_scalar(
            "SELECT kind FROM onchain_events WHERE chain_id = $1 AND contract = $2 \
             AND kind IN ('paused', 'unpaused') ORDER BY block_number DESC, log_index DESC LIMIT 1",
        )
        .bind(chain_id)
        .bind(&contract)
        .fetch_optional(&mut *c)
        .await
        .db()?;
        let lockup: Option<String> = query_scalar(
            "SELECT data FROM onchain_events WHERE chain_id = $1 AND contract = $2 \
             AND kind = 'compliance_changed' AND data LIKE $3 \
             ORDER BY block_number DESC, log_index DESC LIMIT 1",
        )
        .bind(chain_id)
        .bind(token.compliance_address.clone().unwrap_or_default())
        .bind(format!("%\"LockupSet\"%[\"wallet\",\"{}\"]%", from.wallet))
        .fetch_optional(&mut *c)
        .await
        .db()?;
        let window = rules
            .structuring
            .as_ref()
            .map_or(0, |s| s.window_seconds)
            .max(30 * 24 * 3600)
            .min(i64::MAX as u64 / 1000);
        let recent: Vec<(Uuid, String)> = match from.investor {
            None => Vec::new(),
            Some(investor) => query_as(
                "SELECT id, amount FROM transfers WHERE org_id = $1 AND from_investor_id = $2 \
                 AND id >= $3 AND ($4 IS NULL OR id <> $4) \
                 AND status NOT IN ('rejected', 'cancelled', 'failed')",
            )
            .bind(org)
            .bind(investor)
            .bind(v7_floor(now - TimeDelta::seconds(window as i64)))
            .bind(exclude)
            .fetch_all(&mut *c)
            .await
            .db()?,
        };
        Ok(Readings {
            now,
            amount,
            from,
            to,
            from_facts: investor_facts(&mut *c, from.investor).await.db()?,
            to_facts: investor_facts(&mut *c, to.investor).await.db()?,
            from_registered: registered(&mut *c, org, from.wallet).await.db()?,
            to_registered: registered(&mut *c, org, to.wallet).await.db()?,
            indexed_block: indexed_block as u64,
            holders,
            sender_holding,
            receiver_frozen,
            on_its_way,
            paused: paused.as_deref() == Some("paused"),
            unlock_at: unlock_at_of(lockup)?,
            recent,
            rules: rules.clone(),
        })
    }

    pub(crate) async fn insert(
        c: &mut Conn,
        id: Uuid,
        org: Uuid,
        r: &TransferRequest,
        from: ResolvedParty,
        to: ResolvedParty,
        actor: &str,
    ) -> sqlx::Result<TransferRow> {
        query_as(concat!(
            "INSERT INTO transfers (id, org_id, token_id, from_investor_id, from_wallet, \
             to_investor_id, to_wallet, amount, status, requested_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending_compliance', $9) RETURNING ",
            transfer_columns!()
        ))
        .bind(id)
        .bind(org)
        .bind(r.token_id.as_uuid())
        .bind(from.investor)
        .bind(hex(from.wallet))
        .bind(to.investor)
        .bind(hex(to.wallet))
        .bind(r.amount.to_string())
        .bind(actor)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn lock(c: &mut Conn, org: Option<Uuid>, id: Uuid) -> sqlx::Result<Option<TransferRow>> {
        query_as(concat!(
            "SELECT ", transfer_columns!(),
            " FROM transfers WHERE id = $1 AND ($2 IS NULL OR org_id = $2) ", lock!()
        ))
        .bind(id)
        .bind(org)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn get(pool: &Pool, org: Uuid, id: Uuid) -> sqlx::Result<Option<TransferRow>> {
        query_as(concat!("SELECT ", transfer_columns!(), " FROM transfers WHERE id = $1 AND org_id = $2"))
            .bind(id)
            .bind(org)
            .fetch_optional(pool)
            .await
    }

    pub(crate) async fn list(
        pool: &Pool,
        org: Uuid,
        f: &TransferFilter,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<TransferRow>> {
        query_as(concat!(
            "SELECT ", transfer_columns!(),
            " FROM transfers WHERE org_id = $1 AND ($2 IS NULL OR id > $2) \
             AND ($3 IS NULL OR token_id = $3) \
             AND ($4 IS NULL OR from_investor_id = $4 OR to_investor_id = $4) \
             AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR id >= $6) AND ($7 IS NULL OR id < $7) \
             ORDER BY id LIMIT $8"
        ))
        .bind(org)
        .bind(after)
        .bind(f.token_id.map(|t| t.as_uuid()))
        .bind(f.investor_id.map(|i| i.as_uuid()))
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.from.map(v7_floor))
        .bind(f.until.map(v7_floor))
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    /// Takes the snapshot of a stored transfer on `c` and evaluates its
    /// token's rules over it (a caller deciding on the result holds the
    /// token's lock).
    pub(crate) async fn evaluate_stored(c: &mut Conn, t: &Transfer) -> RepoResult<ComplianceRecord> {
        let facts = token_facts(&mut *c, t.token_id.as_uuid())
            .await
            .db()?
            .ok_or(RepoError::NotFound)?;
        let rules = facts.rule_set()?;
        let readings = read(
            &mut *c,
            t.org_id.as_uuid(),
            &facts,
            &rules,
            ResolvedParty::of(t.from_wallet, t.from_investor_id),
            ResolvedParty::of(t.to_wallet, t.to_investor_id),
            t.amount,
            Some(t.id),
        )
        .await?;
        let snapshot = super::assemble(readings)?;
        let verdicts = evaluate(&rules, &snapshot);
        Ok(facts.record(rules, verdicts, snapshot))
    }

    pub(crate) async fn get_any(c: &mut Conn, id: Uuid) -> sqlx::Result<Option<TransferRow>> {
        query_as(concat!("SELECT ", transfer_columns!(), " FROM transfers WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn set_review(c: &mut Conn, id: Uuid, review: &str) -> sqlx::Result<()> {
        query("UPDATE transfers SET review = $2 WHERE id = $1")
            .bind(id)
            .bind(review)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn in_batch(c: &mut Conn, id: Uuid) -> sqlx::Result<bool> {
        let batch: Option<Uuid> = query_scalar("SELECT batch_id FROM transfers WHERE id = $1")
            .bind(id)
            .fetch_optional(c)
            .await?
            .flatten();
        Ok(batch.is_some())
    }

    pub(crate) async fn set_status(c: &mut Conn, id: Uuid, status: &str) -> sqlx::Result<()> {
        query(concat!("UPDATE transfers SET status = $2, updated_at = ", now!(), " WHERE id = $1"))
            .bind(id)
            .bind(status)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn decide(c: &mut Conn, id: Uuid, status: &str, record: &str) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE transfers SET status = $2, compliance = $3, updated_at = ", now!(), " WHERE id = $1"
        ))
        .bind(id)
        .bind(status)
        .bind(record)
        .execute(c)
        .await
        .map(|_| ())
    }
}
