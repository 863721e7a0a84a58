//! Transfers: `POST /v1/transfers` (under an `Idempotency-Key`, 202
//! `pending_compliance`), the dry run `POST /v1/transfers/check`, reading
//! one or a filtered list, and cancelling before submission. The rules'
//! verdicts, the rule-set version and the snapshot they read are part of
//! every checked transfer, so a refusal explains itself.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use rwa_domain::compliance::{Verdict, all_passed};
use rwa_domain::idempotency::Completion;
use rwa_domain::transfer::{
    ComplianceRecord, Resolved, Review, Transfer, TransferDraft, TransferFilter, TransferRequest,
    TransferStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::idempotency::{self, IdempotencyHeader, IdempotencyParam, json_response};
use crate::routes::ListView;
use crate::routes::rule_sets::RuleSetBody;
use crate::schema::PositiveUint256;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_transfer, list_transfers))
        .routes(routes!(check_transfer))
        .routes(routes!(get_transfer))
        .routes(routes!(cancel_transfer))
        .routes(routes!(review_transfer))
}

/// Body of `POST /v1/transfers` and `POST /v1/transfers/check`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    /// The token (deployed, of the caller's organization).
    #[schema(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    token_id: String,
    /// The sender: an investor id (who must then have exactly one wallet)
    /// or a wallet other than the zero address.
    #[schema(
        pattern = "^(0x[0-9a-fA-F]{40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    from: String,
    /// The receiver: an investor id (exactly one wallet) or a wallet other
    /// than the zero address; another wallet than the sender's.
    #[schema(
        pattern = "^(0x[0-9a-fA-F]{40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    to: String,
    #[schema(value_type = PositiveUint256)]
    amount: String,
}

impl TransferBody {
    fn request(&self) -> ApiResult<TransferRequest> {
        TransferRequest::parse(&TransferDraft {
            token_id: self.token_id.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            amount: self.amount.clone(),
        })
        .map_err(|errors| ApiError::Validation(errors.into_iter().map(FieldError::from).collect()))
    }
}

/// One rule's outcome.
#[derive(Serialize, ToSchema)]
pub(crate) struct VerdictView {
    /// The rule: `sender_kyc`, `receiver_kyc`, `sender_wallet_registered`,
    /// `receiver_wallet_registered`, `sender_not_frozen`,
    /// `receiver_not_frozen`, `unfrozen_balance`, `token_not_paused`,
    /// `country_allowed`, `country_not_blocked`, `max_balance_per_investor`,
    /// `max_holders`, `lockup`, `sanctions`, `max_investors_per_country`,
    /// `velocity`, `structuring`, or `risk_engine` (the external engine's
    /// decision and score, when one is configured and the rules passed).
    rule: String,
    passed: bool,
    /// What the rule compared.
    detail: String,
}

impl From<&Verdict> for VerdictView {
    fn from(v: &Verdict) -> Self {
        Self {
            rule: v.rule.clone(),
            passed: v.passed,
            detail: v.detail.clone(),
        }
    }
}

/// A compliance check: every rule's verdict under a rule-set version, and
/// what the rules read.
#[derive(Serialize, ToSchema)]
pub(crate) struct ComplianceView {
    /// Whether every rule passed.
    passed: bool,
    /// The token's rule-set version evaluated (its off-chain rules).
    rule_set_version: u32,
    /// The version whose on-chain rules the compliance contract enforced
    /// (earlier than `rule_set_version` while a change is on its way).
    onchain_rule_set_version: u32,
    /// The rules evaluated: the on-chain rules in force, the version's
    /// off-chain rules and the organization's defaults for what it leaves
    /// unset.
    rules: Option<RuleSetBody>,
    /// Every rule, passed or not, in evaluation order.
    verdicts: Vec<VerdictView>,
    /// What the rules read (balances from the index at `indexed_block`,
    /// KYC, registrations, screenings, reservations, recent activity) as
    /// of `taken_at`; evaluating it again gives the same verdicts.
    #[schema(value_type = Object)]
    snapshot: serde_json::Value,
}

impl From<&ComplianceRecord> for ComplianceView {
    fn from(r: &ComplianceRecord) -> Self {
        Self {
            passed: all_passed(&r.verdicts),
            rule_set_version: r.rule_set_version,
            onchain_rule_set_version: r.onchain_rule_set_version,
            rules: r.rules.as_ref().map(RuleSetBody::from),
            verdicts: r.verdicts.iter().map(VerdictView::from).collect(),
            snapshot: serde_json::to_value(&r.snapshot).unwrap_or_default(),
        }
    }
}

