//! Issuer operations: mint, burn, freeze, unfreeze, forced transfer, pause,
//! unpause and wallet recovery, each an [`Operation`] whose status follows
//! the transaction that carries it.
//!
//! ```text
//! awaiting_approval ─approve→ pending → submitted → confirmed → settled
//!        └─reject→ rejected      └──────────┴──────────┴──────→ failed
//!                                      confirmed → submitted (reorged out)
//! ```
//!
//! Four-eyes kinds (burn, forced transfer, pause, recovery, and mints above
//! the token's threshold) wait for a second actor. A mint is checked here,
//! before it is accepted ([`check_mint`]), against the investor, the wallet's
//! registration and the token's limits, so the caller learns which rule
//! fails without waiting for a revert. Mints and burns of one token are
//! carried many per transaction (`batchMint`, `batchBurn`).

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, B256, U256};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::amount::Amount;
use crate::idempotency::Completion;
use crate::identity::RegistrationStatus;
use crate::investor::{Investor, KycStatus};
use crate::page::{Page, PageRequest};
use crate::rule_set::RuleChange;
use crate::token::{ComplianceRules, TokenDeployment};
use crate::tx::{Lane, TxState};
use crate::{Actor, InvestorId, OrgId, RepoResult, TokenId, ValidationError};

/// The queue operations run on.
pub const SETTLEMENT_QUEUE: &str = "settlement";
/// The job kind carrying an organization's operations to the chain.
pub const SYNC_KIND: &str = "operations-sync";
/// The periodic job deleting idempotency keys past their keeping time and
/// reviving an organization's operations job that ran out of attempts.
pub const MAINTENANCE_KIND: &str = "operations-maintenance";

/// An operation's id.
pub type OperationId = Uuid;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationKind {
    /// New tokens to a wallet.
    Mint,
    /// Tokens destroyed from a wallet.
    Burn,
    /// A whole wallet frozen, or part of its balance.
    Freeze,
    /// A wallet unfrozen, or part of its frozen balance released.
    Unfreeze,
    /// Tokens moved between wallets by the issuer.
    ForcedTransfer,
    /// Every transfer of the token stopped.
    Pause,
    /// Transfers resumed.
    Unpause,
    /// A lost wallet's balance, freeze and lockup moved to a new wallet of
    /// the same investor, on every token of the organization.
    Recovery,
    /// A new rule-set version's on-chain part applied to the token's
    /// compliance contract (`setRules`).
    RuleSetChange,
}

impl OperationKind {
    /// Every kind.
    pub const ALL: [OperationKind; 9] = [
        OperationKind::Mint,
        OperationKind::Burn,
        OperationKind::Freeze,
        OperationKind::Unfreeze,
        OperationKind::ForcedTransfer,
        OperationKind::Pause,
        OperationKind::Unpause,
        OperationKind::Recovery,
        OperationKind::RuleSetChange,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationKind::Mint => "mint",
            OperationKind::Burn => "burn",
            OperationKind::Freeze => "freeze",
            OperationKind::Unfreeze => "unfreeze",
            OperationKind::ForcedTransfer => "forced_transfer",
            OperationKind::Pause => "pause",
            OperationKind::Unpause => "unpause",
            OperationKind::Recovery => "recovery",
            OperationKind::RuleSetChange => "rule_set_change",
        }
    }

    /// The signer lane that sends it (the contracts grant each lane only
    /// the roles its kinds need).
    pub const fn lane(self) -> Lane {
        match self {
            OperationKind::Mint | OperationKind::Burn => Lane::Mint,
            // The deploy lane owns the compliance contracts it deployed.
            OperationKind::RuleSetChange => Lane::Deploy,
            _ => Lane::Admin,
        }
    }

    /// Whether several of one token travel in one transaction.
    pub const fn batched(self) -> bool {
        matches!(self, OperationKind::Mint | OperationKind::Burn)
    }

    /// Whether it always needs a second actor's approval.
    pub const fn always_four_eyes(self) -> bool {
        matches!(
            self,
            OperationKind::Burn
                | OperationKind::ForcedTransfer
                | OperationKind::Pause
                | OperationKind::Recovery
                | OperationKind::RuleSetChange
        )
    }
}

