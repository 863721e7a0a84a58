//! Issuer operations: mints, burns, freezes, unfreezes, forced transfers,
//! pause and unpause of a token, and the recovery of an investor's lost
//! wallet. Each requires an `Idempotency-Key` and answers 202 with the
//! operation, whose status then follows its transaction (`GET
//! /v1/operations/{id}`). Four-eyes kinds wait for another admin's
//! approval. Admin and operator request; admins approve and reject; every
//! role reads.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use rwa_domain::amount::Amount;
use rwa_domain::idempotency::{Completion, IdempotencyKey};
use rwa_domain::identity::RegistrationStatus;
use rwa_domain::investor::{Investor, parse_wallet};
use rwa_domain::operation::{
    Created, MintGate, NewOperation, Operation, OperationFilter, OperationKind, parse_reason,
};
use rwa_domain::token::{Token, TokenDeployment, TokenStatus};
use rwa_domain::{InvestorId, OrgId, TokenId, ValidationError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, Caller, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::idempotency::{self, IdempotencyHeader, IdempotencyParam, json_response};
use crate::routes::ListView;
use crate::schema::PositiveUint256;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(mint))
        .routes(routes!(burn))
        .routes(routes!(freeze))
        .routes(routes!(unfreeze))
        .routes(routes!(forced_transfer))
        .routes(routes!(pause))
        .routes(routes!(unpause))
        .routes(routes!(recover))
        .routes(routes!(list_operations))
        .routes(routes!(get_operation))
        .routes(routes!(approve))
        .routes(routes!(reject))
}

/// One transaction of an operation.
#[derive(Serialize, ToSchema)]
pub(crate) struct OperationTxView {
    token_id: uuid::Uuid,
    /// `pending` (not sent yet), `submitted`, `confirmed`, `settled` or `failed`.
    state: String,
    tx_hash: Option<String>,
    block_number: Option<u64>,
    /// The decoded revert reason, when it failed.
    error: Option<String>,
}

/// An issuer operation.
#[derive(Serialize, ToSchema)]
pub(crate) struct OperationView {
    id: uuid::Uuid,
    /// `mint`, `burn`, `freeze`, `unfreeze`, `forced_transfer`, `pause`,
    /// `unpause`, `recovery` or `rule_set_change`.
    kind: String,
    /// `awaiting_approval`, `pending`, `submitted`, `confirmed`, `settled`,
    /// `failed` or `rejected`.
    status: String,
    /// The token (absent for a recovery, which acts on every token).
    token_id: Option<uuid::Uuid>,
    /// The wallet acted on (minted to, burned from, frozen, forced from,
    /// or the lost wallet of a recovery), EIP-55 checksummed.
    wallet: Option<String>,
    /// The forced transfer's receiver, or the recovery's new wallet.
    counterparty: Option<String>,
    investor_id: Option<uuid::Uuid>,
    /// Base units.
    amount: Option<String>,
    /// A forced transfer's reason.
    reason: Option<String>,
    /// The rule-set version whose on-chain part a `rule_set_change` applies
    /// to the token's compliance contract.
    rule_set_version: Option<u32>,
    /// The requester (`api_key:<id>`).
    requested_by: String,
    approved_by: Option<String>,
    rejected_by: Option<String>,
    rejection_reason: Option<String>,
    /// The transaction's hash, when the operation has exactly one.
    tx_hash: Option<String>,
    /// Its block, once mined.
    block_number: Option<u64>,
    /// Every transaction (a recovery has one per token).
    transactions: Vec<OperationTxView>,
    /// Why it failed (a decoded revert reason, or why it could not be sent).
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Operation> for OperationView {
    fn from(o: Operation) -> Self {
        let single = (o.transactions.len() == 1).then(|| &o.transactions[0]);
        Self {
            id: o.id,
            kind: o.kind.as_str().to_owned(),
            status: o.status.as_str().to_owned(),
            token_id: o.token_id.map(|t| t.as_uuid()),
            wallet: o.wallet.map(|w| w.to_checksum(None)),
            counterparty: o.counterparty.map(|w| w.to_checksum(None)),
            investor_id: o.investor_id.map(|i| i.as_uuid()),
            amount: o.amount.map(|a| a.to_string()),
            reason: o.reason.clone(),
            rule_set_version: o.rule_change.as_ref().map(|c| c.version),
            requested_by: o.requested_by.clone(),
            approved_by: o.approved_by.clone(),
            rejected_by: o.rejected_by.clone(),
            rejection_reason: o.rejection_reason.clone(),
            tx_hash: single.and_then(|t| t.tx_hash).map(|h| format!("{h:#x}")),
            block_number: single.and_then(|t| t.block_number),
            transactions: o
                .transactions
                .iter()
                .map(|t| OperationTxView {
                    token_id: t.token_id.as_uuid(),
                    state: t.state.as_str().to_owned(),
                    tx_hash: t.tx_hash.map(|h| format!("{h:#x}")),
                    block_number: t.block_number,
                    error: t.error.clone(),
                })
                .collect(),
            error: o.error,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

fn render(op: &Operation) -> String {
    serde_json::to_string(&OperationView::from(op.clone())).unwrap_or_default()
}

// ---- bodies ----

/// Body of `POST /v1/tokens/{id}/mints`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MintBody {
    /// The receiving investor's id (who must then have exactly one
    /// registered wallet, or name it in `wallet`), or a wallet.
    #[schema(
        pattern = "^(0x[0-9a-fA-F]{40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    to: String,
    /// Which of the investor's wallets, when `to` is an investor.
    #[serde(default)]
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    wallet: Option<String>,
    #[schema(value_type = PositiveUint256)]
    amount: String,
}

/// Body of `POST /v1/tokens/{id}/burns`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BurnBody {
    /// The investor's id (who must then have exactly one wallet, or name it
    /// in `wallet`), or a wallet.
    #[schema(
        pattern = "^(0x[0-9a-fA-F]{40}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
    )]
    from: String,
    /// Which of the investor's wallets, when `from` is an investor.
    #[serde(default)]
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    wallet: Option<String>,
    #[schema(value_type = PositiveUint256)]
    amount: String,
}

