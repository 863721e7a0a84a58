//! Transfers between investors' wallets: the request as validated at the
//! edge, the stored [`Transfer`] with its compliance record, the status
//! machine (DESIGN §4) and the repository port.
//!
//! ```text
//! pending_compliance ─→ approved ─→ submitted → confirmed → settled
//!        │  └→ manual_review ─┘ │        └──────────┴──→ failed
//!        └──────┴──→ rejected ←─┘ (re-checked before sending)
//! pending_compliance | manual_review | approved ─→ cancelled
//! ```
//!
//! A transfer is checked by the `compliance-check` job: the store takes a
//! [`Snapshot`] under the token's lock, [`evaluate`](crate::compliance::evaluate)
//! runs every rule, and the decision is written in the same transaction, so
//! an approval reserves its amount (approved transfers not yet indexed are
//! subtracted from the sender's available balance) and two checks can never
//! approve against one balance.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, B256};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::amount::Amount;
use crate::compliance::{RiskDecision, RiskOutcome, RuleSet, Snapshot, Verdict};
use crate::idempotency::Completion;
use crate::investor::parse_wallet;
use crate::page::{Page, PageRequest};
use crate::{Actor, InvestorId, OrgId, RepoResult, TokenId, ValidationError};

/// The queue compliance checks run on.
pub const COMPLIANCE_QUEUE: &str = "compliance-check";
/// The job kind checking one transfer.
pub const CHECK_KIND: &str = "compliance-check";

/// A transfer's id.
pub type TransferId = Uuid;

/// Where a transfer stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Accepted; its compliance check is queued.
    PendingCompliance,
    /// Waiting for a compliance officer's decision.
    ManualReview,
    /// Every rule passed; its amount is reserved.
    Approved,
    /// A rule failed, or a reviewer refused it: terminal.
    Rejected,
    /// Its transaction was broadcast.
    Submitted,
    /// In a canonical block, not yet final.
    Confirmed,
    /// Final on-chain: terminal.
    Settled,
    /// Reverted on-chain: terminal.
    Failed,
    /// Cancelled before submission: terminal.
    Cancelled,
}

impl TransferStatus {
    /// Every status.
    pub const ALL: [TransferStatus; 9] = [
        TransferStatus::PendingCompliance,
        TransferStatus::ManualReview,
        TransferStatus::Approved,
        TransferStatus::Rejected,
        TransferStatus::Submitted,
        TransferStatus::Confirmed,
        TransferStatus::Settled,
        TransferStatus::Failed,
        TransferStatus::Cancelled,
    ];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TransferStatus::PendingCompliance => "pending_compliance",
            TransferStatus::ManualReview => "manual_review",
            TransferStatus::Approved => "approved",
            TransferStatus::Rejected => "rejected",
            TransferStatus::Submitted => "submitted",
            TransferStatus::Confirmed => "confirmed",
            TransferStatus::Settled => "settled",
            TransferStatus::Failed => "failed",
            TransferStatus::Cancelled => "cancelled",
        }
    }

    /// Whether it can no longer change.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            TransferStatus::Rejected
                | TransferStatus::Settled
                | TransferStatus::Failed
                | TransferStatus::Cancelled
        )
    }

    /// Whether `POST /v1/transfers/{id}/cancel` may still stop it.
    pub const fn cancellable(self) -> bool {
        matches!(
            self,
            TransferStatus::PendingCompliance
                | TransferStatus::ManualReview
                | TransferStatus::Approved
        )
    }

    /// The event appended when a transfer enters this status.
    pub fn event(self) -> String {
        format!("transfer.{}", self.as_str())
    }
}

impl fmt::Display for TransferStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransferStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ValidationError::new("status", format!("unknown status {s:?}")))
    }
}

/// One side of a transfer as asked: an investor (who must then have exactly
/// one wallet) or a wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartyRef {
    /// An investor of the organization.
    Investor(InvestorId),
    /// A wallet (the organization's investor's, or not).
    Wallet(Address),
}

impl PartyRef {
    /// Parses an investor id (a UUID) or an EIP-55 (or all-lower-case)
    /// wallet; the error names `field`.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ValidationError> {
        if raw.starts_with("0x") || raw.starts_with("0X") {
            return parse_wallet(raw, field).map(PartyRef::Wallet);
        }
        Uuid::parse_str(raw)
            .map(|u| PartyRef::Investor(InvestorId::from_uuid(u)))
            .map_err(|_| {
                ValidationError::new(
                    field,
                    "must be an investor id (UUID) or a wallet address (0x…)",
                )
            })
    }
}

/// A transfer request as received.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferDraft {
    /// The token.
    pub token_id: String,
    /// Sender: investor id or wallet.
    pub from: String,
    /// Receiver: investor id or wallet.
    pub to: String,
    /// Base units, more than zero.
    pub amount: String,
}