impl fmt::Display for OperationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationKind {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ValidationError::new("kind", format!("unknown operation kind {s:?}")))
    }
}

/// Where an operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    /// Waiting for a second actor.
    AwaitingApproval,
    /// Accepted; no transaction broadcast yet.
    Pending,
    /// Its transaction was broadcast, not yet in a canonical block.
    Submitted,
    /// In a canonical block, not yet final.
    Confirmed,
    /// Final on-chain: terminal.
    Settled,
    /// Refused on-chain, or could not be sent: terminal.
    Failed,
    /// Refused by the second actor: terminal.
    Rejected,
}

impl OperationStatus {
    /// Every status.
    pub const ALL: [OperationStatus; 7] = [
        OperationStatus::AwaitingApproval,
        OperationStatus::Pending,
        OperationStatus::Submitted,
        OperationStatus::Confirmed,
        OperationStatus::Settled,
        OperationStatus::Failed,
        OperationStatus::Rejected,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationStatus::AwaitingApproval => "awaiting_approval",
            OperationStatus::Pending => "pending",
            OperationStatus::Submitted => "submitted",
            OperationStatus::Confirmed => "confirmed",
            OperationStatus::Settled => "settled",
            OperationStatus::Failed => "failed",
            OperationStatus::Rejected => "rejected",
        }
    }

    /// Whether it can no longer change.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            OperationStatus::Settled | OperationStatus::Failed | OperationStatus::Rejected
        )
    }

    /// The status of an operation whose transaction is in `state`.
    pub const fn of_tx(state: TxState) -> OperationStatus {
        match state {
            TxState::Pending => OperationStatus::Pending,
            TxState::Submitted => OperationStatus::Submitted,
            TxState::Confirmed => OperationStatus::Confirmed,
            TxState::Settled => OperationStatus::Settled,
            TxState::Failed => OperationStatus::Failed,
        }
    }

    /// The event appended when an operation enters this status.
    pub fn event(self) -> String {
        format!("operation.{}", self.as_str())
    }
}

impl fmt::Display for OperationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OperationStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ValidationError::new("status", format!("unknown status {s:?}")))
    }
}

/// One transaction carrying (part of) an operation: a recovery has one per
/// token of the organization, every other kind one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OperationTx {
    /// The token it acts on.
    pub token_id: TokenId,
    /// Where the transaction stands (`pending` before it is first sent).
    pub state: TxState,
    /// Its hash, once signed.
    pub tx_hash: Option<B256>,
    /// Its block, once mined.
    pub block_number: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A stored operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Operation {
    /// Id.
    pub id: OperationId,
    /// Owning organization.
    pub org_id: OrgId,
    /// The token (none for a recovery: it acts on every token).
    pub token_id: Option<TokenId>,
    /// What it does.
    pub kind: OperationKind,
    /// Where it stands.
    pub status: OperationStatus,
    /// The wallet acted on: minted to, burned from, frozen, sent from by a
    /// forced transfer, or lost (recovery).
    pub wallet: Option<Address>,
    /// The forced transfer's receiver, or the recovery's new wallet.
    pub counterparty: Option<Address>,
    /// The investor owning `wallet`, when known.
    pub investor_id: Option<InvestorId>,
    /// Base units (none: a whole-wallet freeze, a pause).
    pub amount: Option<Amount>,
    /// Why, for forced transfers.
    pub reason: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// Who approved (four-eyes kinds).
    pub approved_by: Option<String>,
    /// Who rejected, and why.
    pub rejected_by: Option<String>,
    /// The rejection's reason.
    pub rejection_reason: Option<String>,
    /// What a rule-set change does to the compliance contract.
    #[serde(skip)]
    pub rule_change: Option<RuleChange>,
    /// Its transactions.
    pub transactions: Vec<OperationTx>,
    /// Why it failed.
    pub error: Option<String>,
    /// Database time of creation.
    pub created_at: DateTime<Utc>,
    /// Database time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// An operation to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOperation {
    /// What it does.
    pub kind: OperationKind,
    /// The token (none for a recovery).
    pub token_id: Option<TokenId>,
    /// See [`Operation::wallet`].
    pub wallet: Option<Address>,
    /// See [`Operation::counterparty`].
    pub counterparty: Option<Address>,
    /// See [`Operation::investor_id`].
    pub investor_id: Option<InvestorId>,
    /// See [`Operation::amount`].
    pub amount: Option<Amount>,
    /// See [`Operation::reason`].
    pub reason: Option<String>,
    /// Whether it waits for a second actor.
    pub four_eyes: bool,
    /// A mint to an investor holding nothing of the token on-chain (counted
    /// against the token's holder limit until it settles).
    pub new_holder: bool,
    /// What a rule-set change does.
    pub rule_change: Option<RuleChange>,
}