/// Body of `POST /v1/tokens/{id}/freezes` and `/unfreezes`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FreezeBody {
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    wallet: String,
    /// Part of the balance (absent: the whole wallet is frozen, or unfrozen).
    #[serde(default)]
    #[schema(value_type = Option<PositiveUint256>)]
    amount: Option<String>,
}

/// Body of `POST /v1/tokens/{id}/forced-transfers`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForcedTransferBody {
    /// The sending wallet.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    from: String,
    /// The receiving wallet (registered in the identity registry).
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    to: String,
    #[schema(value_type = PositiveUint256)]
    amount: String,
    /// Why (court order, error correction, ...): 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    reason: String,
}

/// Body of `POST /v1/investors/{id}/wallets/{address}/recover`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecoverBody {
    /// The investor's new wallet; added to the investor if it is not theirs
    /// yet, and registered before the balance moves.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    new_address: String,
}

/// Body of `POST /v1/operations/{id}/reject`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RejectBody {
    /// Why: 1 to 500 characters.
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    reason: String,
}

// ---- helpers ----

fn positive(raw: &str, field: &str) -> Result<Amount, ValidationError> {
    let a = Amount::parse(raw, field)?;
    if a == Amount::ZERO {
        return Err(ValidationError::new(field, "must be at least 1"));
    }
    Ok(a)
}

fn amount(raw: &str, field: &str) -> Result<Amount, ApiError> {
    Ok(positive(raw, field)?)
}

fn wallet(raw: &str, field: &str) -> Result<rwa_domain::chain::Address, ApiError> {
    Ok(parse_wallet(raw, field)?)
}

/// The token, deployed (409 otherwise: nothing can be sent to it yet).
async fn deployed(
    state: &ApiState,
    org: OrgId,
    raw_id: &str,
) -> ApiResult<(Token, TokenDeployment)> {
    let id: TokenId = path_id(raw_id)?;
    let token = state.tokens.get(org, id).await?;
    match (&token.deployment, token.status) {
        (Some(d), TokenStatus::Deployed) => {
            let d = d.clone();
            Ok((token, d))
        }
        _ => Err(ApiError::Conflict(format!(
            "the token is {}, not deployed",
            token.status.as_str()
        ))),
    }
}

