//! The chain port: what rwa needs from an EVM chain, and nothing about which
//! chain answers. Two implementations live in `rwa-chain` (the embedded revm
//! devnet and a JSON-RPC adapter) and are held to one conformance suite; nothing
//! above the port may know which one it talks to.
//!
//! Values are `alloy-primitives` types (pure data, shared with revm and alloy),
//! so no conversion layer sits between the adapters and their callers.

use std::fmt;

pub use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A block selector for reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockTag {
    /// The newest block.
    Latest,
    /// The newest block considered safe from reorgs by the chain (devnet: head − 32).
    Safe,
    /// The newest finalized block (devnet: head − 64).
    Finalized,
    /// The pending block (nonces: includes queued transactions).
    Pending,
    /// A block by number.
    Number(u64),
    /// A block by hash.
    Hash(B256),
}

/// A block header, as much of it as rwa reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    /// Block hash.
    pub hash: B256,
    /// Hash of the parent block.
    pub parent_hash: B256,
    /// Height.
    pub number: u64,
    /// Seconds since the Unix epoch.
    pub timestamp: u64,
    /// EIP-1559 base fee per gas, in wei.
    pub base_fee_per_gas: Option<u128>,
    /// Gas limit of the block.
    pub gas_limit: u64,
    /// Gas used by the block's transactions.
    pub gas_used: u64,
    /// Logs bloom.
    pub logs_bloom: Bloom,
}

/// One event log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    /// Emitting contract.
    pub address: Address,
    /// Indexed topics, the event signature first.
    pub topics: Vec<B256>,
    /// Non-indexed data.
    pub data: Bytes,
    /// Block that contains it.
    pub block_hash: B256,
    /// Height of that block.
    pub block_number: u64,
    /// Transaction that emitted it.
    pub transaction_hash: B256,
    /// Index of that transaction in the block.
    pub transaction_index: u64,
    /// Index of the log in the whole block (not in the transaction).
    pub log_index: u64,
    /// True when the node reports the log as removed by a reorg.
    pub removed: bool,
}

/// A mined transaction's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Transaction hash.
    pub transaction_hash: B256,
    /// Index of the transaction in its block.
    pub transaction_index: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block height.
    pub block_number: u64,
    /// Sender.
    pub from: Address,
    /// Recipient; `None` for contract creation.
    pub to: Option<Address>,
    /// Address of the created contract, for a deployment.
    pub contract_address: Option<Address>,
    /// `true` for status 1 (success), `false` for a revert.
    pub success: bool,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Price per gas actually paid, in wei.
    pub effective_gas_price: u128,
    /// Logs, with block-wide indexes.
    pub logs: Vec<Log>,
    /// Receipt bloom.
    pub logs_bloom: Bloom,
}

/// Which blocks a log query covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogRange {
    /// An inclusive range of heights.
    Blocks {
        /// First height.
        from: u64,
        /// Last height, inclusive.
        to: u64,
    },
    /// Exactly one block, by hash: answers nothing for a block that was reorged out.
    Hash(B256),
}

/// A log query. Empty `addresses` matches every contract; each `topics` position
/// is `None` (any) or a set of accepted values (OR), as `eth_getLogs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFilter {
    /// Blocks to search.
    pub range: LogRange,
    /// Contracts to match.
    pub addresses: Vec<Address>,
    /// Topic filters by position (at most four).
    pub topics: Vec<Option<Vec<B256>>>,
}

impl LogFilter {
    /// Every log in an inclusive height range.
    pub fn blocks(from: u64, to: u64) -> Self {
        Self {
            range: LogRange::Blocks { from, to },
            addresses: Vec::new(),
            topics: Vec::new(),
        }
    }

    /// Every log of one block, by hash.
    pub fn block_hash(hash: B256) -> Self {
        Self {
            range: LogRange::Hash(hash),
            addresses: Vec::new(),
            topics: Vec::new(),
        }
    }

    /// Restricts to these contracts.
    pub fn address(mut self, addresses: impl IntoIterator<Item = Address>) -> Self {
        self.addresses.extend(addresses);
        self
    }

    /// Requires topic `position` to be one of `values`.
    pub fn topic(mut self, position: usize, values: impl IntoIterator<Item = B256>) -> Self {
        if self.topics.len() <= position {
            self.topics.resize(position + 1, None);
        }
        self.topics[position] = Some(values.into_iter().collect());
        self
    }
}

/// A message call (for `eth_call` and gas estimates).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRequest {
    /// Caller (zero address when unset).
    pub from: Option<Address>,
    /// Callee; `None` simulates a contract creation with `input` as init code.
    pub to: Option<Address>,
    /// Calldata.
    pub input: Bytes,
    /// Value sent, in wei.
    pub value: U256,
    /// Gas limit (the block's when unset).
    pub gas: Option<u64>,
}

/// `eth_feeHistory` over the newest blocks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeeHistory {
    /// Height of the oldest block covered.
    pub oldest_block: u64,
    /// Base fee of each covered block, plus the next block's (one more entry).
    pub base_fee_per_gas: Vec<u128>,
    /// Fraction of the gas limit used, per block.
    pub gas_used_ratio: Vec<f64>,
    /// Priority fees at the requested percentiles, per block.
    pub reward: Vec<Vec<u128>>,
}

