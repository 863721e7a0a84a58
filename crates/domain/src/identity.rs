//! On-chain identity: what an organization's identity registry should say
//! about each wallet of its investors, and the batches that make it so.
//!
//! Every change to an investor that matters on-chain (an approval, a wallet
//! added or removed, a rejection or expiry, a new country or KYC expiry)
//! records, in its own transaction, the wallet's *wanted* registry entry. The
//! identity flow (`rwa-flows`) compares it with the entry the chain holds
//! once settled, and carries the differences in batches (`batchRegisterIdentity`,
//! `batchUpdateIdentity`, `batchRemoveIdentity`), one managed transaction each
//! on the admin lane. Only the investor's id hash, a numeric country and the
//! expiry go on-chain; never personal data.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::keccak256;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::chain::{Address, B256};
use crate::tx::TxId;
use crate::{InvestorId, OrgId, RepoResult};

/// The queue of identity work.
pub const IDENTITY_QUEUE: &str = "identity";
/// The job that carries an organization's pending registry changes to the chain.
pub const SYNC_KIND: &str = "identity-sync";
/// The periodic job that expires KYC approvals and accreditations.
pub const EXPIRY_SWEEP_KIND: &str = "investor-expiry-sweep";

/// The `bytes32` an investor is known by on-chain: `keccak256` of its UUID's
/// canonical text (hyphenated, lower case). It links a wallet to an investor
/// without revealing who the investor is.
pub fn investor_hash(id: InvestorId) -> B256 {
    keccak256(id.as_uuid().hyphenated().to_string().as_bytes())
}

/// Where a wallet's registration stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationStatus {
    /// The registry does not say what it should yet; a batch will carry it.
    Pending,
    /// The registry says what it should, in a settled transaction.
    Registered,
    /// The change was refused on-chain (the reason is kept); it is tried
    /// again when the wallet's wanted entry changes.
    Failed,
    /// The wallet was in the registry and is no longer, as wanted.
    Removed,
}

impl RegistrationStatus {
    /// The API's and the database's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Pending => "pending",
            RegistrationStatus::Registered => "registered",
            RegistrationStatus::Failed => "failed",
            RegistrationStatus::Removed => "removed",
        }
    }
}

impl fmt::Display for RegistrationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RegistrationStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pending" => Ok(RegistrationStatus::Pending),
            "registered" => Ok(RegistrationStatus::Registered),
            "failed" => Ok(RegistrationStatus::Failed),
            "removed" => Ok(RegistrationStatus::Removed),
            other => Err(format!("unknown registration status {other:?}")),
        }
    }
}

/// A wallet's registration, as the investor shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The wallet.
    pub address: Address,
    /// Where it stands.
    pub status: RegistrationStatus,
    /// Why the last change was refused on-chain, when `failed`.
    pub error: Option<String>,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
}

/// A registry entry: whose wallet, which country, verified until when.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The investor.
    pub investor_id: InvestorId,
    /// ISO 3166 numeric country.
    pub country: u16,
    /// KYC expiry, unix seconds.
    pub expires_at: u64,
}

/// One of the registry's batch calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityAction {
    /// `batchRegisterIdentity`: the wallet is not in the registry.
    Register,
    /// `batchUpdateIdentity`: the wallet is there for the same investor with
    /// another country or expiry.
    Update,
    /// `batchRemoveIdentity`: the wallet is there and should not be, or is
    /// there for another investor (it is registered again afterwards).
    Remove,
}

impl IdentityAction {
    /// The database's spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            IdentityAction::Register => "register",
            IdentityAction::Update => "update",
            IdentityAction::Remove => "remove",
        }
    }

    /// What brings the registry from `chain` (settled) to `want`; `None`
    /// when it already says what it should.
    pub fn needed(want: Option<Entry>, chain: Option<Entry>) -> Option<IdentityAction> {
        match (want, chain) {
            (None, None) => None,
            (None, Some(_)) => Some(IdentityAction::Remove),
            (Some(_), None) => Some(IdentityAction::Register),
            (Some(w), Some(c)) if w == c => None,
            (Some(w), Some(c)) if w.investor_id == c.investor_id => Some(IdentityAction::Update),
            // The registry never changes a wallet's investor in place.
            (Some(_), Some(_)) => Some(IdentityAction::Remove),
        }
    }
}

