//! The worker runtime: handlers by kind, per-queue concurrency, leases with
//! heartbeats, and graceful shutdown that hands unfinished jobs back without
//! using up their attempt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::future::join_all;
use rand::Rng;
use rwa_domain::RepoResult;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::backoff;
use rwa_domain::jobs::{Job, JobState};

use crate::job::Outcome;
use crate::queue::{Fence, Queue};
use crate::rate::{Grant, RateLimit};

/// Runs one kind of job.
#[async_trait]
pub trait Handler: Send + Sync {
    /// One attempt. Panics are caught and count as a failed attempt.
    async fn run(&self, job: &Job) -> Outcome;
}

/// A queue this worker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// Queue name.
    pub name: String,
    /// Jobs of this queue running at once in this process; 0 leaves the
    /// queue's jobs to other processes (they wait, durably, until one serves it).
    pub concurrency: usize,
    /// Starts per window across every process, if limited.
    pub rate_limit: Option<RateLimit>,
}

impl QueueConfig {
    /// The platform's queues with their default concurrency.
    pub fn defaults() -> Vec<QueueConfig> {
        [
            ("token-deployment", 5),
            ("identity", 2),
            ("compliance-check", 10),
            ("settlement", 3),
            ("reporting", 2),
            ("notification", 10),
        ]
        .into_iter()
        .map(|(name, concurrency)| QueueConfig {
            name: name.to_owned(),
            concurrency,
            rate_limit: None,
        })
        .collect()
    }
}

/// Worker tuning.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// This process's worker id (`host:pid:random`), recorded as `attempted_by`.
    pub id: String,
    /// Queues served.
    pub queues: Vec<QueueConfig>,
    /// Lease of a claimed job; heartbeats extend it every third of it.
    pub lease: Duration,
    /// Pause between claims when nothing wakes the worker.
    pub poll_interval: Duration,
    /// On shutdown, how long running jobs may take before they are handed back.
    pub shutdown_deadline: Duration,
}

impl WorkerConfig {
    /// Defaults with a fresh worker id.
    pub fn new(queues: Vec<QueueConfig>) -> Self {
        Self {
            id: worker_id(),
            queues,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
            shutdown_deadline: Duration::from_secs(30),
        }
    }
}

/// `host:pid:random`: unique per process, readable in `attempted_by`.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    let tag: u32 = rand::rng().random();
    format!("{host}:{}:{tag:08x}", std::process::id())
}

/// A completion waiting for the next batch, and where to answer.
type Completion = (uuid::Uuid, tokio::sync::oneshot::Sender<RepoResult<Fence>>);

/// Most completions written by one statement.
const COMPLETION_BATCH: usize = 1_000;