impl NewOperation {
    /// Whether an operation of `kind` for `amount` waits for approval, given
    /// the token's mint threshold.
    pub fn needs_four_eyes(
        kind: OperationKind,
        amount: Option<Amount>,
        mint_threshold: Option<Amount>,
    ) -> bool {
        kind.always_four_eyes()
            || (kind == OperationKind::Mint
                && matches!((amount, mint_threshold), (Some(a), Some(t)) if a > t))
    }
}

/// Filters of `GET /v1/operations`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationFilter {
    /// Only this token's.
    pub token_id: Option<TokenId>,
    /// Only this kind.
    pub kind: Option<OperationKind>,
    /// Only this status.
    pub status: Option<OperationStatus>,
}

/// A forced transfer's reason: 1 to 500 characters, not blank.
pub fn parse_reason(raw: &str, field: &str) -> Result<String, ValidationError> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ValidationError::new(
            field,
            "must be 1 to 500 characters, not blank",
        ));
    }
    Ok(reason.to_owned())
}

// ---- the mint check ----

/// What the index holds of a token now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// The investor's balance over all their wallets, base units.
    pub investor_balance: U256,
    /// Investors holding the token (a wallet of no investor counts alone).
    pub holder_count: u64,
    /// The last block the index holds: mints in later blocks (or in none
    /// yet) are counted as on their way.
    pub indexed_block: u64,
}

/// Mints accepted and not in the index yet (nor failed or rejected) of one
/// token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingMints {
    /// Their total to the investor.
    pub to_investor: U256,
    /// Whether one of them already makes the investor a new holder.
    pub investor_counted: bool,
    /// How many of them make an investor a new holder.
    pub new_holders: u64,
}

/// A rule a mint fails, named for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    /// The rule (`kyc_approved`, `wallet_registered`, ...).
    pub rule: &'static str,
    /// The request field it concerns.
    pub field: &'static str,
    /// What is wrong.
    pub detail: String,
}

/// Everything [`check_mint`] looks at.
pub struct MintContext<'a> {
    /// The receiving investor.
    pub investor: &'a Investor,
    /// The receiving wallet (one of the investor's).
    pub wallet: Address,
    /// The amount.
    pub amount: Amount,
    /// The token's rules.
    pub rules: &'a ComplianceRules,
    /// What the index holds now.
    pub holding: Holding,
    /// Mints on their way.
    pub pending: PendingMints,
    /// Now.
    pub now: DateTime<Utc>,
}

