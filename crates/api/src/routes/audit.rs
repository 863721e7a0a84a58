//! The organization's audit trail.

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::audit::{AuditEntry, AuditFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult};
use crate::extract::Query;
use crate::routes::ListView;
use crate::routes::transfers::time;
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
    /// The request the change came in (its `x-request-id`), if it came over HTTP.
    request_id: Option<String>,
    /// The client's address, if it came over HTTP.
    ip: Option<String>,
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
            request_id: e.request_id,
            ip: e.ip,
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

/// Filters of `GET /v1/audit`; every one given must match.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// An action (`user.created`), or every action of a noun (`auth.*`).
    #[param(max_length = 100, pattern = "^[a-z_]+(\\.([a-z_]+|\\*))?$")]
    action: Option<String>,
    /// The actor: `user:<id>`, `api_key:<id>`, `cli` or `system:<part>`.
    #[param(max_length = 100)]
    actor: Option<String>,
    /// The target, e.g. `user:<id>` or `session:<id>`.
    #[param(max_length = 200)]
    target: Option<String>,
    /// The `x-request-id` of the request the change came in.
    #[param(max_length = 128)]
    request_id: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Entries before this time (RFC 3339).
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

impl AuditParams {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        let word =
            |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        if let Some(a) = self.action.as_deref() {
            let (noun, verb) = a.split_once('.').unwrap_or((a, "*"));
            if a.len() > 100 || !word(noun) || !(verb == "*" || word(verb)) {
                return Err(ApiError::field("action", "must be `noun.verb` or `noun.*`"));
            }
        }
        for (field, value, max) in [
            ("actor", &self.actor, 100),
            ("target", &self.target, 200),
            ("request_id", &self.request_id, 128),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > max) {
                return Err(ApiError::field(
                    field,
                    format!("must be at most {max} characters"),
                ));
            }
        }
        Ok(AuditFilter {
            action: self.action.clone(),
            actor: self.actor.clone(),
            target: self.target.clone(),
            request_id: self.request_id.clone(),
            since: time(self.since.as_deref(), "since")?,
            until: time(self.until.as_deref(), "until")?,
        })
    }
}

/// Changes and security events of the organization (logins, refused roles,
/// replayed refresh tokens, …), oldest first, each with its actor, request
/// id and client address.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    security(("api_key" = ["admin", "auditor"])),
    params(AuditParams),
    responses((status = 200, body = ListView<AuditView>)))]
async fn list_audit(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> ApiResult<axum::Json<ListView<AuditView>>> {
    let page = rwa_domain::page::PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let filter = params.filter()?;
    let page = state.audit.list(caller.org_id, &filter, page).await?;
    Ok(axum::Json(ListView::from_page(page)))
}
