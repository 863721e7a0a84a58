//! A token's versioned transfer rules: the rules now
//! (`GET /v1/tokens/{id}/compliance`), a new version (`PUT`, admin or
//! compliance), and every version (`GET …/compliance/versions`). A
//! version's off-chain rules apply at once; its on-chain rules wait for
//! the four-eyes `rule_set_change` operation the version creates, and apply
//! once it settles. The organization's defaults are on `/v1/org`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::TokenId;
use rwa_domain::compliance::{RuleSet, Structuring, Velocity};
use rwa_domain::operation::OperationStatus;
use rwa_domain::rule_set::{
    CurrentRules, OffchainDraft, Put, RuleSetDraft, RuleSetVersion, StructuringDraft, VelocityDraft,
};
use rwa_domain::token::ComplianceDraft;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::routes::api_keys::ListParams;
use crate::schema::{CountryCaps, CountryCode, PositiveUint256, integer, object};
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(get_rules, put_rules))
        .routes(routes!(list_versions))
}

/// Velocity limits per sending investor (each absent: the organization's
/// default, or none).
#[derive(Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VelocityBody {
    /// Transfers sent per rolling 24 hours.
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    daily_count: Option<i64>,
    /// Base units sent per rolling 24 hours.
    #[serde(default)]
    #[schema(value_type = Option<PositiveUint256>)]
    daily_volume: Option<String>,
    /// Transfers sent per rolling 30 days.
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    monthly_count: Option<i64>,
    /// Base units sent per rolling 30 days.
    #[serde(default)]
    #[schema(value_type = Option<PositiveUint256>)]
    monthly_volume: Option<String>,
}

/// Structuring: `count` transfers by one investor within `window_seconds`,
/// each at least `lower_percent` % of `threshold` and below it; the one
/// completing the pattern is refused.
#[derive(Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StructuringBody {
    /// The reporting threshold, base units.
    #[schema(value_type = PositiveUint256)]
    threshold: String,
    /// Lower edge of the watched band, percent of the threshold.
    #[serde(deserialize_with = "integer::required")]
    #[schema(minimum = 1, maximum = 99)]
    lower_percent: i64,
    /// The window, seconds (at most a year).
    #[serde(deserialize_with = "integer::required")]
    #[schema(minimum = 1, maximum = 31_622_400)]
    window_seconds: i64,
    /// Transfers in the band within the window that amount to structuring.
    #[serde(deserialize_with = "integer::required")]
    #[schema(minimum = 2, maximum = 1000)]
    count: i64,
}

/// A token's transfer rules. The first five are enforced by the token's
/// compliance contract too (a receiver must be in `country_allow` when it
/// is not empty, and not in `country_block`); the last three only here.
/// An absent off-chain rule falls back to the organization's default.
#[derive(Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSetBody {
    /// Countries receivers must be in (empty or absent: any country), each once.
    #[serde(default)]
    #[schema(value_type = BTreeSet<CountryCode>)]
    country_allow: Vec<String>,
    /// Countries receivers must not be in, each once.
    #[serde(default)]
    #[schema(value_type = BTreeSet<CountryCode>)]
    country_block: Vec<String>,
    /// Most base units one investor may hold over all their wallets
    /// (absent: no limit).
    #[serde(default)]
    #[schema(value_type = Option<PositiveUint256>)]
    max_balance_per_investor: Option<String>,
    /// Most investors holding the token at once (absent: no limit).
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    max_holders: Option<i64>,
    /// Seconds a wallet cannot send after each mint to it (absent: 0), at
    /// most 100 years.
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(minimum = 0, maximum = 3_153_600_000_i64)]
    lockup_seconds: Option<i64>,
    /// Most investors per country holding the token at once (`{"US": 99}`).
    #[serde(default, deserialize_with = "integer::map")]
    #[schema(value_type = CountryCaps)]
    max_investors_per_country: BTreeMap<String, i64>,
    #[serde(default, deserialize_with = "object::optional")]
    velocity: Option<VelocityBody>,
    #[serde(default, deserialize_with = "object::optional")]
    structuring: Option<StructuringBody>,
}

