//! The caller's organization, and its compliance defaults: the off-chain
//! transfer rules (investors per country, velocity, structuring) for every
//! token whose rule-set version leaves them unset.

use std::collections::BTreeMap;

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::org::Organization;
use rwa_domain::rule_set::ComplianceDefaults;
use rwa_domain::session::FingerprintMode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Json;
use crate::routes::rule_sets::{
    StructuringBody, VelocityBody, caps_view, offchain_draft, structuring_view, velocity_view,
};
use crate::schema::{CountryCaps, integer, object};
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_org, update_org))
}

/// The organization's off-chain transfer rules for tokens whose version
/// leaves them unset (a token's cap for a country, each velocity limit and
/// its structuring rule replace the default's).
#[derive(Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefaultsBody {
    /// Most investors per country holding a token at once (`{"US": 99}`).
    #[serde(default, deserialize_with = "integer::map")]
    #[schema(value_type = CountryCaps)]
    max_investors_per_country: BTreeMap<String, i64>,
    #[serde(default, deserialize_with = "object::optional")]
    velocity: Option<VelocityBody>,
    #[serde(default, deserialize_with = "object::optional")]
    structuring: Option<StructuringBody>,
}

impl From<&ComplianceDefaults> for DefaultsBody {
    fn from(d: &ComplianceDefaults) -> Self {
        Self {
            max_investors_per_country: caps_view(&d.max_investors_per_country),
            velocity: velocity_view(&d.velocity),
            structuring: structuring_view(&d.structuring),
        }
    }
}

/// An organization.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrgView {
    id: uuid::Uuid,
    name: String,
    compliance_defaults: DefaultsBody,
    /// What happens when a session's token comes from another client:
    /// `strict` (another user-agent family or network revokes the session),
    /// `lenient` (another user-agent family revokes it; another network is
    /// recorded in the audit trail) or `off`.
    #[schema(pattern = "^(strict|lenient|off)$")]
    session_fingerprint: &'static str,
    /// Its rate-limit tier, set by the platform's operator (`rwa org
    /// set-tier`); absent: the configured default tier.
    rate_tier: Option<String>,
    created_at: DateTime<Utc>,
}

fn view(o: Organization, defaults: &ComplianceDefaults) -> OrgView {
    OrgView {
        id: o.id.as_uuid(),
        name: o.name,
        compliance_defaults: defaults.into(),
        session_fingerprint: o.session_fingerprint.as_str(),
        rate_tier: o.rate_tier,
        created_at: o.created_at,
    }
}

/// The organization the credential belongs to.
#[utoipa::path(get, path = "/v1/org", tag = "organization",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    responses((status = 200, body = OrgView)))]
async fn get_org(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
) -> ApiResult<axum::Json<OrgView>> {
    let org = state.orgs.get(caller.org_id).await?;
    let defaults = state.rule_sets.defaults(caller.org_id).await?;
    Ok(axum::Json(view(org, &defaults)))
}

/// Body of `PATCH /v1/org`: each field given replaces the current value
/// (`{}` changes nothing).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateOrg {
    /// Replaces the compliance defaults whole (`{}`: none).
    #[serde(default, deserialize_with = "object::optional")]
    compliance_defaults: Option<DefaultsBody>,
    /// The session fingerprint mode (see `OrgView`).
    #[serde(default)]
    #[schema(pattern = "^(strict|lenient|off)$")]
    session_fingerprint: Option<String>,
}

/// Changes the organization's compliance defaults or its session
/// fingerprint mode (admins only). Transfers checked from now on use the
/// defaults (audited, with an `org.compliance_defaults_changed` event); the
/// mode applies to every session's next request (audited).
#[utoipa::path(patch, path = "/v1/org", tag = "organization",
    security(("api_key" = ["admin"])),
    request_body = UpdateOrg,
    responses((status = 200, body = OrgView)))]
async fn update_org(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Json(body): Json<UpdateOrg>,
) -> ApiResult<axum::Json<OrgView>> {
    let mode = body
        .session_fingerprint
        .as_deref()
        .map(str::parse::<FingerprintMode>)
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let defaults = body
        .compliance_defaults
        .map(|d| {
            let draft = offchain_draft(d.max_investors_per_country, d.velocity, d.structuring);
            ComplianceDefaults::parse(&draft).map_err(|errors| {
                ApiError::Validation(errors.into_iter().map(FieldError::from).collect())
            })
        })
        .transpose()?;
    if let Some(defaults) = defaults {
        state
            .rule_sets
            .set_defaults(caller.org_id, &defaults, &caller.actor())
            .await?;
    }
    if let Some(mode) = mode {
        state
            .orgs
            .set_session_fingerprint(caller.org_id, mode, &caller.actor())
            .await?;
    }
    let org = state.orgs.get(caller.org_id).await?;
    let defaults = state.rule_sets.defaults(caller.org_id).await?;
    Ok(axum::Json(view(org, &defaults)))
}