impl FromStr for IdentityAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(IdentityAction::Register),
            "update" => Ok(IdentityAction::Update),
            "remove" => Ok(IdentityAction::Remove),
            other => Err(format!("unknown identity action {other:?}")),
        }
    }
}

/// One wallet's change in a batch: for a removal, `entry` is what the chain
/// held; otherwise what it will hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchItem {
    /// The wallet.
    pub address: Address,
    /// The entry written (or, for a removal, removed).
    pub entry: Entry,
}

/// Registry changes of one kind, carried by one managed transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityBatch {
    /// Id; the transaction's idempotency key derives from it.
    pub id: Uuid,
    /// Organization.
    pub org_id: OrgId,
    /// Which batch call.
    pub action: IdentityAction,
    /// The wallets, in call order.
    pub items: Vec<BatchItem>,
    /// The managed transaction, once submitted.
    pub tx_id: Option<TxId>,
}

impl IdentityBatch {
    /// The idempotency key of the batch's transaction.
    pub fn tx_key(&self) -> String {
        format!("identity-batch:{}", self.id)
    }
}

/// What an expiry sweep changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Approvals that reached their expiry.
    pub kyc_expired: u64,
    /// Accreditations that lapsed.
    pub accreditation_lapsed: u64,
}

/// The identity flow's view of the store. System paths: they act for the
/// platform, not for a caller, and no handler reaches them.
#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// Batches of `org` not finished yet, oldest first.
    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<IdentityBatch>>;

    /// Gathers the organization's pending changes into new batches of at
    /// most `max_items` wallets, one action each (a wallet that failed in a
    /// batch before goes alone, so one bad wallet cannot hold back others),
    /// and marks the wallets as carried; answers the new batches.
    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<IdentityBatch>>;

    /// Records the transaction carrying a batch.
    async fn system_record_batch_tx(&self, batch: Uuid, tx: TxId) -> RepoResult<()>;

    /// The batch's transaction settled: the chain now holds its items;
    /// each wallet is `registered`, `removed`, or pending another change.
    async fn system_settle_batch(&self, batch: Uuid) -> RepoResult<()>;

    /// The batch's transaction failed with `error`: a wallet alone in its
    /// batch is `failed`; the others go alone in the next batches.
    async fn system_fail_batch(&self, batch: Uuid, error: &str) -> RepoResult<()>;

    /// Ends the organization's sync if nothing is pending and no batch is
    /// open (answers `true`); a change recorded later starts a new one.
    async fn system_finish_sync(&self, org: OrgId) -> RepoResult<bool>;

    /// Expires KYC approvals and accreditations that ended by the
    /// database's clock, each with its event and audit entry, and plans the
    /// removal of expired investors' wallets from the registry.
    async fn system_sweep_expiries(&self) -> RepoResult<SweepReport>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(country: u16, expires_at: u64) -> Entry {
        Entry {
            investor_id: InvestorId::from_uuid(Uuid::nil()),
            country,
            expires_at,
        }
    }

    #[test]
    fn the_needed_action_brings_the_chain_to_what_is_wanted() {
        use IdentityAction::*;
        let e = entry(250, 100);
        assert_eq!(IdentityAction::needed(None, None), None);
        assert_eq!(IdentityAction::needed(Some(e), Some(e)), None);
        assert_eq!(IdentityAction::needed(Some(e), None), Some(Register));
        assert_eq!(IdentityAction::needed(None, Some(e)), Some(Remove));
        assert_eq!(
            IdentityAction::needed(Some(entry(276, 100)), Some(e)),
            Some(Update)
        );
        assert_eq!(
            IdentityAction::needed(Some(entry(250, 200)), Some(e)),
            Some(Update)
        );
        let other = Entry {
            investor_id: InvestorId::new(),
            ..e
        };
        assert_eq!(IdentityAction::needed(Some(other), Some(e)), Some(Remove));
    }

    #[test]
    fn an_investor_is_known_on_chain_by_a_hash_of_its_id() {
        let id = InvestorId::from_uuid(Uuid::nil());
        assert_eq!(
            investor_hash(id),
            keccak256(b"00000000-0000-0000-0000-000000000000")
        );
    }
}
