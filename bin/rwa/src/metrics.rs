//! The Prometheus recorder and the `/metrics` renderer. Pool and process gauges
//! are refreshed at scrape time, so they are exact when read and cost nothing
//! in between.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rwa_api::MetricsRenderer;
use rwa_domain::ports::DatabaseProbe;

/// Latency buckets (seconds) for every `*_duration_seconds` histogram.
const DURATION_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder once; later calls return the same handle.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    DURATION_BUCKETS,
                )
                .expect("non-empty buckets")
                .install_recorder()
                .expect("the metrics recorder is installed once per process");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(
        "rwa_http_requests_total",
        "HTTP requests by method, route template and status"
    );
    metrics::describe_histogram!(
        "rwa_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    metrics::describe_gauge!("rwa_http_requests_in_flight", "HTTP requests being served");
    metrics::describe_gauge!(
        "rwa_db_pool_connections",
        "Database pool connections by pool and state (open, idle, max)"
    );
}

/// The renderer handed to the API.
pub fn renderer(handle: PrometheusHandle, db: Arc<dyn DatabaseProbe>) -> MetricsRenderer {
    let process = metrics_process::Collector::default();
    process.describe();
    Arc::new(move || {
        process.collect();
        for pool in db.pool_stats() {
            let gauge = |state: &'static str, v: u32| {
                metrics::gauge!("rwa_db_pool_connections", "pool" => pool.name, "state" => state)
                    .set(f64::from(v));
            };
            gauge("open", pool.size);
            gauge("idle", pool.idle);
            gauge("max", pool.max);
        }
        handle.render()
    })
}
