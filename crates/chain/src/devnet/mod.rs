//! The embedded devnet: a real EVM (revm, Prague) in-process, behind the same
//! [`ChainPort`] and [`ChainControl`] as any node.
//!
//! It validates transactions like a node (signature, chain id, nonce,
//! intrinsic gas, fee cap against the next base fee, balance, replacement
//! bump), queues future nonces until the gap fills, mines on every transaction
//! (automine) or on demand, chains real headers by parent hash, evolves the
//! base fee per EIP-1559, and keeps what every block changed so snapshots,
//! rollbacks and reorgs are exact. The whole state is kept in memory for the
//! last 256 blocks; `eth_call` and the nonce at an older block wind the oldest
//! kept state back over the stored per-block changes, and rewinding the chain
//! further replays them from genesis.
//! `safe` is head − 32 and `finalized` head − 64, as anvil.
//!
//! Blocks come by interval (a background task, default every second), on
//! demand (`mine`) and, with automine, on every accepted transaction. With a
//! `db_path` the chain persists block by block in its own SQLite file, one
//! SQLite transaction per block (or per rewind); a restart continues the same
//! chain. The pending pool persists with it: a transaction is stored before
//! `send_raw_transaction` returns its hash, and leaves the file in the same
//! SQLite transaction as the block that includes it, so an accepted
//! transaction survives a restart or a kill and is mined afterwards. Snapshot
//! ids live in memory only.
//!
//! Headers carry the real Ethereum state root (see `trie`), served by
//! [`Devnet::state_root`] since the port's header has no field for it.
//!
//! Metrics: `rwa_devnet_blocks_total` (blocks mined) and
//! `rwa_devnet_transactions_total` (transactions accepted into the pool).

mod exec;
mod history;
mod state;
mod storage;
mod trie;

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard};
use tokio::task::JoinHandle;

use alloy::primitives::U256;
use async_trait::async_trait;
use rwa_domain::chain::{
    Address, B256, BlockHeader, BlockTag, Bytes, CallRequest, ChainError, ChainPort, ChainResult,
    FeeHistory, Log, LogFilter, LogRange, Receipt,
};

use crate::ChainControl;
use state::ChainState;
use storage::{BlocksFrom, Store, StoredBlockRef};

/// The EVM version the devnet runs, as solc and anvil name it.
pub const EVM_VERSION: &str = "prague";

/// How to start a devnet.
#[derive(Clone, Debug)]
pub struct DevnetConfig {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// The SQLite file (`DATA_DIR/devnet.db`); `None` keeps the chain in memory.
    pub db_path: Option<PathBuf>,
    /// Mine a block this often; `None` mines only on demand or by automine.
    pub block_interval: Option<Duration>,
    /// Mine a block for every accepted transaction.
    pub automine: bool,
    /// Accounts funded at genesis.
    pub genesis_accounts: Vec<(Address, U256)>,
    /// Genesis timestamp (now when unset).
    pub genesis_timestamp: Option<u64>,
    /// Gas limit of every block.
    pub block_gas_limit: u64,
    /// Base fee of the genesis block, wei.
    pub initial_base_fee: u128,
}

impl Default for DevnetConfig {
    fn default() -> Self {
        Self {
            chain_id: 31337,
            db_path: None,
            block_interval: Some(Duration::from_secs(1)),
            automine: false,
            genesis_accounts: Vec::new(),
            genesis_timestamp: None,
            block_gas_limit: 30_000_000,
            initial_base_fee: 1_000_000_000,
        }
    }
}

/// The devnet. Cheap to share: `Arc<Devnet>`.
#[derive(Debug)]
pub struct Devnet {
    state: Mutex<ChainState>,
    store: Option<Store>,
    miner: StdMutex<Option<JoinHandle<()>>>,
}

