//! Webhook endpoints of the caller's organization (admin; auditors read):
//! register (the signing secret is returned once), list, get, change, remove,
//! rotate the secret (both signatures during the overlap), inspect every
//! delivery attempt, and replay one delivery or every event from a `seq`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::webhook::{
    Delivery, EventSelector, NewWebhook, Webhook, WebhookChange, generate_secret,
    parse_description, parse_url,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::routes::api_keys::ListParams;
use crate::routes::investors::not_null;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(replay_delivery))
        .routes(routes!(replay_from))
}

/// An event type pattern: `*`, `<noun>.*` or `<noun>.<state>`.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(transparent)]
#[schema(
    max_length = 100,
    pattern = r"^(\*|[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*))$"
)]
pub(crate) struct EventPattern(pub(crate) String);

/// A webhook endpoint (never its secret).
#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookView {
    id: uuid::Uuid,
    url: String,
    /// The event types delivered.
    events: Vec<String>,
    description: Option<String>,
    /// Whether deliveries run.
    enabled: bool,
    /// Why the service turned it off (failing for longer than allowed).
    disabled_reason: Option<String>,
    /// Every event up to this `seq` was delivered (or not selected).
    delivered_seq: i64,
    /// Since when the event at the head of the outbox fails.
    failing_since: Option<DateTime<Utc>>,
    /// Failed attempts at that event.
    attempts: i32,
    /// When that event is tried again.
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    last_delivered_at: Option<DateTime<Utc>>,
    /// Until when deliveries carry the previous secret's signature too.
    previous_secret_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url,
            events: w.events.to_strings(),
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            delivered_seq: w.delivered_seq,
            failing_since: w.failing_since,
            attempts: w.attempts,
            next_attempt_at: w.next_attempt_at,
            last_error: w.last_error,
            last_delivered_at: w.last_delivered_at,
            previous_secret_expires_at: w.previous_secret_expires_at,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookWithSecret {
    #[serde(flatten)]
    webhook: WebhookView,
    /// `whsec_` and 64 hex characters: the HMAC-SHA256 key of `Rwa-Signature`.
    secret: String,
}

/// Body of `POST /v1/webhooks`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateWebhook {
    /// Where events are POSTed: `https://` (`http://` outside production),
    /// no credentials, no fragment, at most 2048 characters.
    #[schema(min_length = 1, max_length = 2048)]
    url: String,
    /// 1 to 50 event type patterns; `["*"]` for every event.
    #[schema(min_items = 1, max_items = 50)]
    events: Vec<EventPattern>,
    /// At most 200 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    description: Option<String>,
    /// Start delivering at once (default true).
    #[serde(default)]
    enabled: Option<bool>,
}

/// Body of `PATCH /v1/webhooks/{id}`: the fields to change (at least one).
/// Turning a disabled endpoint on clears its failure and retries its head
/// event now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(crate) struct UpdateWebhook {
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, min_length = 1, max_length = 2048)]
    url: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false, min_items = 1, max_items = 50)]
    events: Option<Vec<EventPattern>>,
    /// Blank removes the description.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(
        nullable = false,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*$"
    )]
    description: Option<String>,
    #[serde(default, deserialize_with = "not_null")]
    #[schema(nullable = false)]
    enabled: Option<bool>,
}

fn patterns(raw: &[EventPattern]) -> Vec<String> {
    raw.iter().map(|p| p.0.clone()).collect()
}

/// Registers an endpoint. Its outbox starts after the newest event; older
/// ones can be sent with `POST /v1/webhooks/{id}/replay?from_seq=`.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    security(("api_key" = ["admin"])),
    request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecret)))]
async fn create_webhook(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Json(body): Json<CreateWebhook>,
) -> ApiResult<(StatusCode, axum::Json<WebhookWithSecret>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let url = parse_url("url", &body.url, state.settings.production)
        .map_err(|e| errors.push(e.into()))
        .ok();
    let events = EventSelector::parse("events", &patterns(&body.events))
        .map_err(|e| errors.push(e.into()))
        .ok();
    let description = parse_description("description", body.description.as_deref())
        .map_err(|e| errors.push(e.into()))
        .ok();
    let (Some(url), Some(events), Some(description), true) =
        (url, events, description, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let secret = generate_secret();
    let new = NewWebhook {
        url,
        events,
        description,
        enabled: body.enabled.unwrap_or(true),
        secret: secret.clone(),
    };
    let webhook = state
        .webhooks
        .create(caller.org_id, &new, &caller.actor())
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(WebhookWithSecret {
            webhook: webhook.into(),
            secret,
        }),
    ))
}

/// The organization's endpoints, oldest first.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    security(("api_key" = ["admin", "auditor"])),
    params(ListParams),
    responses((status = 200, body = ListView<WebhookView>)))]
async fn list_webhooks(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<WebhookView>>> {
    let page = state.webhooks.list(caller.org_id, params.page()?).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// One endpoint with its outbox's state.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    security(("api_key" = ["admin", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id")),
    responses((status = 200, body = WebhookView)))]
async fn get_webhook(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookView>> {
    let id: uuid::Uuid = path_id(&id)?;
    Ok(axum::Json(
        state.webhooks.get(caller.org_id, id).await?.into(),
    ))
}

/// Changes an endpoint.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id")),
    request_body = UpdateWebhook,
    responses((status = 200, body = WebhookView)))]
