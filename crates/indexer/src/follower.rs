//! The follower: one [`Follower::step`] at a time, each reading the
//! index's position from the store, asking the node, and writing at most a
//! few batches (each one transaction with its events, holdings and
//! position), so a crash between steps or inside one loses nothing and
//! repeats nothing.
//!
//! Order of a step: start the index at the finalized block the first time;
//! check the stored tip against the node (reorged: rewind to the common
//! ancestor; lagging node: wait; a reorg below finality halts); track newly
//! known contracts; let contracts behind the cursor catch up alone; then
//! move every following contract forward, by ranged `eth_getLogs` below
//! the finalized block and block by block above it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rwa_domain::RepoError;
use rwa_domain::chain::{Address, B256, BlockTag, ChainError, ChainPort, LogFilter};
use rwa_domain::onchain::{
    BlockRef, Heights, IndexBatch, IndexState, IndexStore, OnchainEvent, Scope, Source,
    SourceProgress,
};
use thiserror::Error;

use crate::decode::decode;
use crate::fetch::{RangeConfig, RangeFetcher};
use crate::window::{Ancestor, Head, Next, Window};

/// Why a step failed; the next step starts over from the store.
#[derive(Debug, Error)]
pub enum StepError {
    /// The node failed.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] RepoError),
}

/// What a step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Blocks indexed (cursor moved, or contracts caught up).
    Indexed {
        /// Blocks covered.
        blocks: u64,
        /// Events stored.
        events: u64,
    },
    /// At the node's head: nothing to do until a new block.
    Idle,
    /// The node is behind our tip but on our chain: waiting for it.
    Lagging,
    /// A reorg was undone: blocks above `to` were removed.
    Rewound {
        /// The common ancestor.
        to: u64,
        /// Blocks undone.
        depth: u64,
    },
    /// Halted (a reorg below finality); only an operator can resume it.
    Halted(String),
}

/// Tuning of the follower.
#[derive(Clone, Copy, Debug)]
pub struct FollowerConfig {
    /// Ranged fetch sizes.
    pub ranges: RangeConfig,
    /// Live blocks indexed per step at most (the step ends to let tracking
    /// and catch-up run).
    pub live_blocks_per_step: u64,
    /// Ranges written per step at most, for the same reason.
    pub ranges_per_step: usize,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            ranges: RangeConfig::default(),
            live_blocks_per_step: 64,
            ranges_per_step: 64,
        }
    }
}

/// The indexer of one chain.
pub struct Follower {
    chain: Arc<dyn ChainPort>,
    store: Arc<dyn IndexStore>,
    chain_id: u64,
    config: FollowerConfig,
    range: AtomicU64,
}

impl Follower {
    /// A follower of `chain` (whose id is `chain_id`) writing to `store`.
    pub fn new(
        chain: Arc<dyn ChainPort>,
        store: Arc<dyn IndexStore>,
        chain_id: u64,
        config: FollowerConfig,
    ) -> Self {
        Self {
            chain,
            store,
            chain_id,
            range: AtomicU64::new(config.ranges.initial),
            config,
        }
    }