/// The off-chain rules of an organization's defaults, as received.
pub(crate) fn offchain_draft(
    max_investors_per_country: BTreeMap<String, i64>,
    velocity: Option<VelocityBody>,
    structuring: Option<StructuringBody>,
) -> OffchainDraft {
    OffchainDraft {
        max_investors_per_country,
        velocity: velocity.map(|v| VelocityDraft {
            daily_count: v.daily_count,
            daily_volume: v.daily_volume,
            monthly_count: v.monthly_count,
            monthly_volume: v.monthly_volume,
        }),
        structuring: structuring.map(|s| StructuringDraft {
            threshold: s.threshold,
            lower_percent: s.lower_percent,
            window_seconds: s.window_seconds,
            count: s.count,
        }),
    }
}

impl From<RuleSetBody> for RuleSetDraft {
    fn from(b: RuleSetBody) -> Self {
        RuleSetDraft {
            onchain: ComplianceDraft {
                country_allow: b.country_allow,
                country_block: b.country_block,
                max_balance_per_investor: b.max_balance_per_investor,
                max_holders: b.max_holders,
                lockup_seconds: b.lockup_seconds,
            },
            offchain: offchain_draft(b.max_investors_per_country, b.velocity, b.structuring),
        }
    }
}

/// The velocity limits shown (none when every one is unset).
pub(crate) fn velocity_view(v: &Velocity) -> Option<VelocityBody> {
    (*v != Velocity::default()).then(|| VelocityBody {
        daily_count: v.daily_count.map(|n| n as i64),
        daily_volume: v.daily_volume.map(|a| a.to_string()),
        monthly_count: v.monthly_count.map(|n| n as i64),
        monthly_volume: v.monthly_volume.map(|a| a.to_string()),
    })
}

/// The structuring rule shown.
pub(crate) fn structuring_view(s: &Option<Structuring>) -> Option<StructuringBody> {
    s.as_ref().map(|s| StructuringBody {
        threshold: s.threshold.to_string(),
        lower_percent: i64::from(s.lower_percent),
        window_seconds: s.window_seconds as i64,
        count: s.count as i64,
    })
}

/// Countries' caps shown.
pub(crate) fn caps_view(
    caps: &BTreeMap<rwa_domain::country::Country, u64>,
) -> BTreeMap<String, i64> {
    caps.iter()
        .map(|(c, n)| (c.to_string(), *n as i64))
        .collect()
}

impl From<&RuleSet> for RuleSetBody {
    fn from(r: &RuleSet) -> Self {
        RuleSetBody {
            country_allow: r.country_allow.iter().map(|c| c.to_string()).collect(),
            country_block: r.country_block.iter().map(|c| c.to_string()).collect(),
            max_balance_per_investor: r.max_balance_per_investor.map(|a| a.to_string()),
            max_holders: r.max_holders.map(|n| n as i64),
            lockup_seconds: Some(r.lockup_seconds as i64),
            max_investors_per_country: caps_view(&r.max_investors_per_country),
            velocity: velocity_view(&r.velocity),
            structuring: structuring_view(&r.structuring),
        }
    }
}

/// One version of a token's rules.
#[derive(Serialize, ToSchema)]
pub(crate) struct RuleSetVersionView {
    id: uuid::Uuid,
    token_id: uuid::Uuid,
    /// 1 for the rules the token was deployed with, then one more per change.
    version: u32,
    /// The rules as stored (absent off-chain rules fall back to the
    /// organization's defaults).
    rules: RuleSetBody,
    /// Its on-chain rules: `unchanged` (already in force when it was
    /// stored), or its operation's status: `awaiting_approval`, `pending`,
    /// `submitted`, `confirmed`, `applied` (settled), `failed` or
    /// `rejected`.
    onchain_status: String,
    /// The `rule_set_change` operation carrying its on-chain rules (absent:
    /// `unchanged`); several versions may share one when only their
    /// off-chain rules differ.
    operation_id: Option<uuid::Uuid>,
    /// Who stored it (`deployment` for version 1).
    created_by: String,
    created_at: DateTime<Utc>,
}