impl Devnet {
    /// Opens the chain: from its database when `db_path` names one that
    /// holds blocks, else at a new genesis; starts interval mining.
    pub async fn open(config: DevnetConfig) -> ChainResult<Arc<Devnet>> {
        let interval = config.block_interval;
        let (state, store) = match &config.db_path {
            None => (ChainState::genesis(config), None),
            Some(path) => {
                let store = Store::open(path).await?;
                let (blocks, generation, pending) = store.load().await?;
                let state = if blocks.is_empty() {
                    ChainState::genesis(config)
                } else {
                    ChainState::restore(config, blocks, generation, pending)?
                };
                (state, Some(store))
            }
        };
        let devnet = Arc::new(Devnet {
            state: Mutex::new(state),
            store,
            miner: StdMutex::new(None),
        });
        devnet.persist(&mut *devnet.lock().await).await?;
        if let Some(every) = interval {
            let task = tokio::spawn(mine_every(Arc::downgrade(&devnet), every));
            *devnet.miner.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        }
        Ok(devnet)
    }

    /// Stops interval mining and closes the database.
    pub async fn shutdown(&self) {
        if let Some(task) = self.miner.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        // Waits for a block being written to finish.
        let _state = self.lock().await;
        if let Some(store) = &self.store {
            store.close().await;
        }
    }

    /// The state root in the header of a block, `None` for an unknown block.
    /// (Blocks stored before the devnet computed roots carry zero.)
    pub async fn state_root(&self, block: BlockTag) -> ChainResult<Option<B256>> {
        let s = self.lock().await;
        Ok(resolve(&s, block).map(|n| s.blocks[n as usize].state_root))
    }

    async fn lock(&self) -> MutexGuard<'_, ChainState> {
        self.state.lock().await
    }

    /// Writes the blocks and the pool as they changed since the last write,
    /// in one transaction. On failure everything stays marked changed, so the
    /// next write retries it.
    async fn persist(&self, s: &mut ChainState) -> ChainResult<()> {
        let Some(store) = &self.store else {
            s.dirty_from = None;
            return Ok(());
        };
        let pool = s.pool_changes();
        if s.dirty_from.is_none() && pool.is_empty() {
            return Ok(());
        }
        let blocks = s.dirty_from.map(|from| {
            let start = usize::try_from(from)
                .unwrap_or(usize::MAX)
                .min(s.blocks.len());
            BlocksFrom {
                from,
                blocks: s.blocks[start..]
                    .iter()
                    .map(|b| StoredBlockRef {
                        header: &b.header,
                        state_root: b.state_root,
                        receipts: &b.receipts,
                        diff: &b.diff,
                    })
                    .collect(),
            }
        });
        store.write(blocks, s.generation, &pool).await?;
        s.dirty_from = None;
        s.pool_stored();
        Ok(())
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(task) = self.miner.get_mut().ok().and_then(Option::take) {
            task.abort();
        }
    }
}

/// Counts a transaction into the pool (once it is stored, when it is).
fn count_accepted() {
    metrics::counter!("rwa_devnet_transactions_total").increment(1);
}

async fn mine_every(devnet: Weak<Devnet>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let Some(devnet) = devnet.upgrade() else {
            return;
        };
        if let Err(e) = devnet.mine(1).await {
            tracing::warn!(error = %e, "devnet interval block failed");
        }
    }
}

/// The block number a tag names on this chain.
fn resolve(s: &ChainState, tag: BlockTag) -> Option<u64> {
    let head = s.head_number();
    match tag {
        BlockTag::Latest | BlockTag::Pending => Some(head),
        BlockTag::Safe => Some(head.saturating_sub(32)),
        BlockTag::Finalized => Some(head.saturating_sub(64)),
        BlockTag::Number(n) => (n <= head).then_some(n),
        BlockTag::Hash(h) => s
            .blocks
            .iter()
            .find(|b| b.header.hash == h)
            .map(|b| b.header.number),
    }
}

fn matches(filter: &LogFilter, log: &Log) -> bool {
    (filter.addresses.is_empty() || filter.addresses.contains(&log.address))
        && filter
            .topics
            .iter()
            .enumerate()
            .all(|(i, wanted)| match wanted {
                None => true,
                Some(set) => log.topics.get(i).is_some_and(|t| set.contains(t)),
            })
}

