//! Background work of the `worker` role (and of `all`): the job workers with
//! the platform's handlers, the transaction manager's sender loops, and the
//! queue's maintenance (on one elected process).

use std::sync::Arc;
use std::time::Duration;

use rwa_chain::txm::TxManager;
use rwa_jobs::Queue;
use rwa_jobs::maintenance::{self, MaintenanceConfig};
use rwa_jobs::scheduler::Scheduler;
use rwa_jobs::worker::{Worker, WorkerConfig};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::config::JobsConfig;
use crate::handlers::Platform;

/// How long stopping waits for the transaction senders' current step. Cutting
/// a step is safe (every attempt is stored before broadcast), only noisier.
const SENDER_STOP_GRACE: Duration = Duration::from_secs(5);

/// The running background tasks.
pub struct Background {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    senders_stop: Arc<Notify>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Starts the workers for the platform's queues and the maintenance loop.
    /// On shutdown, running jobs get `shutdown_deadline` before they are handed back.
    pub fn start(
        queue: Queue,
        jobs: &JobsConfig,
        shutdown_deadline: Duration,
        txm: Arc<TxManager>,
        platform: &Platform,
    ) -> Background {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut config = WorkerConfig::new(jobs.queues.clone());
        config.shutdown_deadline = shutdown_deadline;
        config.lease = jobs.lease;
        let mut worker = Worker::new(queue.clone(), config);
        platform.register(&mut worker);
        // Test builds add the test kinds (`test-hooks`), release builds none.
        for (kind, handler) in rwa_jobs::testing::handlers(&queue) {
            worker.register(kind, handler);
        }
        let worker = Arc::new(worker);
        tracing::info!(worker = worker.id(), "job workers started");
        tasks.spawn(worker.run(stopped.clone()));
        let maintenance = MaintenanceConfig {
            every: jobs.maintenance_interval,
            ..MaintenanceConfig::default()
        };
        let scheduler = Scheduler::new(queue.clone(), crate::handlers::periodic());
        tasks.spawn(maintenance::run(queue, maintenance, scheduler, stopped));
        let senders_stop = Arc::new(Notify::new());
        let senders = txm.spawn(senders_stop.clone());
        Background {
            stop,
            tasks,
            senders_stop,
            senders,
        }
    }

    /// Stops claiming, waits for running jobs (up to the workers' deadline,
    /// after which they are handed back) and for maintenance to stop.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        // Jobs are done; no more submissions. A sender in the middle of a
        // step misses `notify_waiters`, so the grace period bounds the wait.
        self.senders_stop.notify_waiters();
        for sender in self.senders {
            let abort = sender.abort_handle();
            if tokio::time::timeout(SENDER_STOP_GRACE, sender)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
