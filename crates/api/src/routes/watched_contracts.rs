//! External ERC-20, ERC-721 and ERC-1155 contracts the organization asks the
//! indexer to follow: register (admin, operator), list, get, remove, and
//! their holders and transfer history (every role). A contract registered
//! with a start block below the indexer's position catches up from there.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::investor::{parse_text, parse_wallet};
use rwa_domain::onchain::{NewWatchedContract, Standard, WatchedContract};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::routes::holdings::{
    HistoryParams, HoldersParams, HoldersView, TransferView, holders, transfers,
};
use crate::schema::integer;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(watch, list_watched))
        .routes(routes!(get_watched, unwatch))
        .routes(routes!(watched_holders))
        .routes(routes!(watched_transfers))
}

/// Body of `POST /v1/watched-contracts`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchBody {
    /// The contract; mixed case must carry a valid EIP-55 checksum.
    #[schema(pattern = "^0x[0-9a-fA-F]{40}$")]
    address: String,
    /// `erc20`, `erc721` or `erc1155`.
    #[schema(pattern = "^(erc20|erc721|erc1155)$")]
    standard: String,
    /// The first block to index (its deployment block, or later: balances
    /// moved before it are not known).
    #[serde(deserialize_with = "integer::required")]
    #[schema(minimum = 0)]
    start_block: i64,
    /// A label: at most 100 characters, not blank, no control characters.
    #[serde(default)]
    #[schema(
        max_length = 100,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    name: Option<String>,
}

/// A watched contract.
#[derive(Serialize, ToSchema)]
pub(crate) struct WatchedView {
    id: uuid::Uuid,
    chain_id: u64,
    address: String,
    /// `erc20`, `erc721` or `erc1155`.
    standard: String,
    start_block: u64,
    name: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<WatchedContract> for WatchedView {
    fn from(w: WatchedContract) -> Self {
        Self {
            id: w.id,
            chain_id: w.chain_id,
            address: format!("{:#x}", w.address),
            standard: w.standard.as_str().to_owned(),
            start_block: w.start_block,
            name: w.name,
            created_at: w.created_at,
        }
    }
}

/// Registers a contract to index.
#[utoipa::path(post, path = "/v1/watched-contracts", tag = "holdings",
    security(("api_key" = ["admin", "operator"])),
    request_body = WatchBody,
    responses(
        (status = 201, body = WatchedView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the organization already watches this contract"),
    ))]
async fn watch(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Json(body): Json<WatchBody>,
) -> ApiResult<(StatusCode, axum::Json<WatchedView>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let address = parse_wallet(&body.address, "address")
        .map_err(|e| errors.push(e.into()))
        .ok();
    let standard = Standard::parse(&body.standard);
    if standard.is_none() {
        errors.push(FieldError {
            field: "standard".into(),
            message: "must be erc20, erc721 or erc1155".into(),
        });
    }
    let start_block = u64::try_from(body.start_block).ok();
    if start_block.is_none() {
        errors.push(FieldError {
            field: "start_block".into(),
            message: "must be 0 or more".into(),
        });
    }
    let name = body
        .name
        .as_deref()
        .map(|n| parse_text(n, "name", 100))
        .transpose()
        .map_err(|e| errors.push(e.into()))
        .ok()
        .flatten();
    let (Some(address), Some(standard), Some(start_block), true) =
        (address, standard, start_block, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let watched = state
        .watched
        .watch(
            caller.org_id,
            state.chain_id,
            &NewWatchedContract {
                address,
                standard,
                start_block,
                name,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(watched.into())))
}

/// The organization's watched contracts, oldest first.
#[utoipa::path(get, path = "/v1/watched-contracts", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    responses((status = 200, body = ListView<WatchedView>)))]
async fn list_watched(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
) -> ApiResult<axum::Json<ListView<WatchedView>>> {
    let items = state.watched.watched(caller.org_id).await?;
    Ok(axum::Json(ListView {
        items: items.into_iter().map(Into::into).collect(),
        next_cursor: None,
    }))
}

/// One watched contract.
#[utoipa::path(get, path = "/v1/watched-contracts/{id}", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "watched contract id")),
    responses((status = 200, body = WatchedView)))]
async fn get_watched(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WatchedView>> {
    let id: uuid::Uuid = path_id(&id)?;
    Ok(axum::Json(
        state.watched.watched_one(caller.org_id, id).await?.into(),
    ))
}

/// Stops watching; what was indexed of the contract is forgotten unless a
/// token or another organization still follows it.
#[utoipa::path(delete, path = "/v1/watched-contracts/{id}", tag = "holdings",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "watched contract id")),
    responses((status = 204, description = "no longer watched")))]
async fn unwatch(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: uuid::Uuid = path_id(&id)?;
    state.watched.unwatch(caller.org_id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Holders of a watched contract at a block (per token id for ERC-721 and
/// ERC-1155).
#[utoipa::path(get, path = "/v1/watched-contracts/{id}/holders", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "watched contract id"), HoldersParams),
    responses(
        (status = 200, body = HoldersView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: `at_block` is beyond the last indexed block"),
    ))]
async fn watched_holders(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HoldersParams>,
) -> ApiResult<axum::Json<HoldersView>> {
    let id: uuid::Uuid = path_id(&id)?;
    let w = state.watched.watched_one(caller.org_id, id).await?;
    Ok(axum::Json(
        holders(&state, caller.org_id, w.address, &params).await?,
    ))
}

/// A watched contract's indexed transfers, newest first.
#[utoipa::path(get, path = "/v1/watched-contracts/{id}/transfers", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "watched contract id"), HistoryParams),
    responses((status = 200, body = ListView<TransferView>)))]
async fn watched_transfers(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> ApiResult<axum::Json<ListView<TransferView>>> {
    let id: uuid::Uuid = path_id(&id)?;
    let w = state.watched.watched_one(caller.org_id, id).await?;
    Ok(axum::Json(transfers(&state, w.address, &params).await?))
}
