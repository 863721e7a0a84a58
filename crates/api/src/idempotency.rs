//! `Idempotency-Key` handling shared by every POST that takes one: the
//! header, the claim before the work, the stored response replayed to a
//! retry, and the claim released when the work fails without changing
//! anything (see `rwa_domain::idempotency`).

use std::future::Future;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rwa_domain::OrgId;
use rwa_domain::idempotency::{Claim, HEADER, IdempotencyKey, fingerprint};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::ApiState;

/// Set on a response that replays a stored one.
pub(crate) const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a claim outlives the request timeout before a vanished holder's
/// claim may be taken over.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The request's `Idempotency-Key` (required: a 422 naming the header
/// when absent or malformed).
pub(crate) struct IdempotencyHeader(pub(crate) IdempotencyKey);

impl FromRequestParts<ApiState> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &ApiState) -> Result<Self, ApiError> {
        let raw = parts
            .headers
            .get(HEADER)
            .ok_or_else(|| {
                ApiError::field(
                    HEADER,
                    "required: a key of your choosing (a UUID), the same for every retry of this request",
                )
            })?
            .to_str()
            .map_err(|_| ApiError::field(HEADER, "must be visible ASCII"))?;
        Ok(Self(IdempotencyKey::parse(raw)?))
    }
}

/// A JSON answer with `status`.
pub(crate) fn json_response(status: u16, body: String, replayed: bool) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if replayed {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    response
}

/// Runs `work` under `key` for the request `method path body`: a repeat
/// of a completed request gets its stored response, a different request
/// under the same key 422, one racing a request in flight 409. `work`
/// receives the claim to complete in its own transaction; if it fails, the
/// claim is released so a corrected retry may proceed.
pub(crate) async fn run<B, F, Fut>(
    state: &ApiState,
    org: OrgId,
    key: &IdempotencyKey,
    method: &str,
    path: &str,
    body: &B,
    work: F,
) -> ApiResult<Response>
where
    B: Serialize,
    F: FnOnce(Uuid) -> Fut,
    Fut: Future<Output = ApiResult<Response>>,
{
    let canonical = serde_json::to_string(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    let fp = fingerprint(method, path, &canonical);
    let lease = state.settings.request_timeout + LEASE_MARGIN;
    let claim = match state.idempotency.claim(org, key, &fp, lease).await? {
        Claim::Granted(claim) => claim,
        Claim::Replay(stored) => return Ok(json_response(stored.status, stored.body, true)),
        Claim::Mismatch => return Err(ApiError::IdempotencyMismatch),
        Claim::InProgress { retry_after_secs } => {
            return Err(ApiError::IdempotencyInProgress(retry_after_secs));
        }
    };
    match work(claim).await {
        Ok(response) => Ok(response),
        Err(e) => {
            if let Err(release) = state.idempotency.release(org, key, claim).await {
                // The claim lapses with its lease anyway.
                tracing::warn!(error = %release, "could not release an idempotency claim");
            }
            Err(e)
        }
    }
}

/// The `Idempotency-Key` header.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct IdempotencyParam {
    /// Required: a key of your choosing (a UUID), the same for every retry
    /// of one request; kept 24 hours per organization. A retry gets the
    /// first answer back (`Idempotent-Replayed: true`).
    #[param(
        rename = "Idempotency-Key",
        pattern = r"^[\x21-\x7e]{1,255}$",
        min_length = 1,
        max_length = 255
    )]
    key: String,
}
