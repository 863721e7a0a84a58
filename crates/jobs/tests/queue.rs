//! The job queue on SQLite and PostgreSQL (`RWA_TEST_DATABASE=sqlite|postgres`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_jobs::worker::{Handler, QueueConfig, Worker, WorkerConfig};
use rwa_jobs::{Db, Fence, Job, JobState, NewJob, Outcome, Queue, backoff};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::TestDatabase;
use serde_json::json;
use uuid::Uuid;

struct Rig {
    queue: Queue,
    _store: Store,
    _db: TestDatabase,
}

impl Rig {
    /// The database's clock: every time the queue stores comes from it, so
    /// timing assertions compare against it rather than against sleeps.
    async fn db_now(&self) -> DateTime<Utc> {
        match self.queue.db() {
            Db::Sqlite { reader, .. } => {
                let now: String =
                    sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
                        .fetch_one(reader)
                        .await
                        .unwrap();
                now.parse().unwrap()
            }
            Db::Postgres(pool) => sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    }
}

/// Polls `f` until it holds; the bound is generous because it only matters
/// when the test fails (a loaded 2-core machine can be slow, never wrong).
async fn wait_until(mut f: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..3_000 {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

async fn rig() -> Rig {
    let db = TestDatabase::create().await;
    let mut opts = StoreOptions::new(&db.url);
    opts.max_connections = 8;
    let store = Store::connect(&opts).await.unwrap();
    store.migrate().await.unwrap();
    Rig {
        queue: Queue::new(store.job_db()),
        _store: store,
        _db: db,
    }
}

/// Records the jobs it ran and answers with a fixed outcome.
struct Recorder {
    ran: Mutex<Vec<Uuid>>,
    outcome: Outcome,
}

impl Recorder {
    fn new(outcome: Outcome) -> Arc<Self> {
        Arc::new(Self {
            ran: Mutex::new(Vec::new()),
            outcome,
        })
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn run(&self, job: &Job) -> Outcome {
        self.ran.lock().unwrap().push(job.id);
        self.outcome.clone()
    }
}

fn worker(queue: &Queue, kind: &str, handler: Arc<dyn Handler>) -> Worker {
    let mut w = Worker::new(queue.clone(), WorkerConfig::new(vec![]));
    w.register(kind, handler);
    w
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_runs_and_a_committed_one_does() {
    let rig = rig().await;
    let job = |n: i32| NewJob::new("q", "k", json!({ "n": n }));
    let (rolled_back, committed) = match rig.queue.db() {
        Db::Sqlite { writer, .. } => {
            let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let a = rwa_jobs::enqueue_sqlite(&mut tx, &job(1)).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = writer.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let b = rwa_jobs::enqueue_sqlite(&mut tx, &job(2)).await.unwrap();
            tx.commit().await.unwrap();
            (a, b)
        }
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            let a = rwa_jobs::enqueue_postgres(&mut tx, &job(1)).await.unwrap();
            tx.rollback().await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            let b = rwa_jobs::enqueue_postgres(&mut tx, &job(2)).await.unwrap();
            tx.commit().await.unwrap();
            (a, b)
        }
    };
    let recorder = Recorder::new(Outcome::Completed);
    let w = worker(&rig.queue, "k", recorder.clone());
    let ran = w.try_execute("q", 10).await.unwrap();
    assert_eq!(ran.len(), 1);
    assert_eq!(*recorder.ran.lock().unwrap(), vec![committed.id]);
    assert!(matches!(
        rig.queue.get(rolled_back.id).await,
        Err(rwa_domain::RepoError::NotFound)
    ));
    let done = rig.queue.get(committed.id).await.unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.args, json!({ "n": 2 }));
    assert!(done.finalized_at.is_some());
    assert!(
        w.try_execute("q", 10).await.unwrap().is_empty(),
        "runs once"
    );
}

#[tokio::test]
async fn failures_back_off_in_the_database_then_dead_letter_and_an_operator_retry_revives() {
    let rig = rig().await;
    let job = rig
        .queue
        .enqueue(&NewJob::new("q", "flaky", json!({})).max_attempts(3))
        .await
        .unwrap();
    let failing = Recorder::new(Outcome::Retry("node unreachable".into()));
    let w = worker(&rig.queue, "flaky", failing.clone());

    for attempt in 1..=3 {
        let before = rig.db_now().await;
        let ran = w.try_execute("q", 1).await.unwrap();
        let after = rig.db_now().await;
        assert_eq!(ran.len(), 1, "attempt {attempt} runs");
        let stored = rig.queue.get(job.id).await.unwrap();
        assert_eq!(stored.attempt, attempt);
        assert_eq!(stored.errors.len() as i32, attempt);
        assert_eq!(stored.errors.last().unwrap().message, "node unreachable");
        if attempt < 3 {
            assert_eq!(stored.state, JobState::Retryable);
            // scheduled_at = the database's now at the failure + the backoff,
            // and that now lies between the two clock readings around the
            // attempt: so the backoff is bounded exactly, with no slack.
            let (lo, hi) = backoff::bounds(attempt);
            let longest = (stored.scheduled_at - before).to_std().unwrap();
            let shortest = (stored.scheduled_at - after).to_std().unwrap_or_default();
            assert!(longest >= lo, "{longest:?} < {lo:?}");
            assert!(shortest <= hi, "{shortest:?} > {hi:?}");
            assert!(
                w.try_execute("q", 1).await.unwrap().is_empty(),
                "not runnable before its time"
            );
            // Skip the wait (no sleeps in tests): the operator's retry makes it runnable now.
            rig.queue.retry_now(job.id).await.unwrap();
        } else {
            assert_eq!(
                stored.state,
                JobState::Discarded,
                "out of attempts: dead letter"
            );
            assert!(stored.finalized_at.is_some());
        }
    }
    let revived = rig.queue.retry_now(job.id).await.unwrap();
    assert_eq!(revived.state, JobState::Available);
    assert_eq!(revived.max_attempts, 4, "one more attempt granted");
    let ok = worker(&rig.queue, "flaky", Recorder::new(Outcome::Completed));
    assert_eq!(
        ok.try_execute("q", 1).await.unwrap()[0].state,
        JobState::Completed
    );
    assert!(matches!(
        rig.queue.retry_now(Uuid::now_v7()).await,
        Err(rwa_domain::RepoError::NotFound)
    ));
}

#[tokio::test]
async fn snooze_keeps_the_attempt_and_cancel_discard_and_unknown_kinds_finish() {
    let rig = rig().await;
    let snoozed = rig
        .queue
        .enqueue(&NewJob::new("q", "snooze", json!({})))
        .await
        .unwrap();
    let w = worker(
        &rig.queue,
        "snooze",
        Recorder::new(Outcome::Snooze(Duration::from_secs(3600))),
    );
    w.try_execute("q", 1).await.unwrap();
    let s = rig.queue.get(snoozed.id).await.unwrap();
    assert_eq!(
        (s.state, s.attempt),
        (JobState::Scheduled, 0),
        "a snooze uses no attempt"
    );

    let c = rig
        .queue
        .enqueue(&NewJob::new("c", "cancel", json!({})))
        .await
        .unwrap();
    let w = worker(
        &rig.queue,
        "cancel",
        Recorder::new(Outcome::Cancel("investor withdrew".into())),
    );
    w.try_execute("c", 1).await.unwrap();
    let c = rig.queue.get(c.id).await.unwrap();
    assert_eq!(c.state, JobState::Cancelled);
    assert_eq!(c.errors[0].message, "investor withdrew");

    let d = rig
        .queue
        .enqueue(&NewJob::new("d", "mystery", json!({})))
        .await
        .unwrap();
    let w = worker(&rig.queue, "other", Recorder::new(Outcome::Completed));
    w.try_execute("d", 1).await.unwrap();
    let d = rig.queue.get(d.id).await.unwrap();
    assert_eq!(d.state, JobState::Discarded);
    assert!(d.errors[0].message.contains("no handler"));
}

#[tokio::test]
async fn unique_keys_dedupe_while_active_and_priorities_order_claims() {
    let rig = rig().await;
    let a = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({})).unique("token:1"))
        .await
        .unwrap();
    let b = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({ "other": true })).unique("token:1"))
        .await
        .unwrap();
    assert_eq!(a.id, b.id, "an active key returns the existing job");
    let urgent = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({})).priority(-5))
        .await
        .unwrap();
    let claimed = rig
        .queue
        .claim("q", "w", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id, urgent.id, "lower priority number first");
    rig.queue.complete(&claimed[0], "w").await.unwrap();
    let first = rig
        .queue
        .claim("q", "w", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(rig.queue.complete(&first, "w").await.unwrap(), Fence::Held);
    let again = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({})).unique("token:1"))
        .await
        .unwrap();
    assert_ne!(again.id, a.id, "a finished job frees its key");
}

