//! The cap table, from the indexer: holders of a token at any indexed block
//! (with the block's finality), an investor's positions over all their
//! wallets, and a token's transfer history. Every role reads. The same
//! holders and history of watched contracts are answered by
//! `watched_contracts.rs` through [`holders`] and [`transfers`].

use axum::extract::{Path, State};
use rwa_domain::chain::{Address, U256};
use rwa_domain::onchain::{
    EventKind, HolderRow, IndexState, OnchainEvent, Standard, VerifyError, VerifyTarget,
};
use rwa_domain::token::Token;
use rwa_domain::{InvestorId, OrgId, TokenId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Query, path_id};
use crate::routes::ListView;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(token_holders))
        .routes(routes!(token_transfers))
        .routes(routes!(investor_positions))
        .routes(routes!(verify_token))
}

/// Parameters of a holders page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HoldersParams {
    /// The block to answer at (default: the last indexed block); at most the
    /// last indexed block.
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    at_block: Option<u64>,
    /// Holders per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9]{0,77}:0x[0-9a-f]{40})?$")]
    cursor: Option<String>,
}

/// A holder at a block.
#[derive(Serialize, ToSchema)]
pub(crate) struct HolderView {
    /// The investor owning the wallet (absent: a wallet no investor of the
    /// organization has).
    investor_id: Option<uuid::Uuid>,
    wallet: String,
    /// The token id (ERC-721 and ERC-1155 only).
    token_id: Option<String>,
    /// Base units.
    balance: String,
    /// Base units frozen (the platform's tokens).
    frozen: String,
    /// The whole wallet frozen.
    wallet_frozen: bool,
    /// Share of the supply at that block (of the same token id), in percent.
    percentage: f64,
    /// The investor's country (ISO 3166 alpha-2).
    country: Option<String>,
}

/// Holders at a block.
#[derive(Serialize, ToSchema)]
pub(crate) struct HoldersView {
    /// The block answered for.
    block_number: u64,
    /// `finalized` at or below the chain's finalized block, `safe` at or
    /// below its safe block, `latest` above (may still be reorged).
    finality: String,
    items: Vec<HolderView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    rwa_domain::ValidationError::new(field, message).into()
}

/// The index on this server's chain, or 503 before the indexer started.
async fn index_state(state: &ApiState) -> ApiResult<IndexState> {
    state
        .index
        .system_index_state(state.chain_id)
        .await?
        .ok_or(ApiError::Unavailable)
}

fn finality(index: &IndexState, block: u64) -> &'static str {
    if block <= index.finalized {
        "finalized"
    } else if block <= index.safe {
        "safe"
    } else {
        "latest"
    }
}

fn parse_cursor(raw: Option<&str>) -> ApiResult<Option<(Option<U256>, Address)>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let bad = || invalid("cursor", "not a cursor of this list");
    let (id, wallet) = raw.split_once(':').ok_or_else(bad)?;
    let id = if id.is_empty() {
        None
    } else {
        Some(id.parse().map_err(|_| bad())?)
    };
    Ok(Some((id, wallet.parse().map_err(|_| bad())?)))
}