/// An investor and one of their wallets from `raw` (an investor id or a
/// wallet) and `named` (a wallet, when `raw` is an investor): `registered`
/// limits the choice to wallets registered on-chain.
async fn party(
    state: &ApiState,
    org: OrgId,
    raw: &str,
    named: Option<&str>,
    field: &'static str,
    registered: bool,
) -> ApiResult<(Option<Investor>, rwa_domain::chain::Address)> {
    if raw.starts_with("0x") {
        if named.is_some() {
            return Err(ApiError::field(
                "wallet",
                format!("only with an investor id in `{field}`"),
            ));
        }
        let address = wallet(raw, field)?;
        return Ok((state.investors.find_by_wallet(org, address).await?, address));
    }
    let id: InvestorId = raw
        .parse()
        .map_err(|_| ApiError::field(field, "must be an investor id or a wallet"))?;
    let investor = match state.investors.get(org, id).await {
        Err(rwa_domain::RepoError::NotFound) => {
            return Err(ApiError::field(
                field,
                "no such investor in this organization",
            ));
        }
        other => other?,
    };
    // For a mint, the registered wallets; when none is, the investor's
    // wallets, so the mint check names the rule that fails (KYC first).
    let all: Vec<_> = investor.wallets.iter().map(|w| w.address).collect();
    let registered_ones: Vec<_> = investor
        .registrations
        .iter()
        .filter(|r| r.status == RegistrationStatus::Registered)
        .map(|r| r.address)
        .collect();
    let candidates = if registered && !registered_ones.is_empty() {
        registered_ones
    } else {
        all
    };
    let address = match named {
        Some(raw) => {
            let address = wallet(raw, "wallet")?;
            if !investor.wallets.iter().any(|w| w.address == address) {
                return Err(ApiError::field(
                    "wallet",
                    "is not one of the investor's wallets",
                ));
            }
            address
        }
        None => match candidates.as_slice() {
            [one] => *one,
            [] if registered => {
                return Err(ApiError::Rule {
                    rule: "wallet_registered",
                    field,
                    detail: "the investor has no wallet registered in the identity registry yet"
                        .into(),
                });
            }
            [] => return Err(ApiError::field(field, "the investor has no wallet")),
            _ => {
                return Err(ApiError::field(
                    "wallet",
                    "the investor has several wallets: name one",
                ));
            }
        },
    };
    Ok((Some(investor), address))
}

/// Stores `op` under the request's idempotency key and answers 202 with it
/// (or the stored answer of an earlier identical request).
#[allow(clippy::too_many_arguments)]
async fn submit<B: Serialize>(
    state: &ApiState,
    caller: &Caller,
    key: &IdempotencyKey,
    path: &str,
    body: &B,
    op: NewOperation,
    gate: impl AsyncFnOnce() -> ApiResult<Option<MintGate>>,
) -> ApiResult<Response> {
    idempotency::run(
        state,
        caller.org_id,
        key,
        "POST",
        path,
        body,
        |claim| async move {
            let gate = gate().await?;
            let done = Completion {
                key: key.clone(),
                claim,
                status: 202,
                render: Arc::new(render),
            };
            match state
                .operations
                .create(caller.org_id, &op, gate.as_ref(), &caller.actor(), &done)
                .await?
            {
                Created::Stored(stored) => Ok(json_response(202, render(&stored), false)),
                Created::Refused(f) => Err(ApiError::Rule {
                    rule: f.rule,
                    field: f.field,
                    detail: f.detail,
                }),
            }
        },
    )
    .await
}

fn new_op(kind: OperationKind, token: Option<TokenId>) -> NewOperation {
    NewOperation {
        kind,
        token_id: token,
        wallet: None,
        counterparty: None,
        investor_id: None,
        amount: None,
        reason: None,
        four_eyes: kind.always_four_eyes(),
        new_holder: false,
        rule_change: None,
    }
}

// ---- routes ----

