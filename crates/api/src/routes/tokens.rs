//! Security tokens of the caller's organization: issue (202: the token is
//! stored `pending_deployment` with its deployment job; the worker deploys it),
//! list, get. Admin and operator issue; every role reads.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::TokenId;
use rwa_domain::amount::Amount;
use rwa_domain::token::{ComplianceDraft, ComplianceRules, NewToken, Token, TokenDraft};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::routes::api_keys::ListParams;
use crate::schema::{CountryCode, PositiveUint256, Uint256, integer, object};
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(get_token, update_token))
}

/// Transfer rules enforced by the token's compliance contract. A receiver
/// must be in `country_allow` (when it is not empty) and not in
/// `country_block`: a country listed in both is blocked.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceBody {
    /// Countries receivers must be in (empty or absent: any country), each once.
    #[serde(default)]
    #[schema(value_type = BTreeSet<CountryCode>)]
    country_allow: Vec<String>,
    /// Countries receivers must not be in, each once.
    #[serde(default)]
    #[schema(value_type = BTreeSet<CountryCode>)]
    country_block: Vec<String>,
    /// Most base units one investor may hold over all their wallets (absent:
    /// no limit).
    #[serde(default)]
    #[schema(value_type = Option<PositiveUint256>)]
    max_balance_per_investor: Option<String>,
    /// Most investors holding the token at once (absent: no limit).
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    max_holders: Option<i64>,
    /// Seconds a wallet cannot send after each mint to it (absent: 0), at most
    /// 100 years.
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 0, maximum = 3_153_600_000_i64)]
    lockup_seconds: Option<i64>,
}

/// Body of `POST /v1/tokens`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// Display name: at most 64 characters, not blank, no control characters;
    /// stored without surrounding spaces.
    #[schema(
        max_length = 64,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: String,
    /// Ticker: 1 to 11 upper-case letters or digits, starting with a letter;
    /// unique among the organization's tokens that have not failed (409
    /// otherwise).
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,10}$")]
    symbol: String,
    /// ERC-20 decimals.
    #[serde(deserialize_with = "integer::required")]
    #[schema(minimum = 0, maximum = 18)]
    decimals: i64,
    /// Transfer rules (absent: none).
    #[serde(default, deserialize_with = "object::optional")]
    compliance: Option<ComplianceBody>,
}

/// The on-chain contracts of a deployed token.
#[derive(Serialize, ToSchema)]
pub(crate) struct ContractsView {
    /// The organization's identity registry.
    identity_registry: String,
    /// The token's compliance contract.
    compliance: String,
}

/// A token.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenView {
    id: uuid::Uuid,
    name: String,
    symbol: String,
    decimals: u8,
    /// `pending_deployment`, `deployed` or `failed`.
    status: String,
    compliance: ComplianceBody,
    /// The token contract, once deployed.
    address: Option<String>,
    /// The transaction that created the token contract.
    deploy_tx_hash: Option<String>,
    chain_id: Option<u64>,
    /// Block of the token contract's creation.
    deploy_block: Option<u64>,
    contracts: Option<ContractsView>,
    /// Why deployment failed.
    failure_reason: Option<String>,
    /// Mints above this many base units wait for a second admin's approval
    /// (absent: none do).
    four_eyes_mint_threshold: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn compliance_view(rules: &ComplianceRules) -> ComplianceBody {
    ComplianceBody {
        country_allow: rules.country_allow.iter().map(|c| c.to_string()).collect(),
        country_block: rules.country_block.iter().map(|c| c.to_string()).collect(),
        max_balance_per_investor: rules.max_balance_per_investor.map(|a| a.to_string()),
        max_holders: rules.max_holders.map(|n| n as i64),
        lockup_seconds: Some(rules.lockup_seconds as i64),
    }
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        let d = t.deployment.as_ref();
        Self {
            id: t.id.as_uuid(),
            compliance: compliance_view(&t.compliance),
            name: t.name,
            symbol: t.symbol,
            decimals: t.decimals,
            status: t.status.as_str().to_owned(),
            address: d.map(|d| format!("{:#x}", d.address)),
            deploy_tx_hash: d.map(|d| format!("{:#x}", d.deploy_tx_hash)),
            chain_id: d.map(|d| d.chain_id),
            deploy_block: d.map(|d| d.block_number),
            contracts: d.map(|d| ContractsView {
                identity_registry: format!("{:#x}", d.identity_registry),
                compliance: format!("{:#x}", d.compliance),
            }),
            failure_reason: t.failure_reason,
            four_eyes_mint_threshold: t.four_eyes_mint_threshold.map(|a| a.to_string()),
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

impl From<CreateToken> for TokenDraft {
    fn from(b: CreateToken) -> Self {
        TokenDraft {
            name: b.name,
            symbol: b.symbol,
            decimals: b.decimals,
            compliance: b.compliance.map(|c| ComplianceDraft {
                country_allow: c.country_allow,
                country_block: c.country_block,
                max_balance_per_investor: c.max_balance_per_investor,
                max_holders: c.max_holders,
                lockup_seconds: c.lockup_seconds,
            }),
        }
    }
}

/// Issues a token: stores it `pending_deployment` with its deployment job and
/// answers at once; poll `GET /v1/tokens/{id}` (or subscribe to
/// `token.deployed`) for the address.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens",
    security(("api_key" = ["admin", "operator"])),
    request_body = CreateToken,
    responses(
        (status = 202, body = TokenView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the symbol is used by another token of the organization that has not failed"),
    ))]
async fn create_token(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Json(body): Json<CreateToken>,
) -> ApiResult<(StatusCode, axum::Json<TokenView>)> {
    let token = NewToken::parse(&body.into()).map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let stored = state
        .tokens
        .create(caller.org_id, &token, &caller.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(stored.into())))
}

/// Lists the organization's tokens, oldest first.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(ListParams),
    responses((status = 200, body = ListView<TokenView>)))]
async fn list_tokens(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<TokenView>>> {
    let page = state.tokens.list(caller.org_id, params.page()?).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// One token of the organization.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id")),
    responses((status = 200, body = TokenView)))]
async fn get_token(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TokenView>> {
    let id: TokenId = path_id(&id)?;
    let token = state.tokens.get(caller.org_id, id).await?;
    Ok(axum::Json(token.into()))
}

/// Body of `PATCH /v1/tokens/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateToken {
    /// Mints above this many base units wait for a second admin's approval;
    /// `null` removes the threshold (no mint waits). Required.
    #[serde(deserialize_with = "nullable")]
    #[schema(value_type = Option<Uint256>, nullable, required = true)]
    four_eyes_mint_threshold: Option<String>,
}

/// A required field that may be `null`.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Changes the token's controls (admins only): the amount above which a
/// mint waits for four-eyes approval.
#[utoipa::path(patch, path = "/v1/tokens/{id}", tag = "tokens",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "token id")),
    request_body = UpdateToken,
    responses((status = 200, body = TokenView)))]
async fn update_token(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateToken>,
) -> ApiResult<axum::Json<TokenView>> {
    let id: TokenId = path_id(&id)?;
    let threshold = body
        .four_eyes_mint_threshold
        .as_deref()
        .map(|raw| Amount::parse(raw, "four_eyes_mint_threshold"))
        .transpose()?;
    let token = state
        .tokens
        .set_mint_threshold(caller.org_id, id, threshold, &caller.actor())
        .await?;
    Ok(axum::Json(token.into()))
}
