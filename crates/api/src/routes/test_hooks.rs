//! Routes that misbehave on purpose, compiled only with the `test-hooks` feature
//! (test builds), to exercise panic recovery, timeouts and graceful shutdown.
//! They are not part of the public API nor of its OpenAPI description.

use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use serde::Deserialize;

use crate::state::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route("/test/panic", get(panic))
        .route("/test/slow", get(slow))
}

async fn panic() -> &'static str {
    panic!("test hook panic")
}

#[derive(Deserialize)]
struct Slow {
    ms: u64,
}

async fn slow(Query(q): Query<Slow>) -> String {
    // Tests wait for this line instead of sleeping before they signal.
    tracing::info!(ms = q.ms, "test hook: slow request started");
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    format!("slept {} ms", q.ms)
}