/// Mints to an investor's registered wallet. Checked first (422
/// `/problems/rule-violation` naming the rule): the investor's KYC is
/// approved and current, the wallet is registered on-chain, the country is
/// allowed, and the token's per-investor and holder limits hold counting
/// the mints already on their way. Above the token's
/// `four_eyes_mint_threshold` it waits for another admin's approval.
#[utoipa::path(post, path = "/v1/tokens/{id}/mints", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    request_body = MintBody,
    responses(
        (status = 202, body = OperationView, description = "accepted (or the stored answer to the same request)"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`): the same key is being processed; `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/rule-violation` with `rule`: kyc_approved, wallet_registered, country_allowed, country_not_blocked, max_balance_per_investor or max_holders; `/problems/idempotency-mismatch`: the key was used for another request"),
    ))]
async fn mint(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<MintBody>,
) -> ApiResult<Response> {
    let (token, deployment) = deployed(&state, caller.org_id, &id).await?;
    let amount = amount(&body.amount, "amount")?;
    let (investor, address) = party(
        &state,
        caller.org_id,
        &body.to,
        body.wallet.as_deref(),
        "to",
        true,
    )
    .await?;
    let Some(investor) = investor else {
        return Err(ApiError::Rule {
            rule: "wallet_registered",
            field: "to",
            detail: "the wallet belongs to no investor of this organization".into(),
        });
    };
    let mut op = new_op(OperationKind::Mint, Some(token.id));
    op.wallet = Some(address);
    op.investor_id = Some(investor.id);
    op.amount = Some(amount);
    op.four_eyes = NewOperation::needs_four_eyes(
        OperationKind::Mint,
        Some(amount),
        token.four_eyes_mint_threshold,
    );
    let path = format!("/v1/tokens/{}/mints", token.id);
    let holdings = state.holdings.clone();
    let rules = token.compliance.clone();
    submit(&state, &caller, &key, &path, &body, op, async move || {
        let holding = holdings.holding(&deployment, investor.id).await?;
        Ok(Some(MintGate {
            investor,
            rules,
            holding,
            now: Utc::now(),
        }))
    })
    .await
}

/// Burns from a wallet (frozen tokens are released first when the free
/// balance is short). Always waits for another admin's approval.
#[utoipa::path(post, path = "/v1/tokens/{id}/burns", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    request_body = BurnBody,
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/idempotency-mismatch`"),
    ))]
async fn burn(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<BurnBody>,
) -> ApiResult<Response> {
    let (token, _) = deployed(&state, caller.org_id, &id).await?;
    let amount = amount(&body.amount, "amount")?;
    let (investor, address) = party(
        &state,
        caller.org_id,
        &body.from,
        body.wallet.as_deref(),
        "from",
        false,
    )
    .await?;
    let mut op = new_op(OperationKind::Burn, Some(token.id));
    op.wallet = Some(address);
    op.investor_id = investor.map(|i| i.id);
    op.amount = Some(amount);
    let path = format!("/v1/tokens/{}/burns", token.id);
    submit(&state, &caller, &key, &path, &body, op, async || Ok(None)).await
}

async fn freeze_or_unfreeze(
    kind: OperationKind,
    caller: &Caller,
    state: &ApiState,
    id: &str,
    key: &IdempotencyKey,
    body: &FreezeBody,
) -> ApiResult<Response> {
    let (token, _) = deployed(state, caller.org_id, id).await?;
    let address = wallet(&body.wallet, "wallet")?;
    let mut op = new_op(kind, Some(token.id));
    op.wallet = Some(address);
    op.investor_id = state
        .investors
        .find_by_wallet(caller.org_id, address)
        .await?
        .map(|i| i.id);
    op.amount = body
        .amount
        .as_deref()
        .map(|a| amount(a, "amount"))
        .transpose()?;
    let noun = if kind == OperationKind::Freeze {
        "freezes"
    } else {
        "unfreezes"
    };
    let path = format!("/v1/tokens/{}/{noun}", token.id);
    submit(state, caller, key, &path, body, op, async || Ok(None)).await
}

/// Freezes a whole wallet (no transfer from or to it), or with `amount`
/// part of its balance.
#[utoipa::path(post, path = "/v1/tokens/{id}/freezes", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    request_body = FreezeBody,
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/idempotency-mismatch`"),
    ))]
async fn freeze(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<FreezeBody>,
) -> ApiResult<Response> {
    freeze_or_unfreeze(OperationKind::Freeze, &caller, &state, &id, &key, &body).await
}

/// Unfreezes a whole wallet, or with `amount` part of its frozen balance.
#[utoipa::path(post, path = "/v1/tokens/{id}/unfreezes", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    request_body = FreezeBody,
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/idempotency-mismatch`"),
    ))]
async fn unfreeze(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<FreezeBody>,
) -> ApiResult<Response> {
    freeze_or_unfreeze(OperationKind::Unfreeze, &caller, &state, &id, &key, &body).await
}