/// A validated transfer request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferRequest {
    /// The token.
    pub token_id: TokenId,
    /// Sender.
    pub from: PartyRef,
    /// Receiver.
    pub to: PartyRef,
    /// Base units.
    pub amount: Amount,
}

impl TransferRequest {
    /// Validates a draft, reporting every bad field.
    pub fn parse(d: &TransferDraft) -> Result<Self, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let token_id = Uuid::parse_str(&d.token_id)
            .map(TokenId::from_uuid)
            .map_err(|_| ValidationError::new("token_id", "must be a token id (UUID)"));
        // The zero address holds nothing and can receive nothing (the token
        // answers `InvalidReceiver`).
        let not_zero = |p: PartyRef, field: &str| match p {
            PartyRef::Wallet(w) if w.is_zero() => {
                Err(ValidationError::new(field, "must not be the zero address"))
            }
            p => Ok(p),
        };
        let from = PartyRef::parse(&d.from, "from").and_then(|p| not_zero(p, "from"));
        let to = PartyRef::parse(&d.to, "to").and_then(|p| not_zero(p, "to"));
        let amount = Amount::parse(&d.amount, "amount").and_then(|a| {
            if a.get().is_zero() {
                Err(ValidationError::new("amount", "must be more than zero"))
            } else {
                Ok(a)
            }
        });
        let token_id = token_id.map_err(|e| errors.push(e)).ok();
        let from = from.map_err(|e| errors.push(e)).ok();
        let to = to.map_err(|e| errors.push(e)).ok();
        let amount = amount.map_err(|e| errors.push(e)).ok();
        if let (Some(f), Some(t)) = (from, to)
            && f == t
        {
            errors.push(ValidationError::new("to", "must differ from from"));
        }
        match (token_id, from, to, amount) {
            (Some(token_id), Some(from), Some(to), Some(amount)) if errors.is_empty() => Ok(Self {
                token_id,
                from,
                to,
                amount,
            }),
            _ => Err(errors),
        }
    }
}

/// The compliance record of a checked transfer: the rule-set version it
/// was evaluated under, what the rules read and what they said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComplianceRecord {
    /// The token's latest rule-set version: its off-chain rules applied.
    pub rule_set_version: u32,
    /// The version whose on-chain rules the compliance contract enforced
    /// (earlier than `rule_set_version` while a change is on its way).
    #[serde(default = "first_version")]
    pub onchain_rule_set_version: u32,
    /// The rules evaluated: the on-chain ones in force, the version's
    /// off-chain ones, the organization's defaults for what it left unset.
    #[serde(default)]
    pub rules: Option<RuleSet>,
    /// Every rule's verdict.
    pub verdicts: Vec<Verdict>,
    /// What the rules read.
    pub snapshot: Snapshot,
}

fn first_version() -> u32 {
    crate::rule_set::FIRST_VERSION
}

/// A manual review's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    /// `approved` or `rejected`.
    pub decision: TransferStatus,
    /// Why.
    pub reason: String,
    /// Who decided.
    pub by: String,
}

/// A stored transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// Id.
    pub id: TransferId,
    /// Organization.
    pub org_id: OrgId,
    /// The token.
    pub token_id: TokenId,
    /// The sender's investor, when the wallet is one of the organization's.
    pub from_investor_id: Option<InvestorId>,
    /// The sending wallet.
    pub from_wallet: Address,
    /// The receiver's investor, when known.
    pub to_investor_id: Option<InvestorId>,
    /// The receiving wallet.
    pub to_wallet: Address,
    /// Base units.
    pub amount: Amount,
    /// Where it stands.
    pub status: TransferStatus,
    /// Its latest compliance check (none before the first).
    pub compliance: Option<ComplianceRecord>,
    /// A manual review's outcome.
    pub review: Option<Review>,
    /// Its transaction's hash, once signed.
    pub tx_hash: Option<B256>,
    /// Its block, once mined.
    pub block_number: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// Database time of creation.
    pub created_at: DateTime<Utc>,
    /// Database time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// Filters of `GET /v1/transfers` (every given one holds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransferFilter {
    /// Only this token's.
    pub token_id: Option<TokenId>,
    /// Only those this investor sends or receives.
    pub investor_id: Option<InvestorId>,
    /// Only in this status.
    pub status: Option<TransferStatus>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// The outcome of a request the store resolves (its parties) before acting.
#[derive(Clone, Debug)]
pub enum Resolved<T> {
    /// Done.
    Done(T),
    /// A field does not resolve (an unknown token or investor, an investor
    /// with no or several wallets); nothing was stored.
    Refused(ValidationError),
}

/// What a dry run returns: the version, what the rules read and what they
/// said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The rule set evaluated.
    pub rule_set: RuleSet,
    /// Its record.
    pub record: ComplianceRecord,
}

