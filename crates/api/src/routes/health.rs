//! Health: liveness (the process answers), readiness (every critical dependency
//! answers: 503 otherwise, and 200 again as soon as it recovers), and a detailed
//! report of every dependency with status and latency.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::future::join_all;
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(detailed))
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
async fn health() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Liveness: the process answers HTTP.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "`{\"status\":\"ok\"}`")))]
async fn live() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Runs one check, bounded by the configured health timeout.
async fn run(check: &Arc<dyn HealthCheck>, state: &ApiState) -> CheckReport {
    let started = Instant::now();
    match tokio::time::timeout(state.settings.health_timeout, check.check()).await {
        Ok(report) => report,
        Err(_) => CheckReport {
            status: HealthStatus::Unhealthy,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details: Map::from_iter([("error".to_owned(), json!("timed out"))]),
        },
    }
}

/// Readiness: 200 when every critical dependency (the database) answers, 503 otherwise.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "ready to serve"),
        (status = 503, description = "a critical dependency is down; `failing` names it"),
    ))]
async fn ready(State(state): State<ApiState>) -> Response {
    let critical: Vec<_> = state.health.iter().filter(|c| c.critical()).collect();
    let reports = join_all(critical.iter().map(|c| run(c, &state))).await;
    let failing: Vec<&str> = critical
        .iter()
        .zip(&reports)
        .filter(|(_, r)| r.status == HealthStatus::Unhealthy)
        .map(|(c, _)| c.name())
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, axum::Json(json!({ "status": "ready" }))).into_response()
    } else {
        let body = json!({ "status": "not_ready", "failing": failing });
        (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
    }
}

/// Every dependency with its status and latency. `status` is `unhealthy` when a
/// critical dependency is down, `degraded` when any other is not healthy.
#[utoipa::path(get, path = "/health/detailed", tag = "health",
    responses(
        (status = 200, description = "`{status: healthy|degraded, checks: {database: {status, latency_ms}, …}}`"),
        (status = 503, description = "same body, `status: unhealthy`"),
    ))]
async fn detailed(State(state): State<ApiState>) -> Response {
    let reports = join_all(state.health.iter().map(|c| run(c, &state))).await;
    let mut overall = HealthStatus::Healthy;
    let mut checks = Map::new();
    for (check, report) in state.health.iter().zip(reports) {
        let counts_as = match (report.status, check.critical()) {
            (HealthStatus::Unhealthy, false) => HealthStatus::Degraded,
            (s, _) => s,
        };
        overall = overall.max(counts_as);
        checks.insert(
            check.name().to_owned(),
            serde_json::to_value(&report).unwrap_or(Value::Null),
        );
    }
    let status = if overall == HealthStatus::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({ "status": overall, "checks": checks });
    (status, axum::Json(body)).into_response()
}