    /// The chain it follows.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    async fn heights(&self) -> Result<Heights, StepError> {
        let head = self.chain.block_number(BlockTag::Latest).await?;
        let safe = self.chain.block_number(BlockTag::Safe).await?.min(head);
        let finalized = self
            .chain
            .block_number(BlockTag::Finalized)
            .await?
            .min(safe);
        Ok(Heights {
            head,
            safe,
            finalized,
        })
    }

    async fn block(&self, number: u64) -> Result<Option<BlockRef>, StepError> {
        Ok(self
            .chain
            .header(BlockTag::Number(number))
            .await?
            .map(|h| BlockRef {
                number: h.number,
                hash: h.hash,
                parent_hash: h.parent_hash,
            }))
    }

    async fn state(&self) -> Result<IndexState, StepError> {
        if let Some(state) = self.store.system_index_state(self.chain_id).await? {
            return Ok(state);
        }
        let heights = self.heights().await?;
        let at = self
            .block(heights.finalized)
            .await?
            .ok_or_else(|| ChainError::Other("finalized block not found".into()))?;
        self.store
            .system_start_index(self.chain_id, at, heights)
            .await?;
        tracing::info!(
            chain_id = self.chain_id,
            block = at.number,
            "indexer started"
        );
        self.store
            .system_index_state(self.chain_id)
            .await?
            .ok_or_else(|| RepoError::Internal("index state vanished".into()).into())
    }

    /// One step (see the module's header).
    pub async fn step(&self) -> Result<Progress, StepError> {
        let state = self.state().await?;
        if let Some(reason) = state.halted {
            return Ok(Progress::Halted(reason));
        }
        let heights = self.heights().await?;
        metrics::gauge!("rwa_indexer_lag_blocks")
            .set(heights.head.saturating_sub(state.cursor) as f64);
        let window = Window::new(
            state.window.clone(),
            state
                .window
                .first()
                .is_some_and(|b| b.number <= state.finalized),
        );
        let node_at_tip = self.block(state.cursor).await?.map(|b| b.hash);
        match window.head(heights.head, node_at_tip) {
            Head::Reorged => return self.rewind(&window, heights).await,
            Head::Lagging => {
                // Lagging only while the node's own head is one of our
                // blocks; a head that differs from ours at its height
                // forked below our tip (a rollback, a revert): rewind.
                let ours = window
                    .blocks()
                    .iter()
                    .find(|b| b.number == heights.head)
                    .map(|b| b.hash);
                let theirs = self.block(heights.head).await?.map(|b| b.hash);
                if ours.is_some() && ours != theirs {
                    return self.rewind(&window, heights).await;
                }
                self.store
                    .system_observe_heights(self.chain_id, heights)
                    .await?;
                return Ok(Progress::Lagging);
            }
            Head::AtTip | Head::Ahead => {}
        }
        let sources = self.track(state.cursor).await?;
        if let Some(progress) = self.catch_up(&sources, &state, heights).await? {
            return Ok(progress);
        }
        let following: Vec<Address> = sources
            .iter()
            .filter(|s| s.progress == SourceProgress::Following)
            .map(|s| s.address)
            .collect();
        if state.cursor < heights.finalized {
            return self.backfill(following, state.cursor, heights).await;
        }
        if state.cursor >= heights.head {
            self.store
                .system_observe_heights(self.chain_id, heights)
                .await?;
            return Ok(Progress::Idle);
        }
        self.live(following, window, heights).await
    }

    /// Tracks contracts the store knows and the index does not yet: those
    /// starting above the cursor follow it, the others catch up from their
    /// first block.
    async fn track(&self, cursor: u64) -> Result<Vec<Source>, StepError> {
        let mut sources = self.store.system_index_sources(self.chain_id).await?;
        for s in sources
            .iter_mut()
            .filter(|s| s.progress == SourceProgress::Untracked)
        {
            let synced_to = (s.start_block <= cursor).then(|| s.start_block.saturating_sub(1));
            self.store
                .system_track_source(self.chain_id, s.address, synced_to)
                .await?;
            s.progress = match synced_to {
                None => SourceProgress::Following,
                Some(n) => SourceProgress::Behind(n),
            };
        }
        Ok(sources)
    }

    /// Moves the contracts furthest behind (all those at the same height)
    /// towards the cursor, by ranges; `None` when none is behind.
    async fn catch_up(
        &self,
        sources: &[Source],
        state: &IndexState,
        heights: Heights,
    ) -> Result<Option<Progress>, StepError> {
        let mut behind: BTreeMap<u64, Vec<Address>> = BTreeMap::new();
        for s in sources {
            if let SourceProgress::Behind(n) = s.progress {
                behind.entry(n).or_default().push(s.address);
            }
        }
        let Some((&from, contracts)) = behind.iter().next() else {
            return Ok(None);
        };
        let until = state.cursor;
        let scope = Scope::CatchUp(contracts.clone());
        let progress = self
            .ranges(
                scope,
                contracts.clone(),
                from,
                until,
                heights,
                Some(&state.window),
            )
            .await?;
        Ok(Some(progress))
    }

    /// Ranged fetches from `after + 1` to the finalized block for the
    /// following contracts.
    async fn backfill(
        &self,
        following: Vec<Address>,
        after: u64,
        heights: Heights,
    ) -> Result<Progress, StepError> {
        self.ranges(
            Scope::Following,
            following,
            after,
            heights.finalized,
            heights,
            None,
        )
        .await
    }

    /// Fetches `after + 1 ..= until` in pipelined ranges and writes each as
    /// a batch of `scope`. Above the finalized block (a catch-up inside the
    /// window) every log's block must be the window's, or the step stops:
    /// the next one finds the reorg.
    async fn ranges(
        &self,
        scope: Scope,
        addresses: Vec<Address>,
        after: u64,
        until: u64,
        heights: Heights,
        window: Option<&[BlockRef]>,
    ) -> Result<Progress, StepError> {
        let mut fetcher = RangeFetcher::new(
            self.chain.clone(),
            addresses,
            after + 1,
            until,
            self.range.load(Ordering::Relaxed),
            self.config.ranges,
        );
        let (mut position, mut blocks, mut events) = (after, 0, 0);
        let mut written = 0;
        while let Some(fetched) = fetcher.next().await {
            let fetched = fetched?;
            self.range.store(fetcher.size(), Ordering::Relaxed);
            if let Some(window) = window {
                let off_window = fetched.logs.iter().any(|l| {
                    window
                        .iter()
                        .any(|b| b.number == l.block_number && b.hash != l.block_hash)
                });
                if off_window {
                    break;
                }
            }
            let batch = IndexBatch {
                scope: scope.clone(),
                after: position,
                to: fetched.to,
                window: match scope {
                    Scope::Following => vec![fetched.to],
                    Scope::CatchUp(_) => Vec::new(),
                },
                events: self.decode_all(&fetched.logs),
                heights,
            };
            let applied = self.store.system_apply_index(self.chain_id, &batch).await?;
            if !applied.fresh {
                break;
            }
            self.count(&batch, applied.underflows);
            blocks += fetched.to.number - position;
            events += applied.events;
            position = fetched.to.number;
            written += 1;
            if written >= self.config.ranges_per_step {
                break;
            }
        }
        Ok(Progress::Indexed { blocks, events })
    }

    /// Block by block above the finalized one, each checked against the
    /// tip; a block that does not build on it is a reorg.
    async fn live(
        &self,
        following: Vec<Address>,
        mut window: Window,
        heights: Heights,
    ) -> Result<Progress, StepError> {
        let (mut blocks, mut events) = (0, 0);
        let tip = window.tip().map_or(0, |b| b.number);
        let last = heights.head.min(tip + self.config.live_blocks_per_step);
        for number in tip + 1..=last {
            let Some(block) = self.block(number).await? else {
                break;
            };
            match window.next(&block) {
                Next::Extends => {}
                Next::Reorged => return self.rewind(&window, heights).await,
                Next::NotNext => break,
            }
            let logs = if following.is_empty() {
                Vec::new()
            } else {
                self.chain
                    .logs(&LogFilter::block_hash(block.hash).address(following.iter().copied()))
                    .await?
            };
            let batch = IndexBatch {
                scope: Scope::Following,
                after: number - 1,
                to: block,
                window: vec![block],
                events: self.decode_all(&logs),
                heights,
            };
            let applied = self.store.system_apply_index(self.chain_id, &batch).await?;
            if !applied.fresh {
                break;
            }
            self.count(&batch, applied.underflows);
            window.push(block);
            blocks += 1;
            events += applied.events;
        }
        Ok(Progress::Indexed { blocks, events })
    }

    /// Walks back by hash to the common ancestor and undoes everything
    /// above it; halts when the reorg reaches below the finalized block.
    async fn rewind(&self, window: &Window, heights: Heights) -> Result<Progress, StepError> {
        let mut node: BTreeMap<u64, B256> = BTreeMap::new();
        for b in window.blocks().iter().rev() {
            if let Some(n) = self.block(b.number).await? {
                node.insert(b.number, n.hash);
                if n.hash == b.hash {
                    break;
                }
            }
        }
        match window.ancestor(|n| node.get(&n).copied()) {
            Ancestor::At(ancestor) => {
                let tip = window.tip().map_or(ancestor.number, |b| b.number);
                let depth = tip - ancestor.number;
                let deleted = self
                    .store
                    .system_rewind_index(self.chain_id, ancestor)
                    .await?;
                metrics::counter!("rwa_indexer_reorgs_total").increment(1);
                metrics::gauge!("rwa_indexer_reorg_depth").set(depth as f64);
                tracing::warn!(
                    chain_id = self.chain_id,
                    ancestor = ancestor.number,
                    depth,
                    events_removed = deleted,
                    "reorg undone"
                );
                Ok(Progress::Rewound {
                    to: ancestor.number,
                    depth,
                })
            }
            Ancestor::BelowFinality | Ancestor::BelowWindow => {
                let floor = window.blocks().first().map_or(0, |b| b.number);
                let reason = format!(
                    "reorg below the finalized block: the node no longer has the indexed block \
                     {floor} (finalized {})",
                    heights.finalized
                );
                self.store.system_halt_index(self.chain_id, &reason).await?;
                tracing::error!(chain_id = self.chain_id, %reason, "indexer halted");
                Ok(Progress::Halted(reason))
            }
        }
    }

    fn decode_all(&self, logs: &[rwa_domain::chain::Log]) -> Vec<OnchainEvent> {
        logs.iter()
            .filter(|l| !l.removed)
            .map(|l| decode(self.chain_id, l))
            .collect()
    }

    fn count(&self, batch: &IndexBatch, underflows: u64) {
        let blocks = batch.to.number - batch.after;
        if batch.scope == Scope::Following {
            metrics::counter!("rwa_indexer_blocks_total").increment(blocks);
        }
        for e in &batch.events {
            let standard = match e.kind.transfer_standard() {
                Some(s) => s.as_str(),
                None if e.kind.name() == "undecodable" => "undecodable",
                None => "other",
            };
            metrics::counter!("rwa_indexer_events_total", "standard" => standard).increment(1);
        }
        if underflows > 0 {
            metrics::counter!("rwa_indexer_balance_underflows_total").increment(underflows);
            tracing::warn!(
                chain_id = self.chain_id,
                underflows,
                "transfers larger than the indexed balance (a contract followed from after its first transfers?)"
            );
        }
    }
}