/// A page of holders of `contract`, each matched to the organization's
/// investor owning the wallet.
pub(crate) async fn holders(
    state: &ApiState,
    org: OrgId,
    contract: Address,
    params: &HoldersParams,
) -> ApiResult<HoldersView> {
    let index = index_state(state).await?;
    let at = params.at_block.unwrap_or(index.cursor);
    if at > index.cursor {
        // The chain may have it; the index does not yet: a state, not a
        // malformed request.
        return Err(ApiError::Conflict(format!(
            "block {at} is beyond the last indexed block {}",
            index.cursor
        )));
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 200"));
    }
    let after = parse_cursor(params.cursor.as_deref())?;
    let mut rows = state
        .index
        .holders_at(state.chain_id, contract, at, after, limit + 1)
        .await?;
    let next_cursor = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        let last = rows.last().expect("a full page");
        format!(
            "{}:{:#x}",
            last.token_id.map(|i| i.to_string()).unwrap_or_default(),
            last.wallet
        )
    });
    let mut items = Vec::with_capacity(rows.len());
    let mut supplies: Vec<(Option<U256>, U256)> = Vec::new();
    for row in rows {
        let supply = match supplies.iter().find(|(id, _)| *id == row.token_id) {
            Some((_, s)) => *s,
            None => {
                let s = state
                    .index
                    .supply_at(state.chain_id, contract, row.token_id, at)
                    .await?;
                supplies.push((row.token_id, s));
                s
            }
        };
        let investor = state.investors.find_by_wallet(org, row.wallet).await?;
        items.push(holder_view(row, supply, investor));
    }
    Ok(HoldersView {
        block_number: at,
        finality: finality(&index, at).to_owned(),
        items,
        next_cursor,
    })
}

fn holder_view(
    row: HolderRow,
    supply: U256,
    investor: Option<rwa_domain::investor::Investor>,
) -> HolderView {
    // Millionths of the supply, in integers, then percent with 4 decimals.
    let ppm = if supply.is_zero() {
        U256::ZERO
    } else {
        row.balance.saturating_mul(U256::from(1_000_000u64)) / supply
    };
    HolderView {
        investor_id: investor.as_ref().map(|i| i.id.as_uuid()),
        country: investor.as_ref().map(|i| i.country.to_string()),
        wallet: format!("{:#x}", row.wallet),
        token_id: row.token_id.map(|i| i.to_string()),
        balance: row.balance.to_string(),
        frozen: row.frozen.to_string(),
        wallet_frozen: row.wallet_frozen,
        percentage: ppm.saturating_to::<u64>() as f64 / 10_000.0,
    }
}

/// The deployed contract of a token of `org`; 409 before it is deployed.
async fn token_contract(state: &ApiState, org: OrgId, id: &str) -> ApiResult<Address> {
    let id: TokenId = path_id(id)?;
    let token: Token = state.tokens.get(org, id).await?;
    token
        .deployment
        .map(|d| d.address)
        .ok_or_else(|| ApiError::Conflict("the token is not deployed yet".into()))
}

/// Holders of the token at a block: the cap table, from the indexed chain.
#[utoipa::path(get, path = "/v1/tokens/{id}/holders", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), HoldersParams),
    responses(
        (status = 200, body = HoldersView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the token is not deployed yet, or `at_block` is beyond the last indexed block"),
    ))]
async fn token_holders(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HoldersParams>,
) -> ApiResult<axum::Json<HoldersView>> {
    let contract = token_contract(&state, caller.org_id, &id).await?;
    Ok(axum::Json(
        holders(&state, caller.org_id, contract, &params).await?,
    ))
}

/// Parameters of a history page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryParams {
    /// Transfers per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9]{1,18}:[0-9]{1,18})?$")]
    cursor: Option<String>,
}

/// An indexed transfer.
#[derive(Serialize, ToSchema)]
pub(crate) struct TransferView {
    block_number: u64,
    block_hash: String,
    tx_hash: String,
    log_index: u64,
    /// Zero address for a mint.
    from: String,
    /// Zero address for a burn.
    to: String,
    /// Token ids moved (ERC-721 and ERC-1155), pairwise with `amounts`.
    token_ids: Vec<String>,
    /// Base units moved (1 per ERC-721 id).
    amounts: Vec<String>,
    /// As for holders: `finalized`, `safe` or `latest`.
    finality: String,
}