/// Handlers and the queue they run against.
pub struct Worker {
    queue: Queue,
    handlers: HashMap<String, Arc<dyn Handler>>,
    config: WorkerConfig,
    /// While [`Worker::run`] runs: completions are written in batches.
    completer: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Completion>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.config.id)
            .field("kinds", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What happened to one job in a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ran {
    /// The job.
    pub id: uuid::Uuid,
    /// Its state after the step (as this worker wrote it).
    pub state: JobState,
    /// Whether this worker still held the job when it finished.
    pub fence: Fence,
}

impl Worker {
    /// A worker over `queue`.
    pub fn new(queue: Queue, config: WorkerConfig) -> Self {
        Self {
            queue,
            handlers: HashMap::new(),
            config,
            completer: std::sync::OnceLock::new(),
        }
    }

    /// Records a completion: batched with others while the worker runs, alone
    /// in single steps. Returns once it is stored.
    async fn complete(&self, job: &Job) -> RepoResult<Fence> {
        if let Some(batch) = self.completer.get() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if batch.send((job.id, tx)).is_ok()
                && let Ok(result) = rx.await
            {
                return result;
            }
        }
        self.queue.complete(job, &self.config.id).await
    }

    /// Writes completions in batches: whatever arrived while the previous
    /// batch was being written goes in the next statement.
    async fn complete_batches(
        queue: Queue,
        worker: String,
        mut pending: tokio::sync::mpsc::UnboundedReceiver<Completion>,
    ) {
        while let Some(first) = pending.recv().await {
            let mut batch = vec![first];
            while batch.len() < COMPLETION_BATCH {
                match pending.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let ids: Vec<uuid::Uuid> = batch.iter().map(|(id, _)| *id).collect();
            match queue.complete_many(&ids, &worker).await {
                Ok(held) => {
                    let held: std::collections::HashSet<uuid::Uuid> = held.into_iter().collect();
                    for (id, answer) in batch {
                        let fence = if held.contains(&id) {
                            Fence::Held
                        } else {
                            Fence::Lost
                        };
                        let _ = answer.send(Ok(fence));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, jobs = batch.len(), "batched completion failed");
                    for (id, answer) in batch {
                        let _ = answer.send(Err(rwa_domain::RepoError::Unavailable(format!(
                            "completing job {id}: {e}"
                        ))));
                    }
                }
            }
        }
    }

    /// Registers the handler of `kind`.
    pub fn register(&mut self, kind: impl Into<String>, handler: Arc<dyn Handler>) {
        self.handlers.insert(kind.into(), handler);
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// One step on `queue`: claims up to `max` jobs, runs them concurrently and
    /// records their outcomes. Deterministic for tests: returns when they are done.
    pub async fn try_execute(&self, queue: &str, max: usize) -> RepoResult<Vec<Ran>> {
        let jobs = self
            .queue
            .claim(queue, &self.config.id, max, self.config.lease)
            .await?;
        let mut out = Vec::with_capacity(jobs.len());
        let results = join_all(jobs.into_iter().map(|job| self.execute(job))).await;
        for r in results {
            out.push(r?);
        }
        Ok(out)
    }

    async fn execute(&self, job: Job) -> RepoResult<Ran> {
        let started = Instant::now();
        if let Some(at) = job.attempted_at {
            let waited = (at - job.scheduled_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("rwa_jobs_start_delay_seconds", "queue" => job.queue.clone())
                .record(waited);
        }
        let outcome = match self.handlers.get(&job.kind) {
            None => Outcome::Discard(format!("no handler for kind {:?}", job.kind)),
            Some(handler) => self.run_with_heartbeat(handler.clone(), &job).await,
        };
        metrics::histogram!("rwa_jobs_run_seconds", "queue" => job.queue.clone(), "kind" => job.kind.clone())
            .record(started.elapsed().as_secs_f64());
        self.record(&job, outcome).await
    }

    /// Runs the handler in its own task (a panic is a failed attempt) while the
    /// lease is extended every third of its length.
    async fn run_with_heartbeat(&self, handler: Arc<dyn Handler>, job: &Job) -> Outcome {
        let task_job = job.clone();
        let mut task = tokio::spawn(async move { handler.run(&task_job).await });
        let every = self.config.lease / 3;
        loop {
            tokio::select! {
                done = &mut task => {
                    return done.unwrap_or_else(|e| Outcome::Retry(format!("handler panicked: {e}")));
                }
                _ = tokio::time::sleep(every) => {
                    match self.queue.heartbeat(job, &self.config.id, self.config.lease).await {
                        Ok(Fence::Held) => {}
                        Ok(Fence::Lost) => {
                            // Rescued or cancelled elsewhere: stop working on it.
                            task.abort();
                            return Outcome::Retry("lease lost".into());
                        }
                        Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                    }
                }
            }
        }
    }

    async fn record(&self, job: &Job, outcome: Outcome) -> RepoResult<Ran> {
        let worker = &self.config.id;
        let (fence, state, label) = match &outcome {
            Outcome::Completed => (self.complete(job).await?, JobState::Completed, "completed"),
            Outcome::Retry(message) => {
                let delay = backoff::with_jitter(job.attempt, rand::rng().random());
                let state = if job.attempt >= job.max_attempts {
                    JobState::Discarded
                } else {
                    JobState::Retryable
                };
                (
                    self.queue.fail(job, worker, message, delay).await?,
                    state,
                    "retry",
                )
            }
            Outcome::Snooze(delay) => (
                self.queue.snooze(job, worker, *delay).await?,
                JobState::Scheduled,
                "snooze",
            ),
            Outcome::Cancel(reason) => (
                self.queue
                    .finish(job, worker, JobState::Cancelled, reason)
                    .await?,
                JobState::Cancelled,
                "cancel",
            ),
            Outcome::Discard(reason) => (
                self.queue
                    .finish(job, worker, JobState::Discarded, reason)
                    .await?,
                JobState::Discarded,
                "discard",
            ),
        };
        metrics::counter!("rwa_jobs_total", "queue" => job.queue.clone(), "kind" => job.kind.clone(), "outcome" => label)
            .increment(1);
        if fence == Fence::Lost {
            tracing::warn!(job = %job.id, "job finished after its lease was lost; outcome dropped");
        }
        Ok(Ran {
            id: job.id,
            state,
            fence,
        })
    }

    /// Serves every configured queue until `shutdown` turns true, then stops
    /// claiming, lets running jobs finish until the deadline, and hands the
    /// rest back without using up their attempt.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (batch, pending) = tokio::sync::mpsc::unbounded_channel();
        let completer = match self.completer.set(batch) {
            Ok(()) => Some(tokio::spawn(Self::complete_batches(
                self.queue.clone(),
                self.config.id.clone(),
                pending,
            ))),
            Err(_) => None, // already running: the first run's completer serves
        };
        let mut loops = JoinSet::new();
        let listener = match self.queue.db() {
            // Other processes' enqueues arrive as NOTIFY: wake at once rather
            // than at the next poll.
            crate::Db::Postgres(pool) => {
                Some(tokio::spawn(listen(pool.clone(), self.queue.clone())))
            }
            crate::Db::Sqlite { .. } => None,
        };
        // Concurrency 0: this process leaves the queue to others (or paused).
        for q in self
            .config
            .queues
            .iter()
            .filter(|q| q.concurrency > 0)
            .cloned()
        {
            let worker = Arc::clone(&self);
            let stop = shutdown.clone();
            loops.spawn(async move { worker.serve(q, stop).await });
        }
        let _ = shutdown.wait_for(|s| *s).await;
        while loops.join_next().await.is_some() {}
        // Every job's completion was awaited by its task: nothing is pending.
        if let Some(completer) = completer {
            completer.abort();
        }
        if let Some(listener) = listener {
            listener.abort();
        }
    }

    /// How many jobs may start now: the free slots, cut to the rate limit's
    /// grant when the queue has one.
    async fn admit(&self, q: &QueueConfig, free: usize) -> (usize, Option<Grant>) {
        match q.rate_limit {
            None => (free, None),
            Some(_) if free == 0 => (0, None),
            Some(limit) => match self.queue.reserve(&q.name, free, limit).await {
                Ok(grant) => (grant.granted, Some(grant)),
                Err(e) => {
                    tracing::warn!(queue = %q.name, error = %e, "rate limit reservation failed");
                    (0, None)
                }
            },
        }
    }

    async fn claim_admitted(
        &self,
        q: &QueueConfig,
        (n, grant): (usize, Option<Grant>),
    ) -> RepoResult<Vec<Job>> {
        let jobs = self
            .queue
            .claim(&q.name, &self.config.id, n, self.config.lease)
            .await?;
        if let Some(grant) = grant {
            self.queue.release(&q.name, grant, n - jobs.len()).await?;
        }
        Ok(jobs)
    }

    async fn serve(self: Arc<Self>, q: QueueConfig, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(q.concurrency.max(1)));
        let mut running: JoinSet<()> = JoinSet::new();
        let mut held: HashMap<uuid::Uuid, Job> = HashMap::new();
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<uuid::Uuid>();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let admitted = self.admit(&q, slots.available_permits()).await;
            match self.claim_admitted(&q, admitted).await {
                Ok(jobs) => {
                    for job in jobs {
                        let permit = Arc::clone(&slots)
                            .acquire_owned()
                            .await
                            .expect("semaphore open");
                        held.insert(job.id, job.clone());
                        let worker = Arc::clone(&self);
                        let done = done_tx.clone();
                        running.spawn(async move {
                            let id = job.id;
                            if let Err(e) = worker.execute(job).await {
                                tracing::error!(job = %id, error = %e, "could not record a job's outcome");
                            }
                            drop(permit);
                            let _ = done.send(id);
                        });
                    }
                }
                Err(e) => tracing::warn!(queue = %q.name, error = %e, "claim failed"),
            }
            while let Ok(id) = done_rx.try_recv() {
                held.remove(&id);
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = self.queue.woken() => {}
                _ = tokio::time::sleep(self.config.poll_interval) => {}
                Some(id) = done_rx.recv() => { held.remove(&id); }
            }
        }
        // Shutdown: no more claims; running jobs get until the deadline.
        let deadline = tokio::time::sleep(self.config.shutdown_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next() => if next.is_none() { break },
                Some(id) = done_rx.recv() => { held.remove(&id); }
                _ = &mut deadline => {
                    running.abort_all();
                    while let Ok(id) = done_rx.try_recv() {
                        held.remove(&id);
                    }
                    for job in held.values() {
                        match self.queue.hand_back(job, &self.config.id).await {
                            Ok(_) => tracing::info!(job = %job.id, "handed back at shutdown"),
                            Err(e) => tracing::error!(job = %job.id, error = %e, "could not hand a job back"),
                        }
                    }
                    break;
                }
            }
        }
    }
}

/// Wakes local workers on every `rwa_jobs` notification, reconnecting after a
/// lost connection (polling covers the gap).
async fn listen(pool: sqlx::PgPool, queue: Queue) {
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "job notifications unavailable; polling");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen("rwa_jobs").await {
            tracing::warn!(error = %e, "LISTEN rwa_jobs failed; polling");
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        }
        while let Ok(_notification) = listener.recv().await {
            queue.wake();
        }
    }
}
