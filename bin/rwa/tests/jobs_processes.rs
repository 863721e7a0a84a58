//! The job queue across real OS processes on PostgreSQL (split roles need it,
//! so these tests use PostgreSQL whatever `RWA_TEST_DATABASE` says): two
//! `rwa serve --role worker` processes share 10,000 jobs with no job run twice,
//! and a job whose worker is SIGKILLed mid-run is reclaimed after its lease and
//! completed by another process.

mod common;

use std::time::Duration;

use common::{Server, eventually};
use rwa_jobs::{JobState, NewJob, Queue};
use rwa_store::{Store, StoreOptions};
use rwa_testkit::{TestBackend, TestDatabase};
use serde_json::json;
use sqlx::PgPool;

async fn database() -> (TestDatabase, Store, PgPool) {
    let db = TestDatabase::create_on(TestBackend::Postgres).await;
    let store = Store::connect(&StoreOptions::new(&db.url)).await.unwrap();
    store.migrate().await.unwrap();
    let pool = PgPool::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE test_job_runs (job_id TEXT NOT NULL, worker TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    (db, store, pool)
}

/// A job that sleeps ten minutes on its first attempt: still running whenever
/// the test interrupts its worker.
async fn enqueue_long_sleep(queue: &Queue) -> rwa_jobs::Job {
    queue
        .enqueue(&NewJob::new(
            "settlement",
            "test.sleep",
            json!({ "ms": 600_000 }),
        ))
        .await
        .unwrap()
}

fn worker(url: &str, env: &[(&str, &str)]) -> Server {
    Server::start_with_args(url, env, &["--role", "worker"], None)
}

#[tokio::test]
async fn two_worker_processes_run_ten_thousand_jobs_exactly_once() {
    let (db, store, pool) = database().await;
    let queue = Queue::new(store.job_db());
    for batch in 0..10 {
        let jobs: Vec<NewJob> = (0..1_000)
            .map(|i| {
                NewJob::new(
                    "notification",
                    "test.record",
                    json!({ "n": batch * 1_000 + i }),
                )
            })
            .collect();
        queue.enqueue_many(&jobs).await.unwrap();
    }
    let env = [("RWA_DB_MAX_CONNECTIONS", "8")];
    let a = worker(&db.url, &env);
    let b = worker(&db.url, &env);

    let done = eventually(Duration::from_secs(120), async || {
        let completed: i64 =
            // The platform's own periodic jobs (the expiry sweep) run too.
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM jobs WHERE state = 'completed' AND kind = 'test.record'",
            )
                .fetch_one(&pool)
                .await
                .unwrap();
        completed == 10_000
    })
    .await;
    assert!(done, "every job completed");
    let (runs, distinct, workers): (i64, i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT job_id), COUNT(DISTINCT worker) FROM test_job_runs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(distinct, 10_000, "every job ran");
    assert_eq!(runs, 10_000, "no job ran twice");
    assert_eq!(workers, 2, "both processes took part");
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM test_job_runs r LEFT JOIN jobs j ON j.id::text = r.job_id WHERE j.id IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orphans, 0);
    drop((a, b));
    store.close().await;
}

#[tokio::test]
async fn a_job_whose_worker_is_killed_is_reclaimed_after_its_lease_by_another_process() {
    let (db, store, pool) = database().await;
    let queue = Queue::new(store.job_db());
    let env = [
        ("RWA_JOBS_LEASE_MS", "1000"),
        ("RWA_JOBS_MAINTENANCE_INTERVAL_MS", "200"),
    ];
    let mut first = worker(&db.url, &env);
    let job = enqueue_long_sleep(&queue).await;
    let mut holder = None;
    let running = eventually(Duration::from_secs(20), async || {
        let j = queue.get(job.id).await.unwrap();
        holder = j.attempted_by.clone();
        j.state == JobState::Running
    })
    .await;
    assert!(running, "the first worker claimed the job");
    let killed_worker = holder.expect("claimed by someone");

    first.child.kill().expect("SIGKILL the worker mid-job");
    first.child.wait().unwrap();
    let _second = worker(&db.url, &env);

    let completed = eventually(Duration::from_secs(30), async || {
        queue.get(job.id).await.unwrap().state == JobState::Completed
    })
    .await;
    assert!(
        completed,
        "reclaimed and completed: {:?}",
        queue.get(job.id).await.unwrap()
    );
    let done = queue.get(job.id).await.unwrap();
    assert_eq!(done.attempt, 2, "the killed attempt counted once");
    assert_ne!(
        done.attempted_by.as_deref(),
        Some(killed_worker.as_str()),
        "another process finished it"
    );
    assert!(
        done.errors[0].message.contains("lease expired"),
        "{:?}",
        done.errors
    );
    let runs: Vec<(String,)> = sqlx::query_as("SELECT worker FROM test_job_runs WHERE job_id = $1")
        .bind(job.id.to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        runs.len(),
        1,
        "the killed worker never recorded; the second did once"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_a_running_job_back_without_using_an_attempt() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    let (db, store, _pool) = database().await;
    let queue = Queue::new(store.job_db());
    // Jobs get the same shutdown deadline as requests; this one sleeps far
    // past it.
    let mut server = worker(&db.url, &[("RWA_HTTP_SHUTDOWN_TIMEOUT_MS", "500")]);
    let job = enqueue_long_sleep(&queue).await;
    let running = eventually(Duration::from_secs(30), async || {
        queue.get(job.id).await.unwrap().state == JobState::Running
    })
    .await;
    assert!(running, "the worker claimed the job");

    kill(Pid::from_raw(server.child.id() as i32), Signal::SIGTERM).unwrap();
    let exit = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(60)));
    assert_eq!(exit.code(), Some(0), "a clean exit");
    let back = queue.get(job.id).await.unwrap();
    assert_eq!(back.state, JobState::Available, "handed back: {back:?}");
    assert_eq!(back.attempt, 0, "the interrupted attempt is not counted");
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert!(
        server
            .log_lines()
            .iter()
            .any(|l| l.contains("handed back at shutdown")),
        "{}",
        server.log_lines().join("\n")
    );
    store.close().await;
}
