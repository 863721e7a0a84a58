//! What the indexer reads from the chain: every log of a followed contract,
//! decoded into an [`OnchainEvent`] (token standards' transfers, the
//! platform's token and registry events), or kept as
//! [`EventKind::Undecodable`] with the reason, so no log is silently
//! skipped. An event is identified by where it is, `(chain_id, block_hash,
//! log_index)`, which a reorg changes.

use alloy_primitives::{Address, B256, U256};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::RepoResult;

/// The token standard of a followed contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Standard {
    /// Fungible balances.
    Erc20,
    /// One owner per token id.
    Erc721,
    /// Balances per token id.
    Erc1155,
}

impl Standard {
    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Standard::Erc20 => "erc20",
            Standard::Erc721 => "erc721",
            Standard::Erc1155 => "erc1155",
        }
    }

    /// The standard a stored or requested name names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "erc20" => Some(Standard::Erc20),
            "erc721" => Some(Standard::Erc721),
            "erc1155" => Some(Standard::Erc1155),
            _ => None,
        }
    }
}

/// A decoded log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// ERC-20 `Transfer` (mint from zero, burn to zero).
    Erc20Transfer {
        /// Sender (zero for a mint).
        from: Address,
        /// Receiver (zero for a burn).
        to: Address,
        /// Base units.
        value: U256,
    },
    /// ERC-721 `Transfer` (the id is indexed: four topics).
    Erc721Transfer {
        /// Previous owner (zero for a mint).
        from: Address,
        /// New owner (zero for a burn).
        to: Address,
        /// The token id.
        token_id: U256,
    },
    /// ERC-1155 `TransferSingle`, or one pair of a `TransferBatch`.
    Erc1155Transfer {
        /// Who moved them.
        operator: Address,
        /// Sender (zero for a mint).
        from: Address,
        /// Receiver (zero for a burn).
        to: Address,
        /// Token ids and values, pairwise.
        ids: Vec<U256>,
        /// Values, one per id.
        values: Vec<U256>,
    },
    /// A whole wallet frozen or unfrozen.
    AddressFrozen {
        /// The wallet.
        wallet: Address,
        /// Frozen or not.
        frozen: bool,
    },
    /// Part of a wallet's balance frozen.
    TokensFrozen {
        /// The wallet.
        wallet: Address,
        /// Base units.
        amount: U256,
    },
    /// Part of a wallet's frozen balance released.
    TokensUnfrozen {
        /// The wallet.
        wallet: Address,
        /// Base units.
        amount: U256,
    },
    /// Transfers stopped.
    Paused,
    /// Transfers resumed.
    Unpaused,
    /// The issuer moved tokens (the balances move with the `Transfer` it
    /// emits too).
    ForcedTransfer {
        /// Sender.
        from: Address,
        /// Receiver.
        to: Address,
        /// Base units.
        amount: U256,
    },
    /// A lost wallet's holding moved to a new wallet of the same investor.
    Recovery {
        /// The lost wallet.
        lost: Address,
        /// The new wallet.
        new: Address,
        /// The investor's registry id.
        investor: B256,
    },
    /// A wallet registered (or updated) in an identity registry.
    IdentityRegistered {
        /// The wallet.
        wallet: Address,
        /// The investor's registry id.
        investor: B256,
        /// ISO 3166 numeric country.
        country: u16,
        /// Verified until (unix seconds).
        expires_at: u64,
        /// An update of an existing entry.
        update: bool,
    },
    /// A wallet removed from an identity registry.
    IdentityRemoved {
        /// The wallet.
        wallet: Address,
        /// The investor's registry id.
        investor: B256,
    },
    /// A compliance rule changed or a wallet's lockup was set; the name of
    /// the event and its decoded fields, for the record.
    ComplianceChanged {
        /// The event's name (`LockupSet`, `MaxHoldersSet`, ...).
        name: String,
        /// Its fields.
        fields: Vec<(String, String)>,
    },
    /// An event the platform does not act on (role grants, approvals,
    /// ownership), named for the record.
    Ignored {
        /// The event's name.
        name: String,
    },
    /// A log that could not be decoded, with why.
    Undecodable {
        /// What was wrong.
        reason: String,
    },
}

