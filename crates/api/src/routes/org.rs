//! The caller's organization.

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::org::Organization;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::ApiResult;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(get_org))
}

/// An organization.
#[derive(Serialize, ToSchema)]
pub(crate) struct OrgView {
    id: uuid::Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

impl From<Organization> for OrgView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id.as_uuid(),
            name: o.name,
            created_at: o.created_at,
        }
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
    Ok(axum::Json(state.orgs.get(caller.org_id).await?.into()))
}
