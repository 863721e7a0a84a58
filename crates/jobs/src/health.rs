//! `checks.queues` of `/health/detailed`: per queue, jobs by state and the age
//! of the oldest available job; also exported as `rwa_jobs_queue_depth` and
//! `rwa_jobs_oldest_available_seconds` gauges. Every configured queue is listed
//! with every state, at zero when empty: an operator looking for a queue that
//! has never had a job sees it idle rather than missing.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::json;

use crate::{JobState, Queue, QueueCount};

/// The queues as a (non-critical) health dependency.
#[derive(Debug)]
pub struct QueueHealth {
    queue: Queue,
    configured: Vec<String>,
}

impl QueueHealth {
    /// Reports on `queue`, always listing the `configured` queue names.
    pub fn new(queue: Queue, configured: impl IntoIterator<Item = String>) -> Self {
        Self {
            queue,
            configured: configured.into_iter().collect(),
        }
    }
}

#[async_trait]
impl HealthCheck for QueueHealth {
    fn name(&self) -> &'static str {
        "queues"
    }

    fn critical(&self) -> bool {
        false
    }

    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let counts = self.queue.counts().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut details = serde_json::Map::new();
        let status = match counts {
            Err(e) => {
                details.insert("error".into(), json!(e.to_string()));
                HealthStatus::Unhealthy
            }
            Ok(counts) => {
                export_depth(&counts);
                let zero = || {
                    JobState::ALL
                        .iter()
                        .map(|s| (s.as_str().to_owned(), json!(0)))
                        .collect::<serde_json::Map<_, _>>()
                };
                let mut queues: BTreeMap<String, serde_json::Map<String, serde_json::Value>> = self
                    .configured
                    .iter()
                    .map(|q| (q.clone(), zero()))
                    .collect();
                for c in counts {
                    let entry = queues.entry(c.queue.clone()).or_insert_with(zero);
                    entry.insert(c.state.as_str().into(), json!(c.count));
                    if let Some(age) = c.oldest_available_seconds {
                        entry.insert("oldest_available_seconds".into(), json!(age));
                    }
                }
                details.insert("queues".into(), json!(queues));
                HealthStatus::Healthy
            }
        };
        CheckReport {
            status,
            latency_ms,
            details,
        }
    }
}

/// Queues whose gauges this process has set: every export sets all of them,
/// so a state that emptied reads 0 instead of its last non-zero count.
static EXPORTED: std::sync::Mutex<std::collections::BTreeSet<String>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// Sets the depth gauges from fresh counts (which list non-empty states only).
pub(crate) fn export_depth(counts: &[QueueCount]) {
    let mut exported = EXPORTED.lock().unwrap_or_else(|e| e.into_inner());
    exported.extend(counts.iter().map(|c| c.queue.clone()));
    for queue in exported.iter() {
        for state in JobState::ALL {
            let count = counts
                .iter()
                .find(|c| &c.queue == queue && c.state == state)
                .map_or(0, |c| c.count);
            metrics::gauge!("rwa_jobs_queue_depth", "queue" => queue.clone(), "state" => state.as_str())
                .set(count as f64);
        }
        let age = counts
            .iter()
            .filter(|c| &c.queue == queue)
            .find_map(|c| c.oldest_available_seconds)
            .unwrap_or(0.0);
        metrics::gauge!("rwa_jobs_oldest_available_seconds", "queue" => queue.clone()).set(age);
    }
}
