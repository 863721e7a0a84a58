//! Managed transactions: the transaction manager's vocabulary and ports.
//!
//! A *logical* transaction (deploy this contract, mint these tokens) is written to
//! the database with its lane, its nonce and a caller-chosen idempotency key
//! before anything is signed or broadcast. Every signed attempt (the first and
//! each fee bump, all with the same nonce) is stored before it is sent, so a
//! crash at any instant can only re-send one of the stored attempts: at most one
//! of them can ever be mined, and the logical transaction settles exactly once.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::chain::{Address, B256, Bytes, U256};
use crate::{RepoResult, ValidationError};

/// A class of operations with its own signer and nonce sequence, so a stuck
/// transaction blocks only its own lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// Contract deployments and role wiring.
    Deploy,
    /// Mints and burns.
    Mint,
    /// Transfer settlement (`agentTransfer`).
    Settlement,
    /// Freezes, pauses, recoveries, identity registration.
    Admin,
}

impl Lane {
    /// Every lane, in a fixed order.
    pub const ALL: [Lane; 4] = [Lane::Deploy, Lane::Mint, Lane::Settlement, Lane::Admin];

    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lane::Deploy => "deploy",
            Lane::Mint => "mint",
            Lane::Settlement => "settlement",
            Lane::Admin => "admin",
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lane {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lane::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new("lane", "expected deploy, mint, settlement or admin")
            })
    }
}

/// Where a logical transaction stands (DESIGN §4, operations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxState {
    /// Stored with its nonce; no attempt broadcast yet.
    Pending,
    /// At least one attempt broadcast; none seen in a canonical block.
    Submitted,
    /// Mined with status 1 in a canonical block, fewer than N confirmations deep.
    Confirmed,
    /// At least N confirmations deep: terminal.
    Settled,
    /// Mined with status 0 (reverted), or abandoned: terminal.
    Failed,
}

impl TxState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TxState::Pending => "pending",
            TxState::Submitted => "submitted",
            TxState::Confirmed => "confirmed",
            TxState::Settled => "settled",
            TxState::Failed => "failed",
        }
    }

    /// Whether the transaction can no longer change.
    pub const fn is_terminal(self) -> bool {
        matches!(self, TxState::Settled | TxState::Failed)
    }
}

impl FromStr for TxState {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => TxState::Pending,
            "submitted" => TxState::Submitted,
            "confirmed" => TxState::Confirmed,
            "settled" => TxState::Settled,
            "failed" => TxState::Failed,
            _ => return Err(ValidationError::new("state", "unknown transaction state")),
        })
    }
}

/// Identifier of a logical transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TxId(pub Uuid);

impl TxId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for TxId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the caller asks the manager to get mined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRequest {
    /// Idempotency key: a second request with the same key returns the first
    /// transaction, whatever its body (e.g. `token:<id>:deploy-token`).
    pub key: String,
    /// Lane (and so signer) that sends it.
    pub lane: Lane,
    /// Callee; `None` deploys `input` as init code.
    pub to: Option<Address>,
    /// Wei sent.
    pub value: U256,
    /// Calldata or init code.
    pub input: Bytes,
    /// Gas limit, fixed once so every attempt is the same transaction but for fees.
    pub gas_limit: u64,
}

/// One signed attempt of a logical transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxAttempt {
    /// Transaction hash.
    pub hash: B256,
    /// `maxFeePerGas` offered, wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas` offered, wei.
    pub max_priority_fee_per_gas: u128,
    /// The signed EIP-2718 bytes, kept so the exact attempt can be re-broadcast.
    pub raw: Bytes,
    /// When it was stored (database time).
    pub created_at: DateTime<Utc>,
}

/// Where a logical transaction was mined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInclusion {
    /// The attempt that was mined.
    pub hash: B256,
    /// Its block.
    pub block_number: u64,
    /// That block's hash, to notice reorgs.
    pub block_hash: B256,
    /// Gas used.
    pub gas_used: u64,
    /// Price per gas paid.
    pub effective_gas_price: u128,
    /// Created contract, for a deployment.
    pub contract_address: Option<Address>,
}

/// A logical transaction and everything known about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedTx {
    /// Id.
    pub id: TxId,
    /// What was asked.
    pub request: TxRequest,
    /// Chain it is for.
    pub chain_id: u64,
    /// Sender (the lane's signer).
    pub from: Address,
    /// Allocated before the first broadcast; never changes.
    pub nonce: u64,
    /// Where it stands.
    pub state: TxState,
    /// Every attempt, oldest first.
    pub attempts: Vec<TxAttempt>,
    /// Where it was mined, once it was.
    pub inclusion: Option<TxInclusion>,
    /// Why it failed: a decoded revert reason or an operator's note.
    pub error: Option<String>,
    /// Database time of creation.
    pub created_at: DateTime<Utc>,
    /// Database time of the last change.
    pub updated_at: DateTime<Utc>,
}