impl From<RuleSetVersion> for RuleSetVersionView {
    fn from(v: RuleSetVersion) -> Self {
        let onchain_status = match v.operation {
            None => "unchanged".to_owned(),
            Some((_, OperationStatus::Settled)) => "applied".to_owned(),
            Some((_, status)) => status.as_str().to_owned(),
        };
        Self {
            id: v.id,
            token_id: v.token_id.as_uuid(),
            version: v.version,
            rules: RuleSetBody::from(&v.rules),
            onchain_status,
            operation_id: v.operation.map(|(id, _)| id),
            created_by: v.created_by,
            created_at: v.created_at,
        }
    }
}

/// A token's rules now.
#[derive(Serialize, ToSchema)]
pub(crate) struct CurrentRulesView {
    /// The latest version: its off-chain rules are in force.
    latest: RuleSetVersionView,
    /// The version whose on-chain rules the compliance contract enforces.
    onchain_rule_set_version: u32,
    /// What transfers are checked against now: the on-chain rules in force,
    /// the latest version's off-chain rules, and the organization's
    /// defaults for what it leaves unset.
    in_force: RuleSetBody,
}

impl From<CurrentRules> for CurrentRulesView {
    fn from(c: CurrentRules) -> Self {
        Self {
            in_force: RuleSetBody::from(&c.in_force),
            onchain_rule_set_version: c.onchain_version,
            latest: c.latest.into(),
        }
    }
}

/// The token's rules now: the latest version, the version whose on-chain
/// rules are in force, and what transfers are checked against.
#[utoipa::path(get, path = "/v1/tokens/{id}/compliance", tag = "tokens",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id")),
    responses((status = 200, body = CurrentRulesView)))]
async fn get_rules(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<CurrentRulesView>> {
    let id: TokenId = path_id(&id)?;
    let current = state.rule_sets.current(caller.org_id, id).await?;
    Ok(axum::Json(current.into()))
}

/// Stores a new version of the token's rules (admin or compliance). Its
/// off-chain rules apply to transfers checked from now on. When its
/// on-chain rules differ from those the contract enforces, it also creates
/// a `rule_set_change` operation (`awaiting_approval` until another admin
/// approves it at `POST /v1/operations/{id}/approve`); they apply once it
/// settles. The same rules as the latest version: 200 with that version,
/// nothing stored.
#[utoipa::path(put, path = "/v1/tokens/{id}/compliance", tag = "tokens",
    security(("api_key" = ["admin", "compliance"])),
    params(("id" = uuid::Uuid, Path, description = "token id")),
    request_body = RuleSetBody,
    responses(
        (status = 201, body = RuleSetVersionView, description = "a new version"),
        (status = 200, body = RuleSetVersionView, description = "the latest version, equal to the body"),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: another version's change of the on-chain rules is on its way, or the token is not deployed and the on-chain rules would change"),
    ))]
async fn put_rules(
    caller: Authorized<roles::AdminOrCompliance>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<RuleSetBody>,
) -> ApiResult<(StatusCode, axum::Json<RuleSetVersionView>)> {
    let id: TokenId = path_id(&id)?;
    let rules = RuleSet::parse(&body.into()).map_err(|errors| {
        ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
    })?;
    let put = state
        .rule_sets
        .put(caller.org_id, id, &rules, &caller.actor())
        .await?;
    Ok(match put {
        Put::Created(v) => (StatusCode::CREATED, axum::Json(v.into())),
        Put::Unchanged(v) => (StatusCode::OK, axum::Json(v.into())),
    })
}

/// Every version of the token's rules, oldest first.
#[utoipa::path(get, path = "/v1/tokens/{id}/compliance/versions", tag = "tokens",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "token id"), ListParams),
    responses((status = 200, body = ListView<RuleSetVersionView>)))]
async fn list_versions(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<RuleSetVersionView>>> {
    let id: TokenId = path_id(&id)?;
    let page = state
        .rule_sets
        .versions(caller.org_id, id, params.page()?)
        .await?;
    Ok(axum::Json(ListView::from_page(page)))
}
