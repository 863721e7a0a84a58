//! Job queue throughput and latency, for `bench/jobs.sh` (results in
//! docs/benchmarks.md).
//!
//! `queue_bench <database-url> drain <jobs> <concurrency>`: enqueue `jobs`
//! no-op jobs in batches of 1,000, then drain them with one worker process.
//! `queue_bench <database-url> steady <seconds> <rate> <concurrency>`: enqueue
//! `rate` jobs per second in batches of 100 while the worker runs; reports
//! throughput and enqueue-to-start latency percentiles (database clock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rwa_domain::jobs::{Job, JobState};
use rwa_jobs::worker::{Handler, QueueConfig, Worker, WorkerConfig};
use rwa_jobs::{NewJob, Outcome, Queue};
use rwa_store::{Store, StoreOptions};
use serde_json::json;

struct Noop;

#[async_trait]
impl Handler for Noop {
    async fn run(&self, _job: &Job) -> Outcome {
        Outcome::Completed
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn completed(queue: &Queue) -> Vec<Job> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = queue
            .list(
                None,
                Some("bench"),
                Some(JobState::Completed),
                after,
                10_000,
            )
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        out.extend(page);
    }
    out
}

/// Returns once `n` bench jobs are completed.
async fn wait_completed(queue: &Queue, n: u64) {
    loop {
        let done: i64 = queue
            .counts()
            .await
            .unwrap()
            .iter()
            .filter(|c| c.queue == "bench" && c.state == JobState::Completed)
            .map(|c| c.count)
            .sum();
        if u64::try_from(done).unwrap_or(0) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn latency_report(jobs: &[Job]) {
    let mut waits: Vec<f64> = jobs
        .iter()
        .filter_map(|j| Some((j.attempted_at? - j.created_at).num_microseconds()? as f64 / 1000.0))
        .collect();
    waits.sort_by(f64::total_cmp);
    println!(
        "enqueue_to_start_ms p50={:.1} p99={:.1} max={:.1}",
        percentile(&waits, 0.5),
        percentile(&waits, 0.99),
        waits.last().copied().unwrap_or(f64::NAN)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "queue_bench <url> drain <jobs> <concurrency> | steady <seconds> <rate> <concurrency>";
    let url = args.get(1).expect(usage);
    let mut opts = StoreOptions::new(url);
    opts.max_connections = 32;
    let store = Store::connect(&opts).await.expect("connect");
    store.migrate().await.expect("migrate");
    let queue = Queue::new(store.job_db());
    let number = |i: usize| -> u64 { args.get(i).expect(usage).parse().expect(usage) };

    let concurrency = match args.get(2).map(String::as_str) {
        Some("drain") => number(4),
        Some("steady") => number(5),
        _ => panic!("{usage}"),
    } as usize;
    let mut config = WorkerConfig::new(vec![QueueConfig {
        name: "bench".into(),
        concurrency,
        rate_limit: None,
    }]);
    config.poll_interval = Duration::from_millis(5);
    let mut worker = Worker::new(queue.clone(), config);
    worker.register("noop", Arc::new(Noop));
    let worker = Arc::new(worker);
    let (stop, stopped) = tokio::sync::watch::channel(false);

    match args[2].as_str() {
        "drain" => {
            let total = number(3) as usize;
            let started = Instant::now();
            for chunk in 0..total.div_ceil(1_000) {
                let n = 1_000.min(total - chunk * 1_000);
                let jobs: Vec<NewJob> = (0..n)
                    .map(|i| NewJob::new("bench", "noop", json!({ "i": i })))
                    .collect();
                queue.enqueue_many(&jobs).await.unwrap();
            }
            let enqueue = started.elapsed();
            println!(
                "enqueued {total} in {:.2}s: {:.0} jobs/s",
                enqueue.as_secs_f64(),
                total as f64 / enqueue.as_secs_f64()
            );
            let started = Instant::now();
            let run = tokio::spawn(Arc::clone(&worker).run(stopped));
            wait_completed(&queue, total as u64).await;
            let drain = started.elapsed();
            stop.send(true).unwrap();
            run.await.unwrap();
            println!(
                "drained {total} in {:.2}s: {:.0} jobs/s",
                drain.as_secs_f64(),
                total as f64 / drain.as_secs_f64()
            );
        }
        "steady" => {
            let seconds = number(3);
            let rate = number(4);
            let run = tokio::spawn(Arc::clone(&worker).run(stopped));
            let started = Instant::now();
            let batches_per_second = (rate / 100).max(1);
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(1.0 / batches_per_second as f64));
            let mut sent = 0u64;
            while started.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                let jobs: Vec<NewJob> = (0..100)
                    .map(|i| NewJob::new("bench", "noop", json!({ "i": i })))
                    .collect();
                queue.enqueue_many(&jobs).await.unwrap();
                sent += 100;
            }
            wait_completed(&queue, sent).await;
            let elapsed = started.elapsed();
            stop.send(true).unwrap();
            run.await.unwrap();
            println!(
                "steady: offered {rate} jobs/s for {seconds}s, processed {sent} in {:.2}s: {:.0} jobs/s",
                elapsed.as_secs_f64(),
                sent as f64 / elapsed.as_secs_f64()
            );
            latency_report(&completed(&queue).await);
        }
        _ => panic!("{usage}"),
    }
    store.close().await;
}
