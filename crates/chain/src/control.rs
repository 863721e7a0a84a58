//! Test and operator hooks over a development chain. The RPC adapter maps them
//! to anvil's `evm_*` / `anvil_*` methods; the embedded devnet will implement
//! them natively.
//! Production code never calls these: they exist for tests, benchmarks and an
//! operator driving a local chain.

use async_trait::async_trait;
use rwa_domain::chain::{Bytes, ChainPort, ChainResult};

/// Hooks a development chain offers beyond the [`ChainPort`].
#[async_trait]
pub trait ChainControl: ChainPort {
    /// Records the current state; returns an id for [`ChainControl::revert`].
    async fn snapshot(&self) -> ChainResult<u64>;

    /// Returns the chain to a snapshot (blocks after it are discarded).
    /// `false` when the id is unknown.
    async fn revert(&self, snapshot: u64) -> ChainResult<bool>;

    /// Replaces the newest `depth` blocks with as many new blocks (new hashes,
    /// same heights), the first of which holds `replacement` signed transactions.
    /// Transactions of the dropped blocks that are not replaced are not re-applied.
    async fn reorg(&self, depth: u64, replacement: Vec<Bytes>) -> ChainResult<()>;

    /// Removes the newest `depth` blocks (the head moves back).
    async fn rollback(&self, depth: u64) -> ChainResult<()>;

    /// Fixes the timestamp of the next mined block.
    async fn set_next_block_timestamp(&self, timestamp: u64) -> ChainResult<()>;

    /// Mines `blocks` blocks now, with whatever the mempool holds.
    async fn mine(&self, blocks: u64) -> ChainResult<()>;

    /// Turns mining on every transaction on or off.
    async fn set_automine(&self, enabled: bool) -> ChainResult<()>;
}