/// Persistence of managed transactions. Every method is a `system_` one in
/// spirit: the transaction manager serves every organization.
#[async_trait]
pub trait TxStore: Send + Sync {
    /// Stores a request and allocates the sender's next nonce in one database
    /// transaction; a request whose key exists returns the existing transaction.
    /// `nonce_floor` is the chain's pending nonce at the time: the allocated
    /// nonce is never below it.
    async fn create(
        &self,
        request: &TxRequest,
        chain_id: u64,
        from: Address,
        nonce_floor: u64,
    ) -> RepoResult<ManagedTx>;

    /// One transaction.
    async fn get(&self, id: TxId) -> RepoResult<ManagedTx>;

    /// One transaction by idempotency key.
    async fn find_by_key(&self, key: &str) -> RepoResult<Option<ManagedTx>>;

    /// Non-terminal transactions of a sender, by nonce.
    async fn open_for(&self, chain_id: u64, from: Address) -> RepoResult<Vec<ManagedTx>>;

    /// The next nonce the store would allocate for a sender.
    async fn next_nonce(&self, chain_id: u64, from: Address) -> RepoResult<u64>;

    /// Raises a sender's next nonce to at least `floor` (external use).
    async fn raise_next_nonce(&self, chain_id: u64, from: Address, floor: u64) -> RepoResult<u64>;

    /// Stores a request at an explicit, already allocated `nonce` that no row
    /// holds (filling a gap); a request whose key exists returns the existing
    /// transaction. [`crate::RepoError::Conflict`] if the nonce was never
    /// allocated or a row holds it.
    async fn create_filler(
        &self,
        request: &TxRequest,
        chain_id: u64,
        from: Address,
        nonce: u64,
    ) -> RepoResult<ManagedTx>;

    /// Claims, or confirms this process still holds, the right to send for
    /// `from` on `chain_id`: at most one process sends for a signer at a time,
    /// and another takes over as soon as the holder dies. `false`: another
    /// process sends; stand by.
    async fn hold_sender(&self, chain_id: u64, from: Address) -> RepoResult<bool>;

    /// Records a signed attempt before it is broadcast and moves the
    /// transaction to `submitted`.
    async fn add_attempt(&self, id: TxId, attempt: &TxAttempt) -> RepoResult<ManagedTx>;

    /// Records inclusion (`confirmed`) or clears it after a reorg (`submitted`).
    async fn set_inclusion(
        &self,
        id: TxId,
        inclusion: Option<&TxInclusion>,
    ) -> RepoResult<ManagedTx>;

    /// Moves to a terminal state (`settled` or `failed`, with the reason).
    async fn finish(&self, id: TxId, state: TxState, error: Option<&str>) -> RepoResult<ManagedTx>;
}

/// An unsigned EIP-1559 transaction, as the manager hands it to a signer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsignedTx {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Sender nonce.
    pub nonce: u64,
    /// `maxFeePerGas`, wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`, wei.
    pub max_priority_fee_per_gas: u128,
    /// Gas limit.
    pub gas_limit: u64,
    /// Callee, `None` for a deployment.
    pub to: Option<Address>,
    /// Wei.
    pub value: U256,
    /// Calldata or init code.
    pub input: Bytes,
}

/// A transaction signed by a [`Signer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    /// Its hash.
    pub hash: B256,
    /// EIP-2718 bytes for `eth_sendRawTransaction`.
    pub raw: Bytes,
}

/// Why signing failed.
#[derive(Debug, Error)]
pub enum SignerError {
    /// The signer (a KMS, a remote service) cannot be reached now.
    #[error("signer unavailable: {0}")]
    Unavailable(String),
    /// The signer refused or failed.
    #[error("signer error: {0}")]
    Failed(String),
}

/// A key that signs transactions: a local key today, a KMS or remote signer later
/// without touching callers.
#[async_trait]
pub trait Signer: Send + Sync + fmt::Debug {
    /// The address transactions come from.
    fn address(&self) -> Address;

    /// Signs an EIP-1559 transaction.
    async fn sign(&self, tx: &UnsignedTx) -> Result<SignedTx, SignerError>;
}
