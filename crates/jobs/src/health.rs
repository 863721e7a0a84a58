//! `checks.queues` of `/health/detailed`: per queue, jobs by state and the age
//! of the oldest available job; also exported as `rwa_jobs_queue_depth` and
//! `rwa_jobs_oldest_available_seconds` gauges.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::json;

use crate::{Queue, QueueCount};

/// The queues as a (non-critical) health dependency.
#[derive(Debug)]
pub struct QueueHealth(pub Queue);

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
        let counts = self.0.counts().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let mut details = serde_json::Map::new();
        let status = match counts {
            Err(e) => {
                details.insert("error".into(), json!(e.to_string()));
                HealthStatus::Unhealthy
            }
            Ok(counts) => {
                export_depth(&counts);
                let mut queues: BTreeMap<String, serde_json::Map<String, serde_json::Value>> =
                    BTreeMap::new();
                for c in counts {
                    let entry = queues.entry(c.queue.clone()).or_default();
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

/// Sets the depth gauges from fresh counts.
pub(crate) fn export_depth(counts: &[QueueCount]) {
    for c in counts {
        metrics::gauge!("rwa_jobs_queue_depth", "queue" => c.queue.clone(), "state" => c.state.as_str())
            .set(c.count as f64);
        if let Some(age) = c.oldest_available_seconds {
            metrics::gauge!("rwa_jobs_oldest_available_seconds", "queue" => c.queue.clone())
                .set(age);
        }
    }
}