#[async_trait]
impl ChainPort for Devnet {
    async fn chain_id(&self) -> ChainResult<u64> {
        Ok(self.lock().await.config.chain_id)
    }

    async fn block_number(&self, tag: BlockTag) -> ChainResult<u64> {
        let s = self.lock().await;
        resolve(&s, tag).ok_or_else(|| ChainError::Other("unknown block".into()))
    }

    async fn header(&self, block: BlockTag) -> ChainResult<Option<BlockHeader>> {
        let s = self.lock().await;
        Ok(resolve(&s, block).map(|n| s.blocks[n as usize].header.clone()))
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> ChainResult<B256> {
        let mut s = self.lock().await;
        let (hash, replaced) = s.accept(&raw)?;
        // Stored before the hash is returned: an accepted transaction is
        // never lost to a restart. What cannot be stored is not accepted.
        if let Err(e) = self.persist(&mut s).await {
            s.unaccept(hash, replaced);
            return Err(e);
        }
        count_accepted();
        if s.automine && s.has_executable() {
            s.mine_block(Vec::new());
            if let Err(e) = self.persist(&mut s).await {
                // The transaction is stored in the pool; the block is
                // written with the next one.
                tracing::warn!(error = %e, "devnet block could not be stored yet");
            }
        }
        Ok(hash)
    }

    async fn receipt(&self, tx_hash: B256) -> ChainResult<Option<Receipt>> {
        let s = self.lock().await;
        Ok(s.index
            .get(&tx_hash)
            .map(|(block, i)| s.blocks[*block as usize].receipts[*i].clone()))
    }

    async fn logs(&self, filter: &LogFilter) -> ChainResult<Vec<Log>> {
        let s = self.lock().await;
        let blocks: Vec<&state::Mined> = match filter.range {
            LogRange::Blocks { from, to } => s
                .blocks
                .iter()
                .filter(|b| b.header.number >= from && b.header.number <= to)
                .collect(),
            LogRange::Hash(h) => s.blocks.iter().filter(|b| b.header.hash == h).collect(),
        };
        Ok(blocks
            .into_iter()
            .flat_map(|b| b.receipts.iter().flat_map(|r| r.logs.iter()))
            .filter(|l| matches(filter, l))
            .cloned()
            .collect())
    }

    async fn call(&self, request: &CallRequest, block: BlockTag) -> ChainResult<Bytes> {
        let s = self.lock().await;
        let n = resolve(&s, block).ok_or_else(|| ChainError::Other("unknown block".into()))?;
        s.call(request, n).map(|(_, out)| out)
    }

    async fn estimate_gas(&self, request: &CallRequest) -> ChainResult<u64> {
        let s = self.lock().await;
        let head = s.head_number();
        let (used, _) = s.call(request, head)?;
        // The smallest limit that succeeds, searched from what the call used
        // (refunds and the 63/64 rule can make that too little).
        let fits = |gas: u64| {
            let mut r = request.clone();
            r.gas = Some(gas);
            s.call(&r, head).is_ok()
        };
        let (mut lo, mut hi) = (used.max(21_000), s.config.block_gas_limit);
        if fits(lo) {
            return Ok(lo);
        }
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if fits(mid) { hi = mid } else { lo = mid }
        }
        Ok(hi)
    }

    async fn fee_history(&self, blocks: u64, percentiles: &[f64]) -> ChainResult<FeeHistory> {
        let s = self.lock().await;
        let head = s.head_number();
        let count = blocks.clamp(1, head + 1);
        let oldest = head + 1 - count;
        let mut base_fee_per_gas = Vec::new();
        let mut gas_used_ratio = Vec::new();
        let mut reward = Vec::new();
        for b in &s.blocks[oldest as usize..] {
            let base = b.header.base_fee_per_gas.unwrap_or(0);
            base_fee_per_gas.push(base);
            gas_used_ratio.push(b.header.gas_used as f64 / b.header.gas_limit as f64);
            let mut tips: Vec<u128> = b
                .receipts
                .iter()
                .map(|r| r.effective_gas_price.saturating_sub(base))
                .collect();
            tips.sort_unstable();
            reward.push(
                percentiles
                    .iter()
                    .map(|p| {
                        if tips.is_empty() {
                            0
                        } else {
                            let i = ((tips.len() - 1) as f64 * p / 100.0).round() as usize;
                            tips[i.min(tips.len() - 1)]
                        }
                    })
                    .collect(),
            );
        }
        base_fee_per_gas.push(u128::from(s.next_base_fee()));
        Ok(FeeHistory {
            oldest_block: oldest,
            base_fee_per_gas,
            gas_used_ratio,
            reward,
        })
    }