#[tokio::test]
async fn an_expired_lease_is_rescued_and_the_old_worker_cannot_complete() {
    let rig = rig().await;
    let job = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({})))
        .await
        .unwrap();
    // A job whose lease lasts an hour is left alone by every rescue below.
    let live = rig
        .queue
        .enqueue(&NewJob::new("live", "k", json!({})))
        .await
        .unwrap();
    rig.queue
        .claim("live", "worker-a", 1, Duration::from_secs(3600))
        .await
        .unwrap();
    let held = rig
        .queue
        .claim("q", "worker-a", 1, Duration::from_millis(1))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(held.attempted_by.as_deref(), Some("worker-a"));
    // The short lease expires by the database's clock; wait for that state
    // instead of sleeping for a guessed time.
    let rescued_once = wait_until(async || rig.queue.rescue_expired().await.unwrap() == 1).await;
    assert!(rescued_once, "the expired lease is rescued");
    assert_eq!(
        rig.queue.get(live.id).await.unwrap().state,
        JobState::Running,
        "a live lease is left alone"
    );
    let rescued = rig.queue.get(job.id).await.unwrap();
    assert_eq!(rescued.state, JobState::Retryable);
    assert!(rescued.errors[0].message.contains("lease expired"));
    assert_eq!(
        rig.queue.complete(&held, "worker-a").await.unwrap(),
        Fence::Lost,
        "fenced out"
    );

    let again = rig
        .queue
        .claim("q", "worker-b", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(again.attempt, 2);
    assert_eq!(
        rig.queue.complete(&again, "worker-b").await.unwrap(),
        Fence::Held
    );
    assert_eq!(
        rig.queue.get(job.id).await.unwrap().state,
        JobState::Completed
    );
}

