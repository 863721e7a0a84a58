//! The JSON-RPC shapes rwa reads, decoded leniently (fields the port does not
//! need are ignored) and converted into the domain's chain types.

use alloy::primitives::{Address, B256, Bloom, Bytes};
use alloy::serde::quantity;
use rwa_domain::chain::{BlockHeader, FeeHistory, Log, Receipt};
use serde::{Deserialize, Serialize};

/// `eth_getBlockBy*` (without transactions bodies).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireBlock {
    hash: B256,
    parent_hash: B256,
    #[serde(with = "quantity")]
    number: u64,
    #[serde(with = "quantity")]
    timestamp: u64,
    #[serde(default, with = "quantity::opt")]
    base_fee_per_gas: Option<u128>,
    #[serde(with = "quantity")]
    gas_limit: u64,
    #[serde(with = "quantity")]
    gas_used: u64,
    logs_bloom: Bloom,
}

impl From<WireBlock> for BlockHeader {
    fn from(b: WireBlock) -> Self {
        BlockHeader {
            hash: b.hash,
            parent_hash: b.parent_hash,
            number: b.number,
            timestamp: b.timestamp,
            base_fee_per_gas: b.base_fee_per_gas,
            gas_limit: b.gas_limit,
            gas_used: b.gas_used,
            logs_bloom: b.logs_bloom,
        }
    }
}

/// A log as nodes return it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireLog {
    address: Address,
    topics: Vec<B256>,
    data: Bytes,
    block_hash: B256,
    #[serde(with = "quantity")]
    block_number: u64,
    transaction_hash: B256,
    #[serde(with = "quantity")]
    transaction_index: u64,
    #[serde(with = "quantity")]
    log_index: u64,
    #[serde(default)]
    removed: bool,
}

impl From<WireLog> for Log {
    fn from(l: WireLog) -> Self {
        Log {
            address: l.address,
            topics: l.topics,
            data: l.data,
            block_hash: l.block_hash,
            block_number: l.block_number,
            transaction_hash: l.transaction_hash,
            transaction_index: l.transaction_index,
            log_index: l.log_index,
            removed: l.removed,
        }
    }
}

/// `eth_getTransactionReceipt`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireReceipt {
    transaction_hash: B256,
    #[serde(with = "quantity")]
    transaction_index: u64,
    block_hash: B256,
    #[serde(with = "quantity")]
    block_number: u64,
    from: Address,
    to: Option<Address>,
    contract_address: Option<Address>,
    #[serde(with = "quantity")]
    status: u64,
    #[serde(with = "quantity")]
    gas_used: u64,
    #[serde(with = "quantity")]
    cumulative_gas_used: u64,
    #[serde(with = "quantity")]
    effective_gas_price: u128,
    logs: Vec<WireLog>,
    logs_bloom: Bloom,
}

impl From<WireReceipt> for Receipt {
    fn from(r: WireReceipt) -> Self {
        Receipt {
            transaction_hash: r.transaction_hash,
            transaction_index: r.transaction_index,
            block_hash: r.block_hash,
            block_number: r.block_number,
            from: r.from,
            to: r.to,
            contract_address: r.contract_address,
            success: r.status == 1,
            gas_used: r.gas_used,
            cumulative_gas_used: r.cumulative_gas_used,
            effective_gas_price: r.effective_gas_price,
            logs: r.logs.into_iter().map(Log::from).collect(),
            logs_bloom: r.logs_bloom,
        }
    }
}

/// `eth_feeHistory`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireFeeHistory {
    #[serde(with = "quantity")]
    oldest_block: u64,
    #[serde(with = "quantity::vec")]
    base_fee_per_gas: Vec<u128>,
    gas_used_ratio: Vec<f64>,
    #[serde(default, with = "quantity::u128_vec_vec_opt")]
    reward: Option<Vec<Vec<u128>>>,
}

impl From<WireFeeHistory> for FeeHistory {
    fn from(h: WireFeeHistory) -> Self {
        FeeHistory {
            oldest_block: h.oldest_block,
            base_fee_per_gas: h.base_fee_per_gas,
            gas_used_ratio: h.gas_used_ratio,
            reward: h.reward.unwrap_or_default(),
        }
    }
}

/// The call object of `eth_call` / `eth_estimateGas`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) from: Option<Address>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) to: Option<Address>,
    pub(super) input: Bytes,
    /// U256 serializes as a 0x quantity by itself.
    pub(super) value: alloy::primitives::U256,
    #[serde(skip_serializing_if = "Option::is_none", with = "quantity::opt")]
    pub(super) gas: Option<u64>,
}

/// The filter object of `eth_getLogs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WireFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) from_block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) to_block: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) block_hash: Option<B256>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(super) address: Vec<Address>,
    pub(super) topics: Vec<Option<Vec<B256>>>,
}