fn transfer_view(e: OnchainEvent, index: &IndexState) -> Option<TransferView> {
    let (from, to, ids, amounts) = match e.kind {
        EventKind::Erc20Transfer { from, to, value } => (from, to, vec![], vec![value]),
        EventKind::Erc721Transfer { from, to, token_id } => {
            (from, to, vec![token_id], vec![U256::from(1u8)])
        }
        EventKind::Erc1155Transfer {
            from,
            to,
            ids,
            values,
            ..
        } => (from, to, ids, values),
        _ => return None,
    };
    Some(TransferView {
        block_number: e.block_number,
        block_hash: format!("{:#x}", e.block_hash),
        tx_hash: format!("{:#x}", e.tx_hash),
        log_index: e.log_index,
        from: format!("{from:#x}"),
        to: format!("{to:#x}"),
        token_ids: ids.iter().map(U256::to_string).collect(),
        amounts: amounts.iter().map(U256::to_string).collect(),
        finality: finality(index, e.block_number).to_owned(),
    })
}

/// A page of `contract`'s transfers, newest first.
pub(crate) async fn transfers(
    state: &ApiState,
    contract: Address,
    params: &HistoryParams,
) -> ApiResult<ListView<TransferView>> {
    let index = index_state(state).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(invalid("limit", "must be between 1 and 200"));
    }
    let before = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(raw) => {
            let bad = || invalid("cursor", "not a cursor of this list");
            let (b, l) = raw.split_once(':').ok_or_else(bad)?;
            Some((b.parse().map_err(|_| bad())?, l.parse().map_err(|_| bad())?))
        }
    };
    let mut events = state
        .index
        .transfers(state.chain_id, contract, before, limit + 1)
        .await?;
    let next_cursor = (events.len() > limit as usize).then(|| {
        events.truncate(limit as usize);
        let last = events.last().expect("a full page");
        format!("{}:{}", last.block_number, last.log_index)
    });
    Ok(ListView {
        items: events
            .into_iter()
            .filter_map(|e| transfer_view(e, &index))
            .collect(),
        next_cursor,
    })
}

/// The token's indexed transfers (mints and burns included), newest first.
#[utoipa::path(get, path = "/v1/tokens/{id}/transfers", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), HistoryParams),
    responses(
        (status = 200, body = ListView<TransferView>),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the token is not deployed yet"),
    ))]
async fn token_transfers(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> ApiResult<axum::Json<ListView<TransferView>>> {
    let contract = token_contract(&state, caller.org_id, &id).await?;
    Ok(axum::Json(transfers(&state, contract, &params).await?))
}

/// One holding of an investor.
#[derive(Serialize, ToSchema)]
pub(crate) struct PositionView {
    /// The organization's token holding it (absent: a watched contract).
    token: Option<uuid::Uuid>,
    /// The watched contract holding it (absent: a token).
    watched_contract: Option<uuid::Uuid>,
    contract: String,
    /// The token id (ERC-721 and ERC-1155 only).
    token_id: Option<String>,
    wallet: String,
    balance: String,
    frozen: String,
    wallet_frozen: bool,
}

/// An investor's positions.
#[derive(Serialize, ToSchema)]
pub(crate) struct PositionsView {
    /// The last indexed block.
    block_number: u64,
    /// Every non-empty holding of every wallet of the investor.
    items: Vec<PositionView>,
}

/// Every deployed token of `org`, with its contract.
async fn deployed_tokens(state: &ApiState, org: OrgId) -> ApiResult<Vec<(TokenId, Address)>> {
    let mut out = Vec::new();
    let mut page = rwa_domain::page::PageRequest {
        limit: 200,
        after: None,
    };
    loop {
        let got = state.tokens.list(org, page).await?;
        out.extend(
            got.items
                .iter()
                .filter_map(|t| Some((t.id, t.deployment.as_ref()?.address))),
        );
        match got.items.last() {
            Some(last) if got.next_cursor.is_some() => page.after = Some(last.id.as_uuid()),
            _ => return Ok(out),
        }
    }
}

/// The investor's positions over all their wallets, as of the last
/// indexed block, in the organization's tokens and watched contracts.
#[utoipa::path(get, path = "/v1/investors/{id}/positions", tag = "holdings",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "investor id")),
    responses((status = 200, body = PositionsView)))]
