//! Uniform failures: whatever produced an error response (the router's 405, the
//! body-limit layer's 413, a panic, a timeout), the client gets a problem document.

use std::any::Any;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, PROBLEM_JSON};
use crate::state::ApiState;

/// Replaces error responses produced by the framework or a layer (empty or
/// plain-text bodies) with a problem document.
pub(crate) async fn normalize(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Bodies that handlers chose (a problem, or the JSON of a 503 health report)
    // stay; framework and layer responses (empty or plain text) are replaced.
    let from_a_layer = response.headers().get(CONTENT_TYPE).is_none_or(|v| {
        v.as_bytes() != PROBLEM_JSON.as_bytes() && v.as_bytes().starts_with(b"text/plain")
    });
    if !from_a_layer {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        StatusCode::FORBIDDEN => ApiError::Forbidden,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ApiError::Timeout,
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable,
        s if s.is_client_error() => {
            ApiError::BadRequest(s.canonical_reason().unwrap_or("bad request").to_lowercase())
        }
        s => ApiError::Internal(format!("unexpected {s} response from an inner layer")),
    };
    let mut replaced = error.into_response();
    // Keep headers such as Allow (405) or Retry-After set by the inner layer.
    for (name, value) in response.headers() {
        if name != CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            replaced.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    replaced
}

/// Ends requests that run past the configured timeout with 504. The handler's
/// future is dropped, so it stops at its next await point.
pub(crate) async fn timeout(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(state.settings.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}

/// Turns a handler panic into a 500 problem; the process and other requests carry on.
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    ApiError::Internal(format!("handler panicked: {message}")).into_response()
}