impl EventKind {
    /// The stored name of the kind (the `type` of its JSON).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Erc20Transfer { .. } => "erc20_transfer",
            EventKind::Erc721Transfer { .. } => "erc721_transfer",
            EventKind::Erc1155Transfer { .. } => "erc1155_transfer",
            EventKind::AddressFrozen { .. } => "address_frozen",
            EventKind::TokensFrozen { .. } => "tokens_frozen",
            EventKind::TokensUnfrozen { .. } => "tokens_unfrozen",
            EventKind::Paused => "paused",
            EventKind::Unpaused => "unpaused",
            EventKind::ForcedTransfer { .. } => "forced_transfer",
            EventKind::Recovery { .. } => "recovery",
            EventKind::IdentityRegistered { .. } => "identity_registered",
            EventKind::IdentityRemoved { .. } => "identity_removed",
            EventKind::ComplianceChanged { .. } => "compliance_changed",
            EventKind::Ignored { .. } => "ignored",
            EventKind::Undecodable { .. } => "undecodable",
        }
    }

    /// The token standard of a transfer, `None` for any other event.
    pub fn transfer_standard(&self) -> Option<Standard> {
        match self {
            EventKind::Erc20Transfer { .. } => Some(Standard::Erc20),
            EventKind::Erc721Transfer { .. } => Some(Standard::Erc721),
            EventKind::Erc1155Transfer { .. } => Some(Standard::Erc1155),
            _ => None,
        }
    }
}

/// The stored names of the transfer kinds, for history queries.
pub const TRANSFER_KINDS: [&str; 3] = ["erc20_transfer", "erc721_transfer", "erc1155_transfer"];

/// A log where it was found, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnchainEvent {
    /// The chain.
    pub chain_id: u64,
    /// The block's height.
    pub block_number: u64,
    /// The block's hash (a reorg changes it).
    pub block_hash: B256,
    /// The transaction.
    pub tx_hash: B256,
    /// The log's index in its block.
    pub log_index: u64,
    /// The emitting contract.
    pub contract: Address,
    /// What it says.
    pub kind: EventKind,
}

/// A block as the indexer keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Height.
    pub number: u64,
    /// Hash.
    pub hash: B256,
    /// The parent's hash.
    pub parent_hash: B256,
}

/// Why the indexer follows a contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceRole {
    /// A security token the platform deployed (ERC-20).
    Token,
    /// A token's compliance contract (rule changes, lockups).
    Compliance,
    /// An organization's identity registry.
    Registry,
    /// An external contract an organization registered.
    Watched(Standard),
}

/// How far a followed contract is indexed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceProgress {
    /// Not tracked yet (just deployed or registered).
    Untracked,
    /// Indexed up to the cursor, and moves with it.
    Following,
    /// Indexed up to this height only: it catches up alone to the cursor.
    Behind(u64),
}

/// A followed contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// Its address.
    pub address: Address,
    /// Why it is followed.
    pub role: SourceRole,
    /// The first block that can hold its events.
    pub start_block: u64,
    /// How far it is indexed.
    pub progress: SourceProgress,
}

/// Where the indexer is on a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexState {
    /// The last indexed block (every following contract's events up to it
    /// are stored).
    pub cursor: u64,
    /// Its hash.
    pub cursor_hash: B256,
    /// The unfinalized blocks indexed, oldest first, from the finalized one.
    pub window: Vec<BlockRef>,
    /// The node's head when last seen.
    pub head: u64,
    /// The node's safe block when last seen.
    pub safe: u64,
    /// The node's finalized block when last seen.
    pub finalized: u64,
    /// Reorgs undone so far.
    pub reorgs: u64,
    /// The depth of the last one.
    pub last_reorg_depth: Option<u64>,
    /// When it was undone.
    pub last_reorg_at: Option<DateTime<Utc>>,
    /// Why the indexer stopped, if it did (a reorg below finality).
    pub halted: Option<String>,
}

/// Which contracts a batch covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every contract that follows the cursor: the batch moves the cursor
    /// from `after` to `to`.
    Following,
    /// These contracts, behind the cursor, all indexed up to `after`: the
    /// batch moves them to `to` (and to following once `to` is the cursor).
    CatchUp(Vec<Address>),
}

/// The node's heights when a batch was fetched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heights {
    /// Latest.
    pub head: u64,
    /// Safe.
    pub safe: u64,
    /// Finalized.
    pub finalized: u64,
}

