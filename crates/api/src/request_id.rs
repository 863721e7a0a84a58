//! Request ids: accepted from `x-request-id` when well-formed (so a caller or a
//! proxy can correlate), generated (UUIDv7) otherwise, echoed on every response,
//! and available to any code running for the request through a task-local, so
//! error bodies and log lines carry it without threading it through every call.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request the current task serves, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Accepts ids of 1 to 128 characters from `[A-Za-z0-9._:-]`; anything else
/// could smuggle text into logs, so it is replaced.
fn acceptable(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| s.to_owned())
}

/// Middleware: establishes the request id for everything inside it.
pub(crate) async fn layer(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(acceptable)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).expect("validated or generated ids are valid headers");
    req.headers_mut()
        .insert(X_REQUEST_ID.clone(), value.clone());
    let mut response = REQUEST_ID.scope(id, next.run(req)).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_ids_are_accepted() {
        assert_eq!(
            acceptable(&HeaderValue::from_static("abc-123")).as_deref(),
            Some("abc-123")
        );
        assert_eq!(acceptable(&HeaderValue::from_static("a b")), None);
        assert_eq!(acceptable(&HeaderValue::from_static("")), None);
        let long = "x".repeat(129);
        assert_eq!(acceptable(&HeaderValue::from_str(&long).unwrap()), None);
    }
}
