//! The indexer as a running part of `rwa serve` (roles `indexer` and
//! `all`): the loop that holds the chain's lease and steps the follower,
//! and `checks.indexer` for `/health/detailed`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use rwa_domain::onchain::IndexStore;
use serde_json::json;
use tokio::sync::watch;

use crate::follower::{Follower, Progress};
use crate::reconcile::Reconciler;

/// Pauses of the loop.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    /// Between steps at the head, while the node lags, and while another
    /// process holds the lease.
    pub poll: Duration,
    /// After a failed step (the node or the database is down).
    pub retry: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            retry: Duration::from_secs(2),
        }
    }
}

/// Sleeps for `d` unless `stop` turns true first; returns whether to stop.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(d) => *stop.borrow(),
    }
}

/// Runs `follower` until `stop` turns true: takes the chain's lease (or
/// waits as a standby), then steps; a lost lease is taken again before
/// the next write.
pub async fn run(
    follower: Arc<Follower>,
    store: Arc<dyn IndexStore>,
    reconciler: Arc<Reconciler>,
    pacing: Pacing,
    mut stop: watch::Receiver<bool>,
) {
    let chain_id = follower.chain_id();
    loop {
        let mut lease = match store.system_index_lease(chain_id).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                tracing::debug!(chain_id, "another process indexes this chain: standing by");
                if pause(&mut stop, pacing.poll).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(chain_id, error = %e, "indexer lease not taken");
                if pause(&mut stop, pacing.retry).await {
                    return;
                }
                continue;
            }
        };
        tracing::info!(chain_id, "indexing");
        loop {
            if *stop.borrow() {
                return;
            }
            if !lease.alive().await {
                tracing::warn!(chain_id, "indexer lease lost (database connection closed)");
                break;
            }
            let wait = match follower.step().await {
                Ok(Progress::Indexed { .. } | Progress::Rewound { .. }) => None,
                Ok(Progress::Idle) => {
                    reconciler.run_if_due().await;
                    Some(pacing.poll)
                }
                Ok(Progress::Lagging) => Some(pacing.poll),
                Ok(Progress::Halted(_)) => Some(pacing.retry),
                Err(e) => {
                    tracing::warn!(chain_id, error = %e, "indexer step failed; retrying");
                    Some(pacing.retry)
                }
            };
            if let Some(d) = wait
                && pause(&mut stop, d).await
            {
                return;
            }
        }
    }
}

/// `checks.indexer`: where the index is against the node, the last reorg,
/// and whether it halted.
pub struct IndexerHealth {
    store: Arc<dyn IndexStore>,
    chain_id: u64,
    /// Lag (blocks behind the head) above which the check is degraded.
    max_lag: u64,
    reconciler: Option<Arc<Reconciler>>,
}

impl IndexerHealth {
    /// A check of the index of `chain_id`.
    pub fn new(store: Arc<dyn IndexStore>, chain_id: u64, max_lag: u64) -> Self {
        Self {
            store,
            chain_id,
            max_lag,
            reconciler: None,
        }
    }

    /// Also degraded while `reconciler` finds settled operations the index
    /// does not hold.
    pub fn with_reconciler(mut self, reconciler: Arc<Reconciler>) -> Self {
        self.reconciler = Some(reconciler);
        self
    }
}

#[async_trait]
impl HealthCheck for IndexerHealth {
    fn name(&self) -> &'static str {
        "indexer"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let mut details = serde_json::Map::new();
        details.insert("chain_id".into(), json!(self.chain_id));
        let status = match self.store.system_index_state(self.chain_id).await {
            Err(e) => {
                tracing::warn!(error = %e, "indexer health: state unreadable");
                details.insert("error".into(), json!("state unreadable"));
                HealthStatus::Unhealthy
            }
            Ok(None) => {
                details.insert("started".into(), json!(false));
                HealthStatus::Degraded
            }
            Ok(Some(s)) => {
                let lag = s.head.saturating_sub(s.cursor);
                details.insert("started".into(), json!(true));
                details.insert("head".into(), json!(s.head));
                details.insert("indexed_block".into(), json!(s.cursor));
                details.insert("finalized".into(), json!(s.finalized));
                details.insert("lag".into(), json!(lag));
                details.insert("reorgs".into(), json!(s.reorgs));
                details.insert("last_reorg_depth".into(), json!(s.last_reorg_depth));
                details.insert("last_reorg_at".into(), json!(s.last_reorg_at));
                details.insert("halted".into(), json!(s.halted.is_some()));
                let unreconciled = self.reconciler.as_ref().map_or(0, |r| r.open());
                details.insert("unreconciled_operations".into(), json!(unreconciled));
                if let Some(reason) = &s.halted {
                    details.insert("halted_reason".into(), json!(reason));
                    HealthStatus::Unhealthy
                } else if lag > self.max_lag || unreconciled > 0 {
                    HealthStatus::Degraded
                } else {
                    HealthStatus::Healthy
                }
            }
        };
        CheckReport {
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details,
        }
    }
}