/// The events of blocks `after + 1 ..= to` of a scope, written at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexBatch {
    /// Which contracts.
    pub scope: Scope,
    /// The height they were indexed to before (the write is refused, as
    /// stale, when the store disagrees: the same range twice changes nothing).
    pub after: u64,
    /// The last block covered.
    pub to: BlockRef,
    /// Blocks to add to the unfinalized window (following batches only).
    pub window: Vec<BlockRef>,
    /// Their events, in chain order.
    pub events: Vec<OnchainEvent>,
    /// The node's heights.
    pub heights: Heights,
}

/// What writing a batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// False when the store was not at `after` (a repeat): nothing written.
    pub fresh: bool,
    /// Events stored.
    pub events: u64,
    /// Debits larger than the indexed balance (a contract followed from a
    /// block after its first transfers), clamped at zero and counted.
    pub underflows: u64,
}

/// A holding as the index has it at some block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRow {
    /// The contract.
    pub contract: Address,
    /// The token id (`None` for a fungible token).
    pub token_id: Option<U256>,
    /// The wallet.
    pub wallet: Address,
    /// Its balance.
    pub balance: U256,
    /// Part of it frozen.
    pub frozen: U256,
    /// The whole wallet frozen.
    pub wallet_frozen: bool,
    /// The block of its last change.
    pub block_number: u64,
}

/// An external contract an organization asked to index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WatchedContract {
    /// Its id.
    pub id: uuid::Uuid,
    /// The organization that registered it.
    pub org_id: crate::OrgId,
    /// The chain.
    pub chain_id: u64,
    /// Its address.
    pub address: Address,
    /// Its standard.
    pub standard: Standard,
    /// The block indexing starts from.
    pub start_block: u64,
    /// A label.
    pub name: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// A contract to watch, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWatchedContract {
    /// Its address.
    pub address: Address,
    /// Its standard.
    pub standard: Standard,
    /// The block indexing starts from.
    pub start_block: u64,
    /// A label.
    pub name: Option<String>,
}

/// Watched contracts, per organization.
#[async_trait]
pub trait WatchedContracts: Send + Sync {
    /// Registers a contract on `chain_id`; [`crate::RepoError::Conflict`]
    /// when the organization already watches it.
    async fn watch(
        &self,
        org: crate::OrgId,
        chain_id: u64,
        contract: &NewWatchedContract,
    ) -> RepoResult<WatchedContract>;

    /// The organization's watched contracts, oldest first.
    async fn watched(&self, org: crate::OrgId) -> RepoResult<Vec<WatchedContract>>;

    /// One of them.
    async fn watched_one(&self, org: crate::OrgId, id: uuid::Uuid) -> RepoResult<WatchedContract>;

    /// Stops watching (its indexed events stay while another organization
    /// or a token follows the same address).
    async fn unwatch(&self, org: crate::OrgId, id: uuid::Uuid) -> RepoResult<()>;
}

/// A settled operation whose transfer the index does not hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreconciled {
    /// `operation` or `transfer`.
    pub subject: &'static str,
    /// `unindexed` (no `Transfer` of the token in its transaction) or
    /// `mismatched` (a transfer whose sender, receiver and amount match none
    /// of them).
    pub reason: &'static str,
    /// The operation's or transfer's id.
    pub id: uuid::Uuid,
    /// Its organization.
    pub org_id: crate::OrgId,
    /// The transaction that settled it.
    pub tx_hash: B256,
    /// Its block.
    pub block_number: u64,
}

/// Settled operations against the index: the transaction manager's
/// `settled` and the indexer's events must agree.
#[async_trait]
pub trait Reconciliation: Send + Sync {
    /// Settled mints, burns, forced transfers and transfers of followed
    /// tokens, in blocks at or below `below`, whose `Transfer` the index
    /// does not hold, and settled transfers whose transaction's indexed
    /// `Transfer`s hold none with their sender, receiver and amount (each
    /// transfer's amount is checked once it matches); each is raised once
    /// (an `operation.unindexed`, `transfer.unindexed` or
    /// `transfer.mismatched` event of its organization) the first time it
    /// is found.
    async fn system_reconcile_settlements(
        &self,
        chain_id: u64,
        below: u64,
    ) -> RepoResult<Vec<Unreconciled>>;
}

/// What to reconcile with the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyTarget {
    /// The contract.
    pub contract: Address,
    /// Its standard.
    pub standard: Standard,
    /// The first block its logs are read from.
    pub from_block: u64,
    /// The block compared; `None`: the last indexed block, once the index
    /// is within the confirmation depth of the head.
    pub at_block: Option<u64>,
    /// A platform token: its freezes are compared too.
    pub platform_token: bool,
}

