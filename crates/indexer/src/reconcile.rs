//! The transaction manager's `settled` against the indexer's events: every
//! settled mint, burn, forced transfer and transfer must have its
//! `Transfer` in the index once the indexer is a confirmation depth past its
//! block. Checked periodically by the indexing process; a disagreement is an
//! alarm: an `operation.unindexed` or `transfer.unindexed` event (once), an
//! error log,
//! `rwa_indexer_unreconciled_operations`, and `checks.indexer` degraded
//! while it lasts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rwa_domain::onchain::{IndexStore, Reconciliation};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The periodic check and its last outcome.
pub struct Reconciler {
    settlements: Arc<dyn Reconciliation>,
    index: Arc<dyn IndexStore>,
    chain_id: u64,
    depth: u64,
    every: Duration,
    last: Mutex<Option<Instant>>,
    open: AtomicU64,
}

impl Reconciler {
    /// Checks `chain_id` every `every`, `depth` blocks below the cursor.
    pub fn new(
        settlements: Arc<dyn Reconciliation>,
        index: Arc<dyn IndexStore>,
        chain_id: u64,
        depth: u64,
        every: Duration,
    ) -> Self {
        Self {
            settlements,
            index,
            chain_id,
            depth,
            every,
            last: Mutex::new(None),
            open: AtomicU64::new(0),
        }
    }

    /// Settled operations whose transfer was not indexed, at the last check.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Runs the check when it is due.
    pub async fn run_if_due(&self) {
        let mut last = self.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        *last = Some(Instant::now());
        let cursor = match self.index.system_index_state(self.chain_id).await {
            Ok(Some(s)) => s.cursor,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation skipped: index state unreadable");
                return;
            }
        };
        let below = cursor.saturating_sub(self.depth);
        match self
            .settlements
            .system_reconcile_settlements(self.chain_id, below)
            .await
        {
            Ok(open) => {
                self.open.store(open.len() as u64, Ordering::Relaxed);
                metrics::gauge!("rwa_indexer_unreconciled_operations").set(open.len() as f64);
                for u in &open {
                    tracing::error!(
                        subject = u.subject,
                        reason = u.reason,
                        id = %u.id,
                        tx_hash = %u.tx_hash,
                        block = u.block_number,
                        "settled, but the index does not hold its Transfer"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation failed; retried later"),
        }
    }
}