async fn investor_positions(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PositionsView>> {
    let id: InvestorId = path_id(&id)?;
    let investor = state.investors.get(caller.org_id, id).await?;
    let index = index_state(&state).await?;
    let wallets: Vec<Address> = investor.wallets.iter().map(|w| w.address).collect();
    let rows = state.index.holdings_of(state.chain_id, &wallets).await?;
    let tokens = deployed_tokens(&state, caller.org_id).await?;
    let watched = state.watched.watched(caller.org_id).await?;
    let items = rows
        .into_iter()
        .filter(|r| !r.balance.is_zero() || !r.frozen.is_zero() || r.wallet_frozen)
        .filter_map(|r| {
            let token = tokens
                .iter()
                .find(|(_, a)| *a == r.contract)
                .map(|(id, _)| *id);
            let watched = watched
                .iter()
                .find(|w| w.address == r.contract)
                .map(|w| w.id);
            (token.is_some() || watched.is_some()).then(|| PositionView {
                token: token.map(|t| t.as_uuid()),
                watched_contract: watched,
                contract: format!("{:#x}", r.contract),
                token_id: r.token_id.map(|i| i.to_string()),
                wallet: format!("{:#x}", r.wallet),
                balance: r.balance.to_string(),
                frozen: r.frozen.to_string(),
                wallet_frozen: r.wallet_frozen,
            })
        })
        .collect();
    Ok(axum::Json(PositionsView {
        block_number: index.cursor,
        items,
    }))
}

/// Parameters of a reconciliation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VerifyParams {
    /// The block to compare at (at most the last indexed block); absent:
    /// the last indexed block, once the index is within the confirmation
    /// depth of the head (503 if it does not get there within a minute).
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    at_block: Option<u64>,
}

/// A reconciliation's outcome.
#[derive(Serialize, ToSchema)]
pub(crate) struct VerifyView {
    /// The block compared.
    block_number: u64,
    /// Holdings compared (every wallet the index holds or the chain's logs
    /// name).
    checked: usize,
    /// No difference.
    agrees: bool,
    /// Every difference, in words.
    differences: Vec<String>,
}

/// Compares every indexed holding of the token with the chain's own
/// `balanceOf`, `frozenTokens` and `isFrozen` at the same block, and the
/// indexed sum with `totalSupply`. Reports; changes nothing.
#[utoipa::path(post, path = "/v1/tokens/{id}/verify", tag = "holdings",
    security(("api_key" = ["admin", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), VerifyParams),
    responses(
        (status = 200, body = VerifyView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the token is not deployed yet, or `at_block` is beyond the last indexed block"),
    ))]
async fn verify_token(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<VerifyParams>,
) -> ApiResult<axum::Json<VerifyView>> {
    let token: Token = state.tokens.get(caller.org_id, path_id(&id)?).await?;
    let deployment = token
        .deployment
        .ok_or_else(|| ApiError::Conflict("the token is not deployed yet".into()))?;
    let target = VerifyTarget {
        contract: deployment.address,
        standard: Standard::Erc20,
        from_block: deployment.block_number,
        at_block: params.at_block,
        platform_token: true,
    };
    let report = state.verifier.verify(&target).await.map_err(|e| match e {
        VerifyError::BeyondIndex { .. } => ApiError::Conflict(e.to_string()),
        VerifyError::NotStarted | VerifyError::Behind { .. } => {
            tracing::warn!(error = %e, "verification could not run");
            ApiError::Unavailable
        }
        VerifyError::Failed(reason) => {
            tracing::warn!(%reason, "verification failed");
            ApiError::Unavailable
        }
    })?;
    Ok(axum::Json(VerifyView {
        block_number: report.block_number,
        checked: report.checked,
        agrees: report.differences.is_empty(),
        differences: report.differences,
    }))
}