/// The outcome of a reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// The block compared.
    pub block_number: u64,
    /// Holdings compared.
    pub checked: usize,
    /// Every difference, in words (none: the index agrees with the chain).
    pub differences: Vec<String>,
}

/// Why a reconciliation could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The indexer has not started on this chain.
    #[error("the indexer has not started on this chain")]
    NotStarted,
    /// The asked block is above the last indexed one.
    #[error("block {asked} is beyond the last indexed block {cursor}")]
    BeyondIndex {
        /// The block asked for.
        asked: u64,
        /// The last indexed block.
        cursor: u64,
    },
    /// The index did not come within the confirmation depth of the head in
    /// the time allowed.
    #[error("the index stayed {lag} blocks behind the head (indexed {cursor})")]
    Behind {
        /// The last indexed block.
        cursor: u64,
        /// Blocks behind.
        lag: u64,
    },
    /// The chain or the store failed.
    #[error("{0}")]
    Failed(String),
}

/// Compares the index with the chain (implemented over the chain port by
/// the indexer).
#[async_trait]
pub trait IndexVerifier: Send + Sync {
    /// Reconciles `target`.
    async fn verify(&self, target: &VerifyTarget) -> Result<VerifyReport, VerifyError>;
}

/// The index: written by the one indexer of a chain (`system_*`), read by
/// the projections.
#[async_trait]
pub trait IndexStore: Send + Sync {
    /// The lease on indexing `chain_id`, or `None` while another process
    /// holds it (on PostgreSQL an advisory lock held by a connection of its
    /// own, released when the process dies; a standby takes over).
    async fn system_index_lease(
        &self,
        chain_id: u64,
    ) -> RepoResult<Option<Box<dyn crate::ports::Lease>>>;

    /// Where the indexer is on `chain_id`; `None` before it first started.
    async fn system_index_state(&self, chain_id: u64) -> RepoResult<Option<IndexState>>;

    /// Starts the index at `at` (nothing below it is followed, except by
    /// contracts catching up); does nothing when it already started.
    async fn system_start_index(
        &self,
        chain_id: u64,
        at: BlockRef,
        heights: Heights,
    ) -> RepoResult<()>;

    /// Every contract to follow, with its progress.
    async fn system_index_sources(&self, chain_id: u64) -> RepoResult<Vec<Source>>;

    /// Starts tracking a contract: following (`None`) or indexed up to a height.
    async fn system_track_source(
        &self,
        chain_id: u64,
        address: Address,
        synced_to: Option<u64>,
    ) -> RepoResult<()>;

    /// Writes a batch's events, the holdings derived from them and the new
    /// position in one transaction.
    async fn system_apply_index(&self, chain_id: u64, batch: &IndexBatch) -> RepoResult<Applied>;

    /// Undoes every block above `ancestor` in one transaction: their events,
    /// the holdings derived from them, window blocks; the cursor and every
    /// contract's progress move back to it. Returns the events deleted.
    async fn system_rewind_index(&self, chain_id: u64, ancestor: BlockRef) -> RepoResult<u64>;

    /// Records that the indexer halted, and why.
    async fn system_halt_index(&self, chain_id: u64, reason: &str) -> RepoResult<()>;

    /// Records the node's heights (while idle at the tip or waiting).
    async fn system_observe_heights(&self, chain_id: u64, heights: Heights) -> RepoResult<()>;

    /// Holdings of `contract` at `at_block` with a non-zero balance, by
    /// `(token id, wallet)`, after `after`.
    async fn holders_at(
        &self,
        chain_id: u64,
        contract: Address,
        at_block: u64,
        after: Option<(Option<U256>, Address)>,
        limit: u32,
    ) -> RepoResult<Vec<HolderRow>>;

    /// The sum of every balance of `contract` (per token id: `None` sums
    /// the fungible balance) at `at_block`.
    async fn supply_at(
        &self,
        chain_id: u64,
        contract: Address,
        token_id: Option<U256>,
        at_block: u64,
    ) -> RepoResult<U256>;

    /// Current holdings of these wallets, in every followed contract.
    async fn holdings_of(&self, chain_id: u64, wallets: &[Address]) -> RepoResult<Vec<HolderRow>>;

    /// Transfers of `contract`, newest first, below `(block, log index)`
    /// `before` when given.
    async fn transfers(
        &self,
        chain_id: u64,
        contract: Address,
        before: Option<(u64, u64)>,
        limit: u32,
    ) -> RepoResult<Vec<OnchainEvent>>;
}
