//! The rwa HTTP API.
//!
//! This crate owns everything HTTP: the axum routers (one module per resource
//! under `routes/`), authentication and role checks ([`auth`]), the one error
//! type rendered as `application/problem+json` ([`error`]), our own JSON and
//! query extractors ([`extract`]), the cross-cutting middleware (request ids,
//! logs and metrics per route template, the client's address behind trusted
//! proxies, rate limits ([`rate_limit`]), security headers, body and depth limits,
//! timeouts, panic recovery, CORS, compression), health endpoints, and the
//! OpenAPI 3.1 description served at `/openapi.json` with a browsable page at
//! `/docs` whose assets are compiled into the binary.
//!
//! It depends on the domain's ports only; `bin/rwa` hands it concrete adapters
//! through [`ApiState`].

pub mod access_token;
pub mod auth;
pub mod error;
pub mod extract;
mod idempotency;
mod middleware;
mod openapi;
pub mod rate_limit;
pub mod request_id;
mod routes;
mod schema;
mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::{ApiError, ApiResult};
pub use openapi::SECURITY_SCHEME;
pub use state::{ApiPorts, ApiSettings, ApiState, MetricsRenderer};

use crate::error::ApiError as Error;
use crate::middleware::{client, observe, problems, security};

/// The whole HTTP surface with its middleware, and the OpenAPI description of it.
pub fn router(state: ApiState) -> (Router, utoipa::openapi::OpenApi) {
    let (routes, mut spec) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::health::router())
        .merge(routes::metrics::router())
        .merge(routes::org::router())
        .merge(routes::api_keys::router())
        .merge(routes::users::router())
        .merge(routes::sessions::router())
        .merge(routes::audit::router())
        .merge(routes::jobs::router())
        .merge(routes::tokens::router())
        .merge(routes::rule_sets::router())
        .merge(routes::investors::router())
        .merge(routes::operations::router())
        .merge(routes::transfers::router())
        .merge(routes::callbacks::router())
        .merge(routes::events::router())
        .merge(routes::holdings::router())
        .merge(routes::watched_contracts::router())
        .merge(routes::webhooks::router())
        .merge(routes::notifications::router())
        .split_for_parts();
    openapi::add_problem_responses(&mut spec);

    let routes = routes.merge(SwaggerUi::new("/docs").url("/openapi.json", spec.clone()));
    // Test builds carry the misbehaving routes; a production server never
    // serves them, whatever it was built with.
    #[cfg(feature = "test-hooks")]
    let routes = if state.settings.production {
        routes
    } else {
        routes.merge(routes::test_hooks::router())
    };

    let settings = &state.settings;
    let router = routes
        .fallback(|| async { Error::NotFound })
        .layer(DefaultBodyLimit::max(settings.body_limit_bytes))
        .layer(RequestBodyLimitLayer::new(settings.body_limit_bytes))
        .layer(from_fn_with_state(state.clone(), problems::timeout))
        .layer(CatchPanicLayer::custom(problems::panic_response))
        .layer(from_fn_with_state(
            state.clone(),
            middleware::rate_limit::layer,
        ))
        .layer(CompressionLayer::new())
        .layer(cors(&settings.cors_origins))
        .layer(from_fn(problems::normalize))
        .layer(from_fn_with_state(state.clone(), security::layer))
        .layer(from_fn_with_state(state.clone(), client::layer))
        .layer(from_fn(observe::layer))
        .layer(from_fn(request_id::layer))
        .with_state(state);
    (router, spec)
}

/// CORS for the configured origins only (validated at start-up); none configured
/// means browsers get no cross-origin access.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::DELETE,
            Method::PUT,
            Method::PATCH,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            request_id::X_REQUEST_ID.clone(),
        ])
        .expose_headers([
            request_id::X_REQUEST_ID.clone(),
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// Whether this build carries the test-only routes and behaviours (`test-hooks`).
pub const TEST_HOOKS: bool = cfg!(feature = "test-hooks");