/// Checks a mint before it is accepted: the first rule it fails, or whether
/// it makes the investor a new holder. The contract checks the same at
/// sending time; this spares the caller a revert.
pub fn check_mint(c: &MintContext<'_>) -> Result<bool, RuleFailure> {
    let fail = |rule, detail: String| {
        Err(RuleFailure {
            rule,
            field: "to",
            detail,
        })
    };
    let i = c.investor;
    if i.kyc_status != KycStatus::Approved {
        return fail(
            "kyc_approved",
            format!("the investor's KYC status is {}", i.kyc_status),
        );
    }
    if i.kyc_expires_at.is_some_and(|e| e <= c.now) {
        return fail(
            "kyc_approved",
            "the investor's KYC approval has expired".into(),
        );
    }
    let registered = i
        .registrations
        .iter()
        .any(|r| r.address == c.wallet && r.status == RegistrationStatus::Registered);
    if !registered {
        return fail(
            "wallet_registered",
            format!(
                "wallet {} is not registered in the identity registry yet",
                c.wallet
            ),
        );
    }
    let r = c.rules;
    if !r.country_allow.is_empty() && !r.country_allow.contains(&i.country) {
        return fail(
            "country_allowed",
            format!("the investor's country {} is not allowed", i.country),
        );
    }
    if r.country_block.contains(&i.country) {
        return fail(
            "country_not_blocked",
            format!("the investor's country {} is blocked", i.country),
        );
    }
    let amount = c.amount.get();
    let held = c
        .holding
        .investor_balance
        .saturating_add(c.pending.to_investor);
    if let Some(max) = r.max_balance_per_investor
        && held.saturating_add(amount) > max.get()
    {
        return fail(
            "max_balance_per_investor",
            format!(
                "the investor would hold {} (holding {}, mints on their way {}), above the maximum {}",
                held.saturating_add(amount),
                c.holding.investor_balance,
                c.pending.to_investor,
                max
            ),
        );
    }
    let new_holder = held.is_zero() && !amount.is_zero() && !c.pending.investor_counted;
    if let Some(max) = r.max_holders
        && new_holder
    {
        let holders = c.holding.holder_count + c.pending.new_holders;
        if holders >= max {
            return fail(
                "max_holders",
                format!(
                    "a new holder would exceed the maximum of {max} ({} holding, {} on their way)",
                    c.holding.holder_count, c.pending.new_holders
                ),
            );
        }
    }
    Ok(new_holder)
}

/// What a mint is checked against when it is stored.
#[derive(Clone, Debug)]
pub struct MintGate {
    /// The receiving investor, as read for the request.
    pub investor: Investor,
    /// The token's rules.
    pub rules: ComplianceRules,
    /// What the index holds now.
    pub holding: Holding,
    /// Now.
    pub now: DateTime<Utc>,
}

/// The outcome of [`OperationRepository::create`].
#[derive(Clone, Debug)]
pub enum Created {
    /// Stored.
    Stored(Box<Operation>),
    /// A mint refused by a rule; nothing was stored.
    Refused(RuleFailure),
}

// ---- ports ----

/// What the index holds of a token: the mint check's balances, read from
/// the database (never from the chain on the request path).
#[async_trait]
pub trait HoldingsView: Send + Sync {
    /// The investor's holding of the deployed token, and the token's holders.
    async fn holding(
        &self,
        deployment: &TokenDeployment,
        investor: InvestorId,
    ) -> RepoResult<Holding>;
}

/// A group of operations of one token and kind carried by one transaction
/// (key [`OperationBatch::tx_key`]), or one token's part of a recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationBatch {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub org_id: OrgId,
    /// The token acted on.
    pub token_id: TokenId,
    /// The kind of every item.
    pub kind: OperationKind,
    /// The operations carried, in call order.
    pub items: Vec<Operation>,
    /// Its transaction, once submitted.
    pub tx_id: Option<crate::tx::TxId>,
    /// The transaction's state as last mirrored onto the batch.
    pub tx_state: TxState,
    /// Its hash as last mirrored.
    pub tx_hash: Option<B256>,
    /// Its block as last mirrored.
    pub block_number: Option<u64>,
}