/// EIP-1559 fees to offer for a new transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Eip1559Fees {
    /// `maxFeePerGas`, in wei.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`, in wei.
    pub max_priority_fee_per_gas: u128,
}

/// Why a chain call failed. Node errors are classified so callers (the
/// transaction manager) can act on meaning, whatever node produced them.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ChainError {
    /// The same transaction is already in the pool.
    #[error("transaction already known")]
    AlreadyKnown,
    /// The nonce was already used by a mined transaction.
    #[error("nonce too low: {0}")]
    NonceTooLow(String),
    /// The nonce leaves a gap the node will not queue.
    #[error("nonce too high: {0}")]
    NonceTooHigh(String),
    /// A pending transaction with this nonce pays more than the replacement.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// The sender cannot pay for gas and value.
    #[error("insufficient funds: {0}")]
    InsufficientFunds(String),
    /// `maxFeePerGas` is below the block's base fee.
    #[error("max fee per gas below base fee: {0}")]
    FeeCapTooLow(String),
    /// The gas limit is below the intrinsic cost or above the block gas limit.
    #[error("gas limit: {0}")]
    GasLimit(String),
    /// Malformed, wrongly signed or wrong-chain transaction: never retried.
    #[error("invalid transaction: {0}")]
    InvalidTransaction(String),
    /// Execution reverted; `reason` is decoded (`Error(string)`, `Panic(uint)`, or
    /// a custom error's selector) and `data` is the raw revert payload.
    #[error("execution reverted: {reason}")]
    Reverted {
        /// Decoded reason, for people.
        reason: String,
        /// Raw revert data, for decoding against an ABI.
        data: Bytes,
    },
    /// The block range of a log query is larger than the node allows.
    #[error("log range too large: {0}")]
    RangeTooLarge(String),
    /// The node cannot be reached, timed out, or answered 429/5xx; retrying may succeed.
    #[error("chain unavailable: {0}")]
    Unavailable(String),
    /// The circuit breaker is open: calls are refused without reaching the node.
    #[error("chain circuit breaker open")]
    CircuitOpen,
    /// A method the chain does not support.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Any other node error or undecodable answer; the message is for logs.
    #[error("chain error: {0}")]
    Other(String),
}

impl ChainError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChainError::Unavailable(_) | ChainError::CircuitOpen)
    }
}

/// Result alias for chain ports.
pub type ChainResult<T> = Result<T, ChainError>;

/// An EVM chain. Object-safe: held as `Arc<dyn ChainPort>`.
#[async_trait]
pub trait ChainPort: Send + Sync + fmt::Debug {
    /// EIP-155 chain id.
    async fn chain_id(&self) -> ChainResult<u64>;

    /// Height of the block `tag` names (`Latest`, `Safe`, `Finalized`, `Pending`).
    async fn block_number(&self, tag: BlockTag) -> ChainResult<u64>;

    /// A header by number or tag; `None` when there is no such block.
    async fn header(&self, block: BlockTag) -> ChainResult<Option<BlockHeader>>;

    /// Broadcasts a signed, EIP-2718-encoded transaction; returns its hash.
    async fn send_raw_transaction(&self, raw: Bytes) -> ChainResult<B256>;

    /// The receipt of a mined transaction; `None` while pending or unknown.
    async fn receipt(&self, tx_hash: B256) -> ChainResult<Option<Receipt>>;

    /// Logs matching `filter`, in chain order.
    async fn logs(&self, filter: &LogFilter) -> ChainResult<Vec<Log>>;

    /// Executes a call without a transaction, at `block`.
    async fn call(&self, request: &CallRequest, block: BlockTag) -> ChainResult<Bytes>;

    /// Gas a transaction would use (pending state).
    async fn estimate_gas(&self, request: &CallRequest) -> ChainResult<u64>;

    /// Base fees and priority-fee percentiles of the newest `blocks` blocks.
    async fn fee_history(&self, blocks: u64, percentiles: &[f64]) -> ChainResult<FeeHistory>;

    /// Fees to offer now: the next base fee doubled plus a priority fee taken
    /// from recent blocks (never below `min_priority_fee`).
    async fn suggested_fees(&self, min_priority_fee: u128) -> ChainResult<Eip1559Fees> {
        let history = self.fee_history(10, &[50.0]).await?;
        let next_base = history.base_fee_per_gas.last().copied().unwrap_or(0);
        let mut tips: Vec<u128> = history
            .reward
            .iter()
            .filter_map(|r| r.first().copied())
            .collect();
        tips.sort_unstable();
        let tip = tips
            .get(tips.len() / 2)
            .copied()
            .unwrap_or(0)
            .max(min_priority_fee);
        Ok(Eip1559Fees {
            max_fee_per_gas: next_base.saturating_mul(2).saturating_add(tip),
            max_priority_fee_per_gas: tip,
        })
    }

    /// Account nonce at `Latest` (mined) or `Pending` (including queued transactions).
    async fn nonce(&self, address: Address, block: BlockTag) -> ChainResult<u64>;

    /// Balance in wei at `Latest`.
    async fn balance(&self, address: Address) -> ChainResult<U256>;
}