async fn update_webhook(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateWebhook>,
) -> ApiResult<axum::Json<WebhookView>> {
    let id: uuid::Uuid = path_id(&id)?;
    let mut errors: Vec<FieldError> = Vec::new();
    let mut change = WebhookChange {
        enabled: body.enabled,
        ..WebhookChange::default()
    };
    if let Some(url) = &body.url {
        change.url = parse_url("url", url, state.settings.production)
            .map_err(|e| errors.push(e.into()))
            .ok();
    }
    if let Some(events) = &body.events {
        change.events = EventSelector::parse("events", &patterns(events))
            .map_err(|e| errors.push(e.into()))
            .ok();
    }
    if let Some(description) = &body.description {
        change.description = parse_description("description", Some(description))
            .map_err(|e| errors.push(e.into()))
            .ok();
    }
    if body.url.is_none()
        && body.events.is_none()
        && body.description.is_none()
        && body.enabled.is_none()
    {
        errors.push(FieldError {
            field: "body".into(),
            message: "name at least one of url, events, description, enabled".into(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let webhook = state
        .webhooks
        .update(caller.org_id, id, &change, &caller.actor())
        .await?;
    Ok(axum::Json(webhook.into()))
}

/// Removes an endpoint and its deliveries; an attempt in flight may still
/// arrive.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id")),
    responses((status = 204, description = "removed")))]
async fn delete_webhook(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: uuid::Uuid = path_id(&id)?;
    state
        .webhooks
        .delete(caller.org_id, id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the signing secret; the new one is shown this once. Until
/// `previous_secret_expires_at` every delivery carries both signatures
/// (`t=…,v1=<new>,v1=<old>`), so receivers can switch at their pace.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id")),
    responses((status = 200, body = WebhookWithSecret)))]
async fn rotate_secret(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<WebhookWithSecret>> {
    let id: uuid::Uuid = path_id(&id)?;
    let secret = generate_secret();
    let webhook = state
        .webhooks
        .rotate_secret(
            caller.org_id,
            id,
            &secret,
            state.settings.webhook_secret_overlap,
            &caller.actor(),
        )
        .await?;
    Ok(axum::Json(WebhookWithSecret {
        webhook: webhook.into(),
        secret,
    }))
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    id: uuid::Uuid,
    webhook_id: uuid::Uuid,
    event_seq: i64,
    /// What receivers de-duplicate on (`Rwa-Event-Id`).
    event_id: uuid::Uuid,
    event_type: String,
    /// 1 for the first attempt at this event, counting up.
    attempt: i32,
    /// Asked for by a replay of one delivery.
    replay: bool,
    /// The receiver answered 2xx in time.
    succeeded: bool,
    status_code: Option<i32>,
    latency_ms: i64,
    error: Option<String>,
    /// The first 512 bytes of the answer's body.
    response_snippet: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            event_seq: d.event_seq,
            event_id: d.event_id,
            event_type: d.event_type,
            attempt: d.attempt,
            replay: d.replay,
            succeeded: d.succeeded,
            status_code: d.status_code,
            latency_ms: d.latency_ms,
            error: d.error,
            response_snippet: d.response_snippet,
            created_at: d.created_at,
        }
    }
}

/// Every attempt to deliver to the endpoint, oldest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    security(("api_key" = ["admin", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id"), ListParams),
    responses((status = 200, body = ListView<DeliveryView>)))]
async fn list_deliveries(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<DeliveryView>>> {
    let id: uuid::Uuid = path_id(&id)?;
    let page = state
        .webhooks
        .deliveries(caller.org_id, id, params.page()?)
        .await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// A replay asked for.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReplayView {
    /// The replay (its attempt appears in the deliveries with `replay: true`).
    replay_id: uuid::Uuid,
}

/// Sends a delivery's event once more, out of band (the outbox goes on).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery}/replay", tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(
        ("id" = uuid::Uuid, Path, description = "webhook id"),
        ("delivery" = uuid::Uuid, Path, description = "delivery id"),
    ),
    responses((status = 202, body = ReplayView)))]
async fn replay_delivery(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<(StatusCode, axum::Json<ReplayView>)> {
    let id: uuid::Uuid = path_id(&id)?;
    let delivery: uuid::Uuid = path_id(&delivery)?;
    let replay_id = state
        .webhooks
        .replay_delivery(caller.org_id, id, delivery, &caller.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ReplayView { replay_id })))
}

/// Query of `POST /v1/webhooks/{id}/replay`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReplayParams {
    /// The first event to send again (1 or more).
    #[param(required = true, minimum = 1)]
    from_seq: Option<i64>,
}

/// Sends again, in order, every selected event from `from_seq` on (the
/// outbox moves back to it; one already behind stays).
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "webhook id"), ReplayParams),
    responses((status = 202, body = WebhookView)))]
async fn replay_from(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Query(params): Query<ReplayParams>,
) -> ApiResult<(StatusCode, axum::Json<WebhookView>)> {
    let id: uuid::Uuid = path_id(&id)?;
    // Another organization's endpoint is 404 before the query is judged.
    state.webhooks.get(caller.org_id, id).await?;
    let Some(from_seq) = params.from_seq.filter(|n| *n >= 1) else {
        return Err(ApiError::Validation(vec![FieldError {
            field: "from_seq".into(),
            message: "required: the first event's seq, 1 or more".into(),
        }]));
    };
    let webhook = state
        .webhooks
        .replay_from(caller.org_id, id, from_seq, &caller.actor())
        .await?;
    Ok((StatusCode::ACCEPTED, axum::Json(webhook.into())))
}