impl OperationBatch {
    /// The idempotency key of the batch's transaction.
    pub fn tx_key(&self) -> String {
        format!("operation-batch:{}", self.id)
    }
}

/// Operations. Request-path methods take the caller's organization; the
/// `system_*` ones serve the operations job.
#[async_trait]
pub trait OperationRepository: Send + Sync {
    /// Stores an operation (`awaiting_approval` or `pending`) with its audit
    /// entry and `operation.requested` event, starts the organization's
    /// operations job when it is pending, and records `done` under its
    /// idempotency key, in one transaction. A mint with a `gate` is checked
    /// ([`check_mint`]) in that transaction against the mints already on
    /// their way (serialized per token when the token has limits), and
    /// stored only if it passes.
    async fn create(
        &self,
        org: OrgId,
        op: &NewOperation,
        gate: Option<&MintGate>,
        actor: &Actor,
        done: &Completion<Operation>,
    ) -> RepoResult<Created>;

    /// One operation of `org`.
    async fn get(&self, org: OrgId, id: OperationId) -> RepoResult<Operation>;

    /// Operations of `org` matching `filter`, oldest first.
    async fn list(
        &self,
        org: OrgId,
        filter: &OperationFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Operation>>;

    /// Approves an operation awaiting approval, by an actor other than its
    /// requester (a conflict otherwise, or when it no longer waits); it
    /// becomes `pending`.
    async fn approve(&self, org: OrgId, id: OperationId, actor: &Actor) -> RepoResult<Operation>;

    /// Rejects an operation awaiting approval, with a reason.
    async fn reject(
        &self,
        org: OrgId,
        id: OperationId,
        reason: &str,
        actor: &Actor,
    ) -> RepoResult<Operation>;

    /// Batches of `org` whose transaction is not final.
    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<OperationBatch>>;

    /// Groups `org`'s pending operations into new batches (mints and burns
    /// of one token up to `max_items` each; others alone; a recovery one per
    /// deployed token once its new wallet is registered, or failed when the
    /// registration failed) and stores them.
    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<OperationBatch>>;

    /// Records the transaction carrying a batch.
    async fn system_record_batch_tx(&self, batch: Uuid, tx: crate::tx::TxId) -> RepoResult<()>;

    /// Mirrors the batch's transaction onto the batch and its operations
    /// (each status change with its event); a final state closes the batch.
    /// A failed multi-item batch releases its operations to go alone;
    /// alone, they fail with `error`.
    async fn system_follow_batch(
        &self,
        batch: Uuid,
        state: TxState,
        tx_hash: Option<B256>,
        block_number: Option<u64>,
        error: Option<&str>,
    ) -> RepoResult<()>;

    /// Ends the organization's operations job if nothing is left to do.
    async fn system_finish_sync(&self, org: OrgId) -> RepoResult<bool>;

    /// Enqueues an operations job for every organization with work and no
    /// job left (its job ran out of attempts); answers how many.
    async fn system_revive(&self) -> RepoResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::country::Country;
    use crate::identity::Registration;
    use crate::investor::{Accreditation, InvestorKind};

    fn investor(status: KycStatus, registered: bool) -> Investor {
        let now: DateTime<Utc> = "2026-12-02T10:00:00Z".parse().unwrap();
        Investor {
            id: InvestorId::new(),
            org_id: OrgId::new(),
            name: "Ana".into(),
            email: "ana@example.com".into(),
            country: Country::parse("FR", "c").unwrap(),
            kind: InvestorKind::Individual,
            accreditation: Accreditation {
                accredited: false,
                expires_at: None,
            },
            external_ref: None,
            kyc_status: status,
            kyc_expires_at: Some(now + chrono::TimeDelta::days(30)),
            wallets: vec![],
            registrations: vec![Registration {
                address: Address::repeat_byte(1),
                status: if registered {
                    RegistrationStatus::Registered
                } else {
                    RegistrationStatus::Pending
                },
                error: None,
                updated_at: now,
            }],
            screening: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn check(
        i: &Investor,
        rules: &ComplianceRules,
        holding: Holding,
        pending: PendingMints,
        amount: u64,
    ) -> Result<bool, RuleFailure> {
        check_mint(&MintContext {
            investor: i,
            wallet: Address::repeat_byte(1),
            amount: Amount::parse(&amount.to_string(), "amount").unwrap(),
            rules,
            holding,
            pending,
            now: "2026-12-02T10:00:00Z".parse().unwrap(),
        })
    }

    fn rules() -> ComplianceRules {
        ComplianceRules {
            country_allow: vec![],
            country_block: vec![],
            max_balance_per_investor: Some(Amount::parse("1000", "x").unwrap()),
            max_holders: Some(2),
            lockup_seconds: 0,
        }
    }

    #[test]
    fn each_rule_is_named() {
        let r = rules();
        let h = Holding::default();
        let p = PendingMints::default();
        let rule = |res: Result<bool, RuleFailure>| res.unwrap_err().rule;
        assert_eq!(
            rule(check(&investor(KycStatus::Pending, true), &r, h, p, 1)),
            "kyc_approved"
        );
        assert_eq!(
            rule(check(&investor(KycStatus::Approved, false), &r, h, p, 1)),
            "wallet_registered"
        );
        let ok = investor(KycStatus::Approved, true);
        assert_eq!(check(&ok, &r, h, p, 1000), Ok(true));
        assert_eq!(rule(check(&ok, &r, h, p, 1001)), "max_balance_per_investor");
        let pending = PendingMints {
            to_investor: U256::from(600),
            investor_counted: true,
            new_holders: 1,
        };
        assert_eq!(
            rule(check(&ok, &r, h, pending, 401)),
            "max_balance_per_investor"
        );
        assert_eq!(
            check(&ok, &r, h, pending, 400),
            Ok(false),
            "already counted as a new holder"
        );
        let full = Holding {
            investor_balance: U256::ZERO,
            holder_count: 1,
            indexed_block: 0,
        };
        let others = PendingMints {
            new_holders: 1,
            ..PendingMints::default()
        };
        assert_eq!(rule(check(&ok, &r, full, others, 5)), "max_holders");
        let holder = Holding {
            investor_balance: U256::from(5),
            holder_count: 2,
            indexed_block: 0,
        };
        assert_eq!(
            check(&ok, &r, holder, p, 5),
            Ok(false),
            "an existing holder is not new"
        );
        let mut blocked = rules();
        blocked.country_block = vec![Country::parse("FR", "c").unwrap()];
        assert_eq!(rule(check(&ok, &blocked, h, p, 1)), "country_not_blocked");
        let mut allow = rules();
        allow.country_allow = vec![Country::parse("DE", "c").unwrap()];
        assert_eq!(rule(check(&ok, &allow, h, p, 1)), "country_allowed");
    }

    #[test]
    fn four_eyes_follows_kind_and_threshold() {
        let a = |n: &str| Some(Amount::parse(n, "x").unwrap());
        assert!(NewOperation::needs_four_eyes(
            OperationKind::Burn,
            a("1"),
            None
        ));
        assert!(!NewOperation::needs_four_eyes(
            OperationKind::Mint,
            a("100"),
            None
        ));
        assert!(!NewOperation::needs_four_eyes(
            OperationKind::Mint,
            a("100"),
            a("100")
        ));
        assert!(NewOperation::needs_four_eyes(
            OperationKind::Mint,
            a("101"),
            a("100")
        ));
        assert!(!NewOperation::needs_four_eyes(
            OperationKind::Freeze,
            None,
            None
        ));
        for k in OperationKind::ALL {
            assert_eq!(k.as_str().parse::<OperationKind>().unwrap(), k);
        }
        for s in OperationStatus::ALL {
            assert_eq!(s.as_str().parse::<OperationStatus>().unwrap(), s);
        }
    }
}