    async fn nonce(&self, address: Address, block: BlockTag) -> ChainResult<u64> {
        let s = self.lock().await;
        match block {
            BlockTag::Pending => Ok(s.nonce(address, true)),
            tag => {
                let n =
                    resolve(&s, tag).ok_or_else(|| ChainError::Other("unknown block".into()))?;
                s.nonce_at(address, n)
            }
        }
    }

    async fn balance(&self, address: Address) -> ChainResult<U256> {
        Ok(self.lock().await.balance(address))
    }
}

#[async_trait]
impl ChainControl for Devnet {
    async fn snapshot(&self) -> ChainResult<u64> {
        let mut s = self.lock().await;
        let id = s.next_snapshot;
        s.next_snapshot += 1;
        let head = s.head_number();
        s.snapshots.insert(id, head);
        Ok(id)
    }

    async fn revert(&self, snapshot: u64) -> ChainResult<bool> {
        let mut s = self.lock().await;
        let Some(head) = s.snapshots.remove(&snapshot) else {
            return Ok(false);
        };
        s.truncate(head);
        s.pool.clear();
        self.persist(&mut s).await?;
        Ok(true)
    }

    async fn reorg(&self, depth: u64, replacement: Vec<Bytes>) -> ChainResult<()> {
        let mut s = self.lock().await;
        let head = s.head_number();
        if depth == 0 || depth > head {
            return Err(ChainError::Other(format!(
                "reorg depth {depth} with head {head}"
            )));
        }
        s.truncate(head - depth);
        let mut forced = Vec::new();
        for raw in replacement {
            let (hash, _) = s.accept(&raw)?;
            count_accepted();
            if let Some(p) = s
                .pool
                .values_mut()
                .find_map(|q| {
                    q.iter()
                        .find(|(_, p)| p.hash == hash)
                        .map(|(n, _)| *n)
                        .map(|n| (n, q))
                })
                .and_then(|(n, q)| q.remove(&n))
            {
                forced.push(p);
            }
        }
        s.pool.retain(|_, q| !q.is_empty());
        s.mine_block(forced);
        for _ in 1..depth {
            s.mine_block(Vec::new());
        }
        self.persist(&mut s).await
    }

    async fn rollback(&self, depth: u64) -> ChainResult<()> {
        let mut s = self.lock().await;
        let head = s.head_number();
        s.truncate(head.saturating_sub(depth));
        self.persist(&mut s).await
    }

    async fn set_next_block_timestamp(&self, timestamp: u64) -> ChainResult<()> {
        let mut s = self.lock().await;
        if timestamp <= s.head().header.timestamp {
            return Err(ChainError::Other(format!(
                "timestamp {timestamp} is not after the head's {}",
                s.head().header.timestamp
            )));
        }
        s.next_timestamp = Some(timestamp);
        Ok(())
    }

    async fn mine(&self, blocks: u64) -> ChainResult<()> {
        let mut s = self.lock().await;
        for _ in 0..blocks {
            s.mine_block(Vec::new());
            self.persist(&mut s).await?;
        }
        Ok(())
    }

    async fn set_automine(&self, enabled: bool) -> ChainResult<()> {
        let mut s = self.lock().await;
        s.automine = enabled;
        if enabled && s.has_executable() {
            s.mine_block(Vec::new());
        }
        self.persist(&mut s).await
    }
}
