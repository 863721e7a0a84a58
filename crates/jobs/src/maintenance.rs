//! Queue maintenance: rescuing jobs whose lease expired, pruning finished
//! jobs in batches, and firing periodic jobs. It runs on one elected process: on PostgreSQL the holder
//! of a session advisory lock on a connection detached from the pool (released
//! when that process dies, so another takes over within one round); on SQLite
//! there is only one process.

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tokio::sync::watch;

use crate::scheduler::Scheduler;
use crate::{Db, Queue};

/// Advisory-lock key of the maintenance leader (`rwa-jobs` in ASCII).
const LEADER_LOCK: i64 = 0x7277_612d_6a6f_6273;

/// Maintenance tuning.
#[derive(Clone, Copy, Debug)]
pub struct MaintenanceConfig {
    /// Pause between rounds.
    pub every: Duration,
    /// Finished jobs are kept this long.
    pub keep_finished: Duration,
    /// Rows deleted per round.
    pub prune_batch: usize,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(10),
            keep_finished: Duration::from_secs(7 * 24 * 3600),
            prune_batch: 1_000,
        }
    }
}

/// Runs maintenance until `stopped` turns true: each round, if this process
/// leads, rescue expired leases, prune one batch of old finished jobs and fire
/// the periodic jobs that are due.
pub async fn run(
    queue: Queue,
    config: MaintenanceConfig,
    scheduler: Scheduler,
    mut stopped: watch::Receiver<bool>,
) {
    // The leader's lock lives on a connection detached from the pool, so it is
    // released exactly when that connection closes (the process dies).
    let mut leader: Option<PgConnection> = None;
    loop {
        let leading = match queue.db() {
            Db::Sqlite { .. } => true,
            Db::Postgres(pool) => {
                leader.is_some() || {
                    leader = try_lead(pool).await;
                    leader.is_some()
                }
            }
        };
        // Every process exports the queue depth it sees, leader or not.
        match queue.counts().await {
            Ok(counts) => crate::health::export_depth(&counts),
            Err(e) => tracing::debug!(error = %e, "reading queue depth failed"),
        }
        if leading {
            if let Err(e) = queue.rescue_expired().await {
                tracing::warn!(error = %e, "rescuing expired jobs failed");
            }
            match queue.prune(config.keep_finished, config.prune_batch).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned finished jobs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning jobs failed"),
            }
            if let Err(e) = queue.prune_rate_windows().await {
                tracing::warn!(error = %e, "pruning rate windows failed");
            }
            if let Err(e) = scheduler.tick().await {
                tracing::warn!(error = %e, "firing periodic jobs failed");
            }
        }
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(config.every) => {}
        }
    }
}

/// A dedicated connection holding the leader lock, if this process won it.
async fn try_lead(pool: &PgPool) -> Option<PgConnection> {
    let mut conn = pool.acquire().await.ok()?.detach();
    match sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await
    {
        Ok(true) => {
            tracing::info!("this process leads queue maintenance");
            Some(conn)
        }
        Ok(false) => None,
        Err(e) => {
            tracing::warn!(error = %e, "queue maintenance election failed");
            None
        }
    }
}