/// Moves tokens between wallets regardless of the compliance rules, freezes
/// and lockups (still stopped by a pause; the receiver must be registered).
/// Always waits for another admin's approval.
#[utoipa::path(post, path = "/v1/tokens/{id}/forced-transfers", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    request_body = ForcedTransferBody,
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/idempotency-mismatch`"),
    ))]
async fn forced_transfer(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<ForcedTransferBody>,
) -> ApiResult<Response> {
    let (token, _) = deployed(&state, caller.org_id, &id).await?;
    let mut errors: Vec<FieldError> = Vec::new();
    let from = keep(parse_wallet(&body.from, "from"), &mut errors);
    let to = keep(parse_wallet(&body.to, "to"), &mut errors);
    let value = keep(positive(&body.amount, "amount"), &mut errors);
    let reason = keep(parse_reason(&body.reason, "reason"), &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if from == to {
        return Err(ApiError::field("to", "must differ from `from`"));
    }
    let mut op = new_op(OperationKind::ForcedTransfer, Some(token.id));
    op.wallet = from;
    op.counterparty = to;
    op.amount = value;
    op.reason = reason;
    op.investor_id = match from {
        Some(w) => state
            .investors
            .find_by_wallet(caller.org_id, w)
            .await?
            .map(|i| i.id),
        None => None,
    };
    let path = format!("/v1/tokens/{}/forced-transfers", token.id);
    submit(&state, &caller, &key, &path, &body, op, async || Ok(None)).await
}

/// The value, or its error noted in `errors` (so every field is reported).
fn keep<T>(r: Result<T, ValidationError>, errors: &mut Vec<FieldError>) -> Option<T> {
    r.map_err(|e| errors.push(e.into())).ok()
}

/// Pauses the token: every transfer and forced transfer stops (mints and
/// burns do not). Always waits for another admin's approval.
#[utoipa::path(post, path = "/v1/tokens/{id}/pause", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`: the `Idempotency-Key` header; `/problems/idempotency-mismatch`"),
    ))]
async fn pause(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> ApiResult<Response> {
    let (token, _) = deployed(&state, caller.org_id, &id).await?;
    let path = format!("/v1/tokens/{}/pause", token.id);
    let op = new_op(OperationKind::Pause, Some(token.id));
    submit(&state, &caller, &key, &path, &(), op, async || Ok(None)).await
}

/// Resumes transfers of a paused token.
#[utoipa::path(post, path = "/v1/tokens/{id}/unpause", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), IdempotencyParam),
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the token is not deployed"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`: the `Idempotency-Key` header; `/problems/idempotency-mismatch`"),
    ))]
async fn unpause(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> ApiResult<Response> {
    let (token, _) = deployed(&state, caller.org_id, &id).await?;
    let path = format!("/v1/tokens/{}/unpause", token.id);
    let op = new_op(OperationKind::Unpause, Some(token.id));
    submit(&state, &caller, &key, &path, &(), op, async || Ok(None)).await
}

/// Recovers a lost wallet: the new wallet is added to the investor (if it
/// is not theirs yet) and registered on-chain for the same identity, then,
/// on every deployed token of the organization, the lost wallet's balance,
/// frozen tokens, freeze and lockup move to it. Always waits for another
/// admin's approval.
#[utoipa::path(post, path = "/v1/investors/{id}/wallets/{address}/recover", tag = "operations",
    security(("api_key" = ["admin", "operator"])),
    params(
        ("id" = uuid::Uuid, Path, description = "investor id"),
        ("address" = String, Path, description = "the lost wallet, in any letter case", pattern = "^0x[0-9a-fA-F]{40}$"),
        IdempotencyParam,
    ),
    request_body = RecoverBody,
    responses(
        (status = 202, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/idempotency-in-progress` (with `Retry-After`); `/problems/conflict`: the new wallet belongs to another investor"),
        (status = 422, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/validation`; `/problems/idempotency-mismatch`"),
    ))]
