//! Security headers on every response. API responses forbid everything
//! (`default-src 'none'`); the documentation page may load its own assets only.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::ApiState;

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'";
const HSTS: &str = "max-age=63072000; includeSubDomains";

pub(crate) async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let is_page = req.uri().path().starts_with("/docs");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if is_page { PAGE_CSP } else { API_CSP }),
    );
    if !is_page {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.settings.production {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    h.remove(header::SERVER);
    response
}
