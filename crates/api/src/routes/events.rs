//! The organization's domain events in commit order, for polling:
//! `GET /v1/events?after=SEQ`. Every state change appends its event in the
//! same transaction as the change, and `seq` is assigned in commit order, so
//! a reader that passes the last `seq` it saw never misses one.

use axum::extract::State;
use chrono::{DateTime, Utc};
use rwa_domain::event::{Event, TypeFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::Query;
use crate::state::ApiState;

/// Largest page.
const MAX_LIMIT: u32 = 200;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list_events))
}

/// One event.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventView {
    /// Position in commit order, from 1, without gaps across the platform;
    /// an organization sees its own, in order.
    seq: i64,
    id: uuid::Uuid,
    /// `<noun>.<state>`, e.g. `investor.kyc_approved`.
    #[serde(rename = "type")]
    kind: String,
    org_id: uuid::Uuid,
    created_at: DateTime<Utc>,
    /// The subject as it is after the change (ids, never personal data).
    data: serde_json::Value,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            seq: e.seq,
            id: e.id.as_uuid(),
            kind: e.kind,
            org_id: e.org_id.as_uuid(),
            created_at: e.created_at,
            data: e.data,
        }
    }
}

/// A page of events.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventPage {
    items: Vec<EventView>,
    /// The last `seq` of this page (or the `after` given when it is empty):
    /// pass it as `after` to continue.
    next_cursor: String,
}

/// Where to start and how many.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventParams {
    /// Only events with a greater `seq` (default 0: from the first).
    #[param(minimum = 0)]
    after: Option<i64>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// One type (`investor.kyc_approved`) or every type of a noun (`investor.*`).
    #[serde(rename = "type")]
    #[param(rename = "type", pattern = r"^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*)$")]
    kind: Option<String>,
}

/// The organization's events in commit order.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    security(("api_key" = ["admin", "operator", "compliance", "auditor"])),
    params(EventParams),
    responses((status = 200, body = EventPage)))]
async fn list_events(
    caller: Authorized<roles::Anyone>,
    State(state): State<ApiState>,
    Query(params): Query<EventParams>,
) -> ApiResult<axum::Json<EventPage>> {
    let mut errors = Vec::new();
    let after = params.after.unwrap_or(0);
    if after < 0 {
        errors.push(FieldError {
            field: "after".into(),
            message: "must be 0 or more".into(),
        });
    }
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(FieldError {
            field: "limit".into(),
            message: format!("must be 1 to {MAX_LIMIT}"),
        });
    }
    let filter = params
        .kind
        .as_deref()
        .map(TypeFilter::parse)
        .transpose()
        .map_err(|e| errors.push(FieldError::from(e)))
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let events = state
        .events
        .list(caller.org_id, after, limit, filter.as_ref())
        .await?;
    let next = events.last().map_or(after, |e| e.seq);
    Ok(axum::Json(EventPage {
        items: events.into_iter().map(Into::into).collect(),
        next_cursor: next.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams;

    /// The parameter's pattern is the domain's rule.
    #[test]
    fn the_type_pattern_is_the_domains() {
        let params = super::EventParams::into_params(|| None);
        let kind = params.iter().find(|p| p.name == "type").unwrap();
        let schema = serde_json::to_value(&kind.schema).unwrap();
        assert_eq!(schema["pattern"], rwa_domain::event::TYPE_FILTER_PATTERN);
    }
}
