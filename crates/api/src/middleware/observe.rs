//! One log line and one set of metrics per request, labelled by route template
//! (`/v1/api-keys/{id}`, never the raw path, so label cardinality stays bounded).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

use crate::auth::OrgSlot;
use crate::request_id;

/// Label for requests that matched no route.
const UNMATCHED: &str = "unmatched";

struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!("rwa_http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    // A request whose client went away is dropped mid-flight: decrement anyway.
    fn drop(&mut self) {
        metrics::gauge!("rwa_http_requests_in_flight").decrement(1.0);
    }
}

pub(crate) async fn layer(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str)
        .to_owned();
    let org = OrgSlot::default();
    req.extensions_mut().insert(org.clone());

    let response = {
        let _in_flight = InFlight::enter();
        next.run(req).await
    };

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    metrics::counter!(
        "rwa_http_requests_total",
        "method" => method.clone(),
        "route" => route.clone(),
        "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!(
        "rwa_http_request_duration_seconds",
        "method" => method.clone(),
        "route" => route.clone()
    )
    .record(elapsed.as_secs_f64());

    let org_id = org.0.get().map(ToString::to_string).unwrap_or_default();
    let request_id = request_id::current().unwrap_or_default();
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %route, status, latency_ms, %request_id, %org_id, "request");
    } else {
        tracing::info!(%method, %route, status, latency_ms, %request_id, %org_id, "request");
    }
    response
}