#[tokio::test]
async fn the_pruner_removes_only_finished_jobs_past_their_age() {
    let rig = rig().await;
    let done = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({})))
        .await
        .unwrap();
    let waiting = rig
        .queue
        .enqueue(&NewJob::new("other", "k", json!({})))
        .await
        .unwrap();
    let claimed = rig
        .queue
        .claim("q", "w", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    rig.queue.complete(&claimed, "w").await.unwrap();
    assert_eq!(
        rig.queue
            .prune(Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        0,
        "too young"
    );
    // Past 1 ms of age by the database's clock, it goes (and only it).
    let pruned = wait_until(async || {
        rig.queue
            .prune(Duration::from_millis(1), 100)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert!(pruned, "the finished job is pruned once old enough");
    assert!(rig.queue.get(done.id).await.is_err());
    assert_eq!(
        rig.queue.get(waiting.id).await.unwrap().state,
        JobState::Available,
        "unfinished jobs stay"
    );
}

/// Sleeps while counting how many run at once.
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
    done: AtomicUsize,
}

#[async_trait]
impl Handler for Gauge {
    async fn run(&self, _job: &Job) -> Outcome {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.done.fetch_add(1, Ordering::SeqCst);
        Outcome::Completed
    }
}

#[tokio::test]
async fn queue_concurrency_is_reached_and_never_exceeded() {
    let rig = rig().await;
    let jobs: Vec<NewJob> = (0..15)
        .map(|i| NewJob::new("settlement", "k", json!({ "i": i })))
        .collect();
    rig.queue.enqueue_many(&jobs).await.unwrap();
    let gauge = Arc::new(Gauge {
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    let mut config = WorkerConfig::new(vec![QueueConfig {
        name: "settlement".into(),
        concurrency: 3,
        rate_limit: None,
    }]);
    config.poll_interval = Duration::from_millis(10);
    let mut w = Worker::new(rig.queue.clone(), config);
    w.register("k", gauge.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::new(w).run(stopped));
    wait_until(async || gauge.done.load(Ordering::SeqCst) == 15).await;
    stop.send(true).unwrap();
    run.await.unwrap();
    assert_eq!(gauge.done.load(Ordering::SeqCst), 15);
    assert_eq!(
        gauge.peak.load(Ordering::SeqCst),
        3,
        "the limit is reached and never exceeded"
    );
    let all = rig
        .queue
        .list(None, Some("settlement"), None, None, 100)
        .await
        .unwrap();
    let ids: HashSet<Uuid> = all.iter().map(|j| j.id).collect();
    assert_eq!(ids.len(), 15);
    assert!(
        all.iter()
            .all(|j| j.state == JobState::Completed && j.attempt == 1),
        "each ran once"
    );
}

/// Never finishes on its own.
struct Stuck;

#[async_trait]
impl Handler for Stuck {
    async fn run(&self, _job: &Job) -> Outcome {
        std::future::pending::<()>().await;
        Outcome::Completed
    }
}

#[tokio::test]
async fn shutdown_hands_an_unfinished_job_back_without_using_an_attempt() {
    let rig = rig().await;
    let job = rig
        .queue
        .enqueue(&NewJob::new("reporting", "slow", json!({})))
        .await
        .unwrap();
    let mut config = WorkerConfig::new(vec![QueueConfig {
        name: "reporting".into(),
        concurrency: 2,
        rate_limit: None,
    }]);
    config.poll_interval = Duration::from_millis(10);
    // The handler never finishes, so the deadline always passes: its length
    // changes nothing but how long the test waits.
    config.shutdown_deadline = Duration::from_millis(100);
    let mut w = Worker::new(rig.queue.clone(), config);
    w.register("slow", Arc::new(Stuck));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::new(w).run(stopped));
    let running =
        wait_until(async || rig.queue.get(job.id).await.unwrap().state == JobState::Running).await;
    assert!(running, "the worker claimed the job");
    stop.send(true).unwrap();
    run.await.unwrap();
    let back = rig.queue.get(job.id).await.unwrap();
    assert_eq!(back.state, JobState::Available, "handed back");
    assert_eq!(back.attempt, 0, "no attempt used");
    let counts = rig.queue.counts().await.unwrap();
    let available = counts
        .iter()
        .find(|c| c.queue == "reporting" && c.state == JobState::Available)
        .unwrap();
    assert_eq!(available.count, 1);
    assert!(available.oldest_available_seconds.is_some_and(|s| s >= 0.0));
}

#[tokio::test]
async fn an_organization_sees_and_steers_only_its_own_jobs() {
    use rwa_domain::OrgId;
    use rwa_domain::jobs::JobAdmin;
    use rwa_domain::page::PageRequest;

    let rig = rig().await;
    let (a, b) = (OrgId::new(), OrgId::new());
    let mine = rig
        .queue
        .enqueue(&NewJob::new("token-deployment", "deploy", json!({})).for_org(a.as_uuid()))
        .await
        .unwrap();
    rig.queue
        .enqueue(&NewJob::new("token-deployment", "platform", json!({})))
        .await
        .unwrap();
    let page = PageRequest::parse(Some(10), None).unwrap();
    let listed = JobAdmin::list(&rig.queue, a, None, None, page)
        .await
        .unwrap();
    assert_eq!(
        listed.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![mine.id]
    );
    assert!(
        JobAdmin::list(&rig.queue, b, None, None, page)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let filtered = JobAdmin::list(&rig.queue, a, Some("settlement"), None, page)
        .await
        .unwrap();
    assert!(filtered.items.is_empty(), "queue filter applies");
    assert!(matches!(
        JobAdmin::cancel(&rig.queue, b, mine.id).await,
        Err(rwa_domain::RepoError::NotFound)
    ));
    assert!(matches!(
        JobAdmin::retry(&rig.queue, b, mine.id).await,
        Err(rwa_domain::RepoError::NotFound)
    ));
    let cancelled = JobAdmin::cancel(&rig.queue, a, mine.id).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert!(matches!(
        JobAdmin::cancel(&rig.queue, a, mine.id).await,
        Err(rwa_domain::RepoError::Conflict(_))
    ));
    assert_eq!(
        JobAdmin::retry(&rig.queue, a, mine.id).await.unwrap().state,
        JobState::Available
    );
}

/// Completes at once.
struct Quick;

#[async_trait]
impl Handler for Quick {
    async fn run(&self, _job: &Job) -> Outcome {
        Outcome::Completed
    }
}

#[tokio::test]
async fn a_queue_rate_limit_is_reached_and_never_exceeded() {
    use rwa_jobs::rate::RateLimit;

    let rig = rig().await;
    let jobs: Vec<NewJob> = (0..10)
        .map(|i| NewJob::new("notification", "quick", json!({ "i": i })))
        .collect();
    rig.queue.enqueue_many(&jobs).await.unwrap();
    let limit = RateLimit {
        jobs: 4,
        per: Duration::from_secs(1),
    };
    let mut config = WorkerConfig::new(vec![QueueConfig {
        name: "notification".into(),
        concurrency: 10,
        rate_limit: Some(limit),
    }]);
    config.poll_interval = Duration::from_millis(20);
    let mut w = Worker::new(rig.queue.clone(), config);
    w.register("quick", Arc::new(Quick));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::new(w).run(stopped));
    let done = wait_until(async || {
        let finished = rig
            .queue
            .list(
                None,
                Some("notification"),
                Some(JobState::Completed),
                None,
                100,
            )
            .await
            .unwrap();
        finished.len() == 10
    })
    .await;
    stop.send(true).unwrap();
    run.await.unwrap();
    assert!(done, "every job ran");

    // The windows' accounting: never over the limit, the limit reached, and
    // every start accounted for (unused grants were given back).
    let grants: Vec<i64> = match rig.queue.db() {
        Db::Sqlite { reader, .. } => sqlx::query_scalar(
            "SELECT CAST(used AS BIGINT) FROM job_rate_windows ORDER BY window_start",
        )
        .fetch_all(reader)
        .await
        .unwrap(),
        Db::Postgres(pool) => {
            sqlx::query_scalar("SELECT used::bigint FROM job_rate_windows ORDER BY window_start")
                .fetch_all(pool)
                .await
                .unwrap()
        }
    };
    assert!(grants.iter().all(|&u| u <= 4), "{grants:?}");
    assert_eq!(
        grants.iter().max(),
        Some(&4),
        "the limit is reached: {grants:?}"
    );
    assert_eq!(grants.iter().sum::<i64>(), 10, "{grants:?}");
    assert!(
        grants.iter().filter(|&&u| u > 0).count() >= 3,
        "10 starts at 4 per second need 3 windows"
    );
}

#[tokio::test]
async fn a_batch_enqueues_in_order_and_dedupes_unique_keys_within_itself() {
    let rig = rig().await;
    let earlier = rig
        .queue
        .enqueue(&NewJob::new("q", "k", json!({ "n": 0 })).unique("held"))
        .await
        .unwrap();
    let batch = [
        NewJob::new("q", "k", json!({ "n": 1 })).unique("fresh"),
        NewJob::new("other", "k", json!({ "n": 2 })),
        NewJob::new("q", "k", json!({ "n": 3 })).unique("fresh"),
        NewJob::new("q", "k", json!({ "n": 4 })).unique("held"),
    ];
    let jobs = rig.queue.enqueue_many(&batch).await.unwrap();
    assert_eq!(jobs.len(), 4, "one answer per job, in order");
    assert_eq!(jobs[0].args["n"], 1);
    assert_eq!(jobs[1].args["n"], 2);
    assert_eq!(jobs[1].queue, "other");
    assert_eq!(
        jobs[2].id, jobs[0].id,
        "the same key twice in one batch is one job"
    );
    assert_eq!(jobs[3].id, earlier.id, "an active key answers with its job");
    let stored = rig.queue.list(None, None, None, None, 100).await.unwrap();
    assert_eq!(stored.len(), 3);
}

#[tokio::test]
async fn a_queue_at_concurrency_zero_is_left_to_other_processes() {
    let rig = rig().await;
    let left = rig
        .queue
        .enqueue(&NewJob::new("reporting", "quick", json!({})))
        .await
        .unwrap();
    let served = rig
        .queue
        .enqueue(&NewJob::new("notification", "quick", json!({})))
        .await
        .unwrap();
    let queues = [("reporting", 0), ("notification", 1)]
        .map(|(name, concurrency)| QueueConfig {
            name: name.into(),
            concurrency,
            rate_limit: None,
        })
        .to_vec();
    let mut config = WorkerConfig::new(queues);
    config.poll_interval = Duration::from_millis(10);
    let mut w = Worker::new(rig.queue.clone(), config);
    w.register("quick", Arc::new(Quick));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::new(w).run(stopped));
    let done =
        wait_until(async || rig.queue.get(served.id).await.unwrap().state == JobState::Completed)
            .await;
    stop.send(true).unwrap();
    run.await.unwrap();
    assert!(done, "the served queue ran");
    let waiting = rig.queue.get(left.id).await.unwrap();
    assert_eq!(waiting.state, JobState::Available, "never claimed here");
    assert_eq!(waiting.attempt, 0);
}