/// Where a check leaves a transfer: rejected when a rule fails (whatever
/// the engine says); otherwise as the external risk engine decides, with
/// no engine configured an approval, and an engine that cannot answer a
/// manual review, never an approval.
pub fn decide(rules_passed: bool, engine: Option<&RiskOutcome>) -> TransferStatus {
    match (rules_passed, engine) {
        (false, _) => TransferStatus::Rejected,
        (true, None) => TransferStatus::Approved,
        (true, Some(RiskOutcome::Assessed(a))) => match a.decision {
            RiskDecision::Approve => TransferStatus::Approved,
            RiskDecision::Review => TransferStatus::ManualReview,
            RiskDecision::Reject => TransferStatus::Rejected,
        },
        (true, Some(RiskOutcome::Unavailable(_))) => TransferStatus::ManualReview,
    }
}

/// Transfers. Request-path methods take the caller's organization; the
/// `system_*` ones serve the compliance job.
#[async_trait]
pub trait TransferRepository: Send + Sync {
    /// Resolves the parties, stores the transfer (`pending_compliance`)
    /// with its compliance-check job, audit entry and event, and records
    /// `done` under its idempotency key, in one transaction.
    async fn create(
        &self,
        org: OrgId,
        request: &TransferRequest,
        actor: &Actor,
        done: &Completion<Transfer>,
    ) -> RepoResult<Resolved<Transfer>>;

    /// Runs the rules on a request without storing anything.
    async fn check(&self, org: OrgId, request: &TransferRequest) -> RepoResult<Resolved<Check>>;

    /// One transfer of `org`.
    async fn get(&self, org: OrgId, id: TransferId) -> RepoResult<Transfer>;

    /// Transfers of `org` matching `filter`, oldest first.
    async fn list(
        &self,
        org: OrgId,
        filter: &TransferFilter,
        page: PageRequest,
    ) -> RepoResult<Page<Transfer>>;

    /// Cancels a transfer not yet submitted (a conflict otherwise); its
    /// reservation, if approved, is released with it.
    async fn cancel(&self, org: OrgId, id: TransferId, actor: &Actor) -> RepoResult<Transfer>;

    /// Evaluates the rules for a `pending_compliance` transfer without
    /// deciding (to learn whether to ask the risk engine); `None` when it
    /// is no longer pending.
    async fn system_precheck(
        &self,
        id: TransferId,
    ) -> RepoResult<Option<(Transfer, ComplianceRecord)>>;

    /// Checks a `pending_compliance` transfer: under the token's lock, takes
    /// the snapshot, evaluates the current rule set, adds the risk engine's
    /// verdict when one was asked, and moves it as [`decide`] says
    /// (`approved`, reserving the amount; `manual_review`; `rejected`), with
    /// its record, audit entry and event. Answers the transfer as it stands
    /// (unchanged when no longer pending).
    async fn system_check(
        &self,
        id: TransferId,
        engine: Option<RiskOutcome>,
    ) -> RepoResult<Transfer>;

    /// Decides a transfer in `manual_review` (a conflict otherwise): a
    /// rejection ends it; an approval is checked against the current state
    /// under the token's lock first, and approved (reserving the amount) or
    /// rejected with the new verdicts. The reviewer is audited.
    async fn review(
        &self,
        org: OrgId,
        id: TransferId,
        review: &Review,
        actor: &Actor,
    ) -> RepoResult<Transfer>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(token: &str, from: &str, to: &str, amount: &str) -> TransferDraft {
        TransferDraft {
            token_id: token.into(),
            from: from.into(),
            to: to.into(),
            amount: amount.into(),
        }
    }

    #[test]
    fn requests_name_every_bad_field() {
        let errors = TransferRequest::parse(&draft("x", "y", "0x12", "0")).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["token_id", "from", "to", "amount"]);
        let token = Uuid::now_v7().to_string();
        let investor = Uuid::now_v7().to_string();
        let wallet = format!("{}", Address::repeat_byte(0xab));
        let ok = TransferRequest::parse(&draft(&token, &investor, &wallet, "10")).unwrap();
        assert_eq!(ok.to, PartyRef::Wallet(Address::repeat_byte(0xab)));
        assert!(matches!(ok.from, PartyRef::Investor(_)));
        let same = TransferRequest::parse(&draft(&token, &wallet, &wallet, "1")).unwrap_err();
        assert_eq!(same[0].field, "to");
        let zero = format!("{}", Address::ZERO);
        let nowhere = TransferRequest::parse(&draft(&token, &wallet, &zero, "1")).unwrap_err();
        assert_eq!(nowhere[0].field, "to");
        assert_eq!(nowhere[0].message, "must not be the zero address");
    }

    #[test]
    fn statuses_round_trip_and_know_their_ends() {
        for s in TransferStatus::ALL {
            assert_eq!(s.as_str().parse::<TransferStatus>().unwrap(), s);
            assert!(!(s.is_terminal() && s.cancellable()), "{s}");
        }
        assert_eq!(TransferStatus::Settled.event(), "transfer.settled");
    }
}