async fn recover(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path((id, lost)): Path<(String, String)>,
    IdempotencyHeader(key): IdempotencyHeader,
    Json(body): Json<RecoverBody>,
) -> ApiResult<Response> {
    let id: InvestorId = path_id(&id)?;
    let lost =
        parse_wallet(&lost.to_ascii_lowercase(), "address").map_err(|_| ApiError::NotFound)?;
    let investor = state.investors.get(caller.org_id, id).await?;
    if !investor.wallets.iter().any(|w| w.address == lost) {
        return Err(ApiError::NotFound);
    }
    let new = wallet(&body.new_address, "new_address")?;
    if new == lost {
        return Err(ApiError::field(
            "new_address",
            "must differ from the lost wallet",
        ));
    }
    let mut op = new_op(OperationKind::Recovery, None);
    op.wallet = Some(lost);
    op.counterparty = Some(new);
    op.investor_id = Some(id);
    let path = format!("/v1/investors/{id}/wallets/{lost:#x}/recover");
    let theirs = investor.wallets.iter().any(|w| w.address == new);
    let (investors, org, actor) = (state.investors.clone(), caller.org_id, caller.actor());
    submit(&state, &caller, &key, &path, &body, op, async move || {
        if !theirs {
            investors.add_wallet(org, id, new, &actor).await?;
        }
        Ok(None)
    })
    .await
}

/// Query of `GET /v1/operations`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OperationListParams {
    /// Only this token's.
    #[param(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    token_id: Option<String>,
    /// Only this kind.
    #[param(
        pattern = "^(mint|burn|freeze|unfreeze|forced_transfer|pause|unpause|recovery|rule_set_change)$"
    )]
    kind: Option<String>,
    /// Only this status.
    #[param(pattern = "^(awaiting_approval|pending|submitted|confirmed|settled|failed|rejected)$")]
    status: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

/// Lists the organization's operations, oldest first.
#[utoipa::path(get, path = "/v1/operations", tag = "operations",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(OperationListParams),
    responses((status = 200, body = ListView<OperationView>)))]
async fn list_operations(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Query(params): Query<OperationListParams>,
) -> ApiResult<axum::Json<ListView<OperationView>>> {
    let page = rwa_domain::page::PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let filter = OperationFilter {
        token_id: params
            .token_id
            .as_deref()
            .map(|t| {
                t.parse()
                    .map_err(|_| ApiError::field("token_id", "must be a token id"))
            })
            .transpose()?,
        kind: params.kind.as_deref().map(str::parse).transpose()?,
        status: params.status.as_deref().map(str::parse).transpose()?,
    };
    let page = state.operations.list(caller.org_id, &filter, page).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// One operation of the organization.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "operation id")),
    responses((status = 200, body = OperationView)))]
async fn get_operation(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OperationView>> {
    let id: uuid::Uuid = path_id(&id)?;
    Ok(axum::Json(
        state.operations.get(caller.org_id, id).await?.into(),
    ))
}

/// Approves an operation awaiting approval: it is sent. The approver must
/// be another admin than the requester (403 otherwise).
#[utoipa::path(post, path = "/v1/operations/{id}/approve", tag = "operations",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "operation id")),
    responses(
        (status = 200, body = OperationView),
        (status = 403, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/forbidden`: the caller is not an admin, or is the requester (four-eyes; a key a user created counts as that user)"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the operation is not awaiting approval"),
    ))]
async fn approve(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<OperationView>> {
    let id: uuid::Uuid = path_id(&id)?;
    let op = state.operations.get(caller.org_id, id).await?;
    if op.requested_by == caller.actor().to_string() {
        return Err(ApiError::ForbiddenBecause(
            "four-eyes: the requester cannot approve their own operation (a key a user created counts as that user)",
        ));
    }
    Ok(axum::Json(
        state
            .operations
            .approve(caller.org_id, id, &caller.actor())
            .await?
            .into(),
    ))
}

/// Rejects an operation awaiting approval, with a reason; it ends there.
#[utoipa::path(post, path = "/v1/operations/{id}/reject", tag = "operations",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "operation id")),
    request_body = RejectBody,
    responses(
        (status = 200, body = OperationView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the operation is not awaiting approval"),
    ))]
async fn reject(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<RejectBody>,
) -> ApiResult<axum::Json<OperationView>> {
    let id: uuid::Uuid = path_id(&id)?;
    let reason = parse_reason(&body.reason, "reason")?;
    Ok(axum::Json(
        state
            .operations
            .reject(caller.org_id, id, &reason, &caller.actor())
            .await?
            .into(),
    ))
}
