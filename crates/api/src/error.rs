//! The one HTTP error type. Every failure the API reports is an
//! `application/problem+json` body `{type, title, status, detail, request_id}`
//! (plus `errors: [{field, message}]` for validation). 4xx details say what to
//! fix; 5xx details say nothing internal, and the cause is logged with the
//! request id instead.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rwa_domain::{RepoError, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_id;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One field that failed validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The request field, as sent (`role`, `label`, `limit`).
    pub field: String,
    /// What to fix.
    pub message: String,
}

/// A failed request, rendered as a problem document.
#[derive(Debug)]
pub enum ApiError {
    /// Malformed request (bad JSON, too deeply nested, wrong content type).
    BadRequest(String),
    /// The body was not JSON.
    UnsupportedMediaType,
    /// Fields failed validation.
    Validation(Vec<FieldError>),
    /// No valid credential.
    Unauthorized,
    /// A credential refused for a reason worth telling (an expired access
    /// token, an ended session): the detail says which and what to do.
    UnauthorizedBecause(&'static str),
    /// A signed callback whose `Rwa-Signature` is missing, does not match
    /// its body, or is too old or too new; the detail says which.
    BadSignature(String),
    /// The credential's role may not do this.
    Forbidden,
    /// Refused for a reason other than the role (four-eyes): the detail says which.
    ForbiddenBecause(&'static str),
    /// Too many attempts: retry after this many seconds; the detail says why.
    RateLimited(u64, &'static str),
    /// No such resource in the caller's organization.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the current state.
    Conflict(String),
    /// The `Idempotency-Key` was used for a different request.
    IdempotencyMismatch,
    /// A request with the same `Idempotency-Key` is still being processed;
    /// retry after this many seconds.
    IdempotencyInProgress(u64),
    /// A business rule refuses the request (a mint to an investor who is
    /// not approved, beyond a token limit, ...): the rule and the field.
    Rule {
        /// The rule's name.
        rule: &'static str,
        /// The request field it concerns.
        field: &'static str,
        /// What fails.
        detail: String,
    },
    /// The body is over the configured limit.
    PayloadTooLarge,
    /// A dependency is down; retrying later may succeed.
    Unavailable,
    /// The request took longer than the configured timeout.
    Timeout,
    /// A bug or unexpected failure; the cause is logged, never returned.
    Internal(String),
}

/// The problem document, as documented in the OpenAPI spec.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// `/problems/<name>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened, and for 4xx what to fix.
    pub detail: String,
    /// The request's `x-request-id`, to quote when reporting it.
    pub request_id: String,
    /// Validation failures, one per field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// The rule that refused the request (`/problems/rule-violation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl ApiError {
    /// A single-field validation failure.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) | ApiError::IdempotencyMismatch | ApiError::Rule { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unauthorized
            | ApiError::UnauthorizedBecause(_)
            | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::ForbiddenBecause(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) | ApiError::IdempotencyInProgress(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn name_title_detail(&self) -> (&'static str, &'static str, String) {
        match self {
            ApiError::BadRequest(d) => ("bad-request", "Bad request", d.clone()),
            ApiError::UnsupportedMediaType => (
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as JSON with Content-Type: application/json".into(),
            ),
            ApiError::Validation(errors) => (
                "validation",
                "Validation failed",
                format!(
                    "{} field(s) failed validation: {}",
                    errors.len(),
                    errors
                        .iter()
                        .map(|e| e.field.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            ApiError::Unauthorized => (
                "unauthorized",
                "Unauthorized",
                "send a valid API key (rwa_…) or access token as Authorization: Bearer …".into(),
            ),
            ApiError::UnauthorizedBecause(why) => ("unauthorized", "Unauthorized", (*why).into()),
            ApiError::BadSignature(d) => ("bad-signature", "Bad signature", d.clone()),
            ApiError::Forbidden => (
                "forbidden",
                "Forbidden",
                "this credential's role may not perform this action".into(),
            ),
            ApiError::ForbiddenBecause(why) => ("forbidden", "Forbidden", (*why).into()),
            ApiError::RateLimited(after, why) => (
                "rate-limited",
                "Too many requests",
                format!("{why}; retry in {after} s"),
            ),
            ApiError::NotFound => ("not-found", "Not found", "no such resource".into()),
            ApiError::MethodNotAllowed => (
                "method-not-allowed",
                "Method not allowed",
                "this path does not accept that method".into(),
            ),
            ApiError::Conflict(d) => ("conflict", "Conflict", d.clone()),
            ApiError::IdempotencyMismatch => (
                "idempotency-mismatch",
                "Idempotency key reused",
                "this Idempotency-Key was used for a different request (another path or body); use a new key".into(),
            ),
            ApiError::IdempotencyInProgress(after) => (
                "idempotency-in-progress",
                "Request in progress",
                format!("a request with this Idempotency-Key is still being processed; retry in {after} s"),
            ),
            ApiError::Rule { rule, detail, .. } => (
                "rule-violation",
                "Refused by a rule",
                format!("rule {rule} refuses it: {detail}"),
            ),
            ApiError::PayloadTooLarge => (
                "payload-too-large",
                "Payload too large",
                "the request body is over the configured limit".into(),
            ),
            ApiError::Unavailable => (
                "unavailable",
                "Service unavailable",
                "a dependency is unavailable; retry later".into(),
            ),
            ApiError::Timeout => (
                "timeout",
                "Timeout",
                "the request did not complete in time; it may or may not have taken effect".into(),
            ),
            ApiError::Internal(_) => (
                "internal",
                "Internal error",
                "an internal error occurred; quote the request id when reporting it".into(),
            ),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (name, title, detail) = self.name_title_detail();
        Problem {
            kind: format!("/problems/{name}"),
            title: title.to_owned(),
            status: self.status().as_u16(),
            detail,
            request_id: request_id::current().unwrap_or_default(),
            errors: match self {
                ApiError::Validation(e) => Some(e.clone()),
                ApiError::Rule { field, detail, .. } => Some(vec![FieldError {
                    field: (*field).to_owned(),
                    message: detail.clone(),
                }]),
                _ => None,
            },
            rule: match self {
                ApiError::Rule { rule, .. } => Some((*rule).to_owned()),
                _ => None,
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        match &self {
            ApiError::Internal(cause) => {
                tracing::error!(request_id = %problem.request_id, cause = %cause, "internal error");
            }
            ApiError::Unavailable => {
                tracing::warn!(request_id = %problem.request_id, "dependency unavailable");
            }
            _ => {}
        }
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let ApiError::IdempotencyInProgress(after) | ApiError::RateLimited(after, _) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after));
        }
        if matches!(
            self,
            ApiError::Unauthorized | ApiError::UnauthorizedBecause(_)
        ) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ValidationError> for FieldError {
    fn from(e: ValidationError) -> Self {
        FieldError {
            field: e.field,
            message: e.message,
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Validation(vec![e.into()])
    }
}

impl From<RepoError> for ApiError {
    fn from(e: RepoError) -> Self {
        match e {
            RepoError::NotFound => ApiError::NotFound,
            RepoError::Conflict(d) => ApiError::Conflict(d),
            RepoError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "storage unavailable");
                ApiError::Unavailable
            }
            RepoError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;
