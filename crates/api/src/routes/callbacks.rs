//! Callbacks from third parties, authenticated by a shared-secret signature
//! over the body instead of an API key.
//!
//! `POST /callbacks/kyc/{org_id}`: a KYC provider's decision about one of the
//! organization's investors, signed `Rwa-Signature: t=<unix>,v1=<hex
//! HMAC-SHA256(RWA_KYC_CALLBACK_SECRET, t + "." + body)>`. The signature is
//! checked before anything else is read (a caller without the secret learns
//! nothing), the timestamp must be within five minutes of the server's
//! clock, and an accepted signature is remembered in the decision's own
//! transaction, so the same request twice is refused as a replay. None of
//! the refusals changes anything.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use chrono::{DateTime, Utc};
use rwa_domain::OrgId;
use rwa_domain::investor::ProviderDecisionDraft;
use rwa_domain::signature::{self, SignatureError};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{parse_json, path_id};
use crate::routes::investors::InvestorView;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(kyc_callback))
}

/// Body of a KYC provider's callback: the investor by `investor_id` or by
/// `external_ref` (exactly one), the decision as `POST
/// /v1/investors/{id}/kyc` takes it, and the provider's own reference for
/// the check (kept in the audit trail).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // parsed by the domain's draft; this type is the contract
pub(crate) struct KycCallback {
    investor_id: Option<uuid::Uuid>,
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,100}$")]
    external_ref: Option<String>,
    #[schema(pattern = "^(approved|rejected)$")]
    decision: String,
    /// Required with `approved`, refused with `rejected`.
    expires_at: Option<DateTime<Utc>>,
    /// Not blank, no control characters.
    #[schema(
        max_length = 500,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    reason: String,
    #[schema(pattern = r"^[A-Za-z0-9._:-]{1,100}$")]
    provider_ref: String,
}

/// Records a KYC provider's decision, authenticated by its `Rwa-Signature`
/// header (see the tag's description); answers the investor.
#[utoipa::path(post, path = "/callbacks/kyc/{org_id}", tag = "callbacks",
    params(
        ("org_id" = uuid::Uuid, Path, description = "the organization the investor belongs to"),
        ("Rwa-Signature" = String, Header,
            description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of t.body under RWA_KYC_CALLBACK_SECRET>"),
    ),
    request_body = KycCallback,
    responses(
        (status = 200, body = InvestorView),
        (status = 401, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/bad-signature`: the signature is missing, does not match the body, or its timestamp is more than 5 minutes from the server's clock"),
        (status = 404, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/not-found`: no such investor in the organization, or callbacks are not enabled (no RWA_KYC_CALLBACK_SECRET)"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: this signature was accepted before (a replay), or an approval refused by a sanctions hit or waiting for possible matches to be cleared"),
        (status = 503, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/unavailable`: a dependency is down; retry later"),
        (status = 504, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/timeout`: the request took longer than the configured timeout"),
    ))]
async fn kyc_callback(
    State(state): State<ApiState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<InvestorView>> {
    let Some(secret) = state.kyc_callback_secret.as_deref() else {
        return Err(ApiError::NotFound);
    };
    let verified = signature::verify(
        secret,
        headers.get(signature::HEADER).and_then(|v| v.to_str().ok()),
        &body,
        Utc::now(),
    )
    .map_err(|e| {
        let what = match e {
            SignatureError::Malformed => "malformed",
            SignatureError::Mismatch => "mismatch",
            SignatureError::Stale => "stale",
        };
        metrics::counter!("rwa_callbacks_refused_total", "reason" => what).increment(1);
        ApiError::BadSignature(e.to_string())
    })?;
    let org: OrgId = path_id(&org)?;
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or("").trim() == "application/json");
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let draft: ProviderDecisionDraft = parse_json(&body, state.settings.json_max_depth)?;
    let decision = draft.parse().map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let investor = state
        .investors
        .decide_kyc_from_provider(org, &decision, &verified.digest)
        .await?;
    Ok(axum::Json(investor.into()))
}
