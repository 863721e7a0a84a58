//! The organization's audit trail.

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditEntry;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::ApiResult;
use crate::extract::Query;
use crate::routes::ListView;
use crate::routes::api_keys::ListParams;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// One entry of the hash-chained trail.
#[derive(Serialize, ToSchema)]
pub(crate) struct AuditView {
    seq: i64,
    id: uuid::Uuid,
    actor: String,
    action: String,
    target: String,
    data: serde_json::Value,
    created_at: DateTime<Utc>,
    prev_hash: String,
    hash: String,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            seq: e.seq,
            id: e.id.as_uuid(),
            actor: e.actor,
            action: e.action,
            target: e.target,
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::String(e.data)),
            created_at: e.created_at,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// Changes made in the organization, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    security(("api_key" = ["admin", "auditor"])),
    params(ListParams),
    responses((status = 200, body = ListView<AuditView>)))]
async fn list_audit(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<AuditView>>> {
    let page = state.audit.list(caller.org_id, params.page()?).await?;
    Ok(axum::Json(ListView::from_page(page)))
}