/// A transfer.
#[derive(Serialize, ToSchema)]
pub(crate) struct TransferView {
    id: uuid::Uuid,
    token_id: uuid::Uuid,
    /// The sender's investor (absent: a wallet of no investor of the
    /// organization).
    from_investor_id: Option<uuid::Uuid>,
    /// EIP-55 checksummed.
    from_wallet: String,
    to_investor_id: Option<uuid::Uuid>,
    /// EIP-55 checksummed.
    to_wallet: String,
    /// Base units.
    amount: String,
    /// `pending_compliance`, `manual_review`, `approved`, `rejected`,
    /// `submitted`, `confirmed`, `settled`, `failed` or `cancelled`.
    status: String,
    /// The latest compliance check (absent before it ran).
    compliance: Option<ComplianceView>,
    /// A compliance officer's decision on a manual review.
    review: Option<ReviewView>,
    tx_hash: Option<String>,
    block_number: Option<u64>,
    /// Why it failed.
    error: Option<String>,
    /// The requester (`api_key:<id>`).
    requested_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Transfer> for TransferView {
    fn from(t: Transfer) -> Self {
        Self {
            id: t.id,
            token_id: t.token_id.as_uuid(),
            from_investor_id: t.from_investor_id.map(|i| i.as_uuid()),
            from_wallet: t.from_wallet.to_checksum(None),
            to_investor_id: t.to_investor_id.map(|i| i.as_uuid()),
            to_wallet: t.to_wallet.to_checksum(None),
            amount: t.amount.to_string(),
            status: t.status.as_str().to_owned(),
            compliance: t.compliance.as_ref().map(ComplianceView::from),
            review: t.review.map(|r| ReviewView {
                decision: r.decision.as_str().to_owned(),
                reason: r.reason,
                by: r.by,
            }),
            tx_hash: t.tx_hash.map(|h| format!("{h:#x}")),
            block_number: t.block_number,
            error: t.error,
            requested_by: t.requested_by,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// A manual review's outcome.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReviewView {
    /// `approved` or `rejected`.
    decision: String,
    reason: String,
    /// The reviewer (`api_key:<id>`).
    by: String,
}

/// Body of `POST /v1/transfers/{id}/review`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    #[schema(pattern = "^(approved|rejected)$")]
    decision: String,
    /// Why: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    reason: String,
}

fn render(t: &Transfer) -> String {
    serde_json::to_string(&TransferView::from(t.clone())).unwrap_or_default()
}

fn refused(e: rwa_domain::ValidationError) -> ApiError {
    ApiError::Validation(vec![FieldError::from(e)])
}

/// Requests a transfer: stored `pending_compliance` with its compliance
/// check, answered at once; poll `GET /v1/transfers/{id}` (or follow the
/// `transfer.*` events) for the verdicts.
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers",
    security(("api_key" = ["admin", "operator"])),
    params(IdempotencyParam),
    request_body = TransferBody,
    responses(
        (status = 202, body = TransferView, description = "accepted (or the stored answer to the same request)"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`): the same key is being processed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation` naming the field (an unknown or undeployed token, an unknown investor, an investor with no or several wallets); `/problems/idempotency-mismatch`: the key was used for another request"),
    ))]
async fn create_transfer(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<TransferBody>,
) -> ApiResult<Response> {
    let request = body.request()?;
    let state = &state;
    let (key, caller) = (&key, &caller);
    idempotency::run(
        state,
        caller.org_id,
        key,
        "POST",
        "/v1/transfers",
        &body,
        |claim| async move {
            let done = Completion {
                key: key.clone(),
                claim,
                status: 202,
                render: Arc::new(render),
            };
            match state
                .transfers
                .create(caller.org_id, &request, &caller.actor(), &done)
                .await?
            {
                Resolved::Done(stored) => Ok(json_response(202, render(&stored), false)),
                Resolved::Refused(e) => Err(refused(e)),
            }
        },
    )
    .await
}

/// A dry run: the rules' verdicts for this transfer as if it were requested
/// now, under the token's current rule set. Nothing is stored or reserved.
#[utoipa::path(post, path = "/v1/transfers/check", tag = "transfers",
    security(("api_key" = ["admin", "operator", "compliance"])),
    request_body = TransferBody,
    responses(
        (status = 200, body = ComplianceView),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation` naming the field (as for `POST /v1/transfers`)"),
    ))]
async fn check_transfer(
    caller: Authorized<roles::AdminOperatorOrCompliance>,
    State(state): State<ApiState>,
    Json(body): Json<TransferBody>,
) -> ApiResult<axum::Json<ComplianceView>> {
    let request = body.request()?;
    match state.transfers.check(caller.org_id, &request).await? {
        Resolved::Done(check) => Ok(axum::Json(ComplianceView::from(&check.record))),
        Resolved::Refused(e) => Err(refused(e)),
    }
}

/// Query of `GET /v1/transfers`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TransferListParams {
    /// Only this token's.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    token_id: Option<String>,
    /// Only those this investor sends or receives.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    investor_id: Option<String>,
    /// Only in this status.
    #[param(
        pattern = "^(pending_compliance|manual_review|approved|rejected|submitted|confirmed|settled|failed|cancelled)$"
    )]
    status: Option<String>,
    /// Requested at or after (RFC 3339).
    #[param(format = DateTime)]
    from: Option<String>,
    /// Requested before (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

/// An optional RFC 3339 query parameter; 422 naming `field` otherwise.
pub(crate) fn time(raw: Option<&str>, field: &str) -> ApiResult<Option<DateTime<Utc>>> {
    raw.map(|r| {
        DateTime::parse_from_rfc3339(r)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::field(
                    field,
                    "must be an RFC 3339 date-time (2026-12-03T10:00:00Z)",
                )
            })
    })
    .transpose()
}

fn uuid_param(raw: Option<&str>, field: &str) -> ApiResult<Option<uuid::Uuid>> {
    raw.map(|r| uuid::Uuid::parse_str(r).map_err(|_| ApiError::field(field, "must be a UUID")))
        .transpose()
}

/// Lists the organization's transfers, oldest first.
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(TransferListParams),
    responses((status = 200, body = ListView<TransferView>)))]
async fn list_transfers(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Query(params): Query<TransferListParams>,
) -> ApiResult<axum::Json<ListView<TransferView>>> {
    let page = rwa_domain::page::PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let filter = TransferFilter {
        token_id: uuid_param(params.token_id.as_deref(), "token_id")?
            .map(rwa_domain::TokenId::from_uuid),
        investor_id: uuid_param(params.investor_id.as_deref(), "investor_id")?
            .map(rwa_domain::InvestorId::from_uuid),
        status: params.status.as_deref().map(str::parse).transpose()?,
        from: time(params.from.as_deref(), "from")?,
        until: time(params.until.as_deref(), "until")?,
    };
    let page = state.transfers.list(caller.org_id, &filter, page).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// One transfer, with its verdicts and the snapshot they were reached on.
#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "transfer id")),
    responses((status = 200, body = TransferView)))]
async fn get_transfer(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TransferView>> {
    let id: uuid::Uuid = path_id(&id)?;
    Ok(axum::Json(
        state.transfers.get(caller.org_id, id).await?.into(),
    ))
}

/// Cancels a transfer not yet submitted (`pending_compliance`,
/// `manual_review` or `approved`); an approved one's reservation is
/// released with it.
#[utoipa::path(post, path = "/v1/transfers/{id}/cancel", tag = "transfers",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "transfer id")),
    responses(
        (status = 200, body = TransferView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the transfer was submitted or has ended"),
    ))]
async fn cancel_transfer(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TransferView>> {
    let id: uuid::Uuid = path_id(&id)?;
    Ok(axum::Json(
        state
            .transfers
            .cancel(caller.org_id, id, &caller.actor())
            .await?
            .into(),
    ))
}

/// Decides a transfer waiting in `manual_review` (the risk engine asked for
/// it, or could not answer). An approval is checked against the rules
/// again first: approved (its amount reserved, then settled), or rejected
/// with the new verdicts if a rule fails now. The reviewer is audited.
#[utoipa::path(post, path = "/v1/transfers/{id}/review", tag = "transfers",
    security(("api_key" = ["admin", "compliance"])),
    params(("id" = uuid::Uuid, Path, description = "transfer id")),
    request_body = ReviewBody,
    responses(
        (status = 200, body = TransferView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the transfer is not waiting for a manual review"),
    ))]
async fn review_transfer(
    caller: Authorized<roles::AdminOrCompliance>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<ReviewBody>,
) -> ApiResult<axum::Json<TransferView>> {
    let id: uuid::Uuid = path_id(&id)?;
    let decision = match body.decision.as_str() {
        "approved" => TransferStatus::Approved,
        "rejected" => TransferStatus::Rejected,
        _ => return Err(ApiError::field("decision", "must be approved or rejected")),
    };
    let reason = rwa_domain::operation::parse_reason(&body.reason, "reason")?;
    let review = Review {
        decision,
        reason,
        by: caller.actor().to_string(),
    };
    Ok(axum::Json(
        state
            .transfers
            .review(caller.org_id, id, &review, &caller.actor())
            .await?
            .into(),
    ))
}
