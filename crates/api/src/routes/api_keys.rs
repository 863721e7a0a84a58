//! API keys of the caller's organization: create (the secret is returned once),
//! list (never the secret), revoke (effective on the next request).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::api_key::{ApiKey, NewApiKey, parse_label};
use rwa_domain::network::AllowedNetworks;
use rwa_domain::page::PageRequest;
use rwa_domain::{ApiKeyId, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(revoke_key))
}

/// An API key, without its secret.
#[derive(Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: uuid::Uuid,
    role: String,
    label: Option<String>,
    /// The first characters of the key, to recognise it.
    prefix: String,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    /// The user who created the key and as whom it acts (absent: created
    /// with another key or at the command line).
    user_id: Option<uuid::Uuid>,
    /// The networks the key may be used from (empty: anywhere).
    allowed_cidrs: Vec<String>,
    /// The client certificate subject the key is bound to (mutual TLS).
    cert_subject: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.as_uuid(),
            role: k.role.as_str().to_owned(),
            label: k.label,
            prefix: k.prefix,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
            user_id: k.user_id.map(|u| u.as_uuid()),
            allowed_cidrs: k.allowed_cidrs.to_strings(),
            cert_subject: k.cert_subject,
        }
    }
}

/// A new key. `api_key` is shown this once and cannot be retrieved again.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedApiKey {
    #[serde(flatten)]
    key: ApiKeyView,
    /// The secret: `rwa_` followed by 40 characters.
    api_key: String,
}

/// Body of `POST /v1/api-keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApiKey {
    /// The role the key acts with.
    #[schema(pattern = "^(admin|operator|compliance|auditor)$")]
    role: String,
    /// Optional label: at most 100 characters, no control characters; stored
    /// without surrounding spaces (blank: no label).
    #[serde(default)]
    #[schema(max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    label: Option<String>,
    /// CIDR ranges (or single addresses) the key may be used from; a
    /// request from elsewhere is 403 and a security event. Absent or empty:
    /// anywhere. Fixed for the key's life.
    #[serde(default)]
    #[schema(max_items = 50)]
    allowed_cidrs: Option<Vec<CidrText>>,
    /// Binds the key to a client certificate's subject, as the service
    /// prints it (`CN=fund-admin, O=Acme Fund`): over mutual TLS that
    /// certificate authenticates as the key without a bearer, and the key's
    /// secret works only over a connection that presented it. One key per
    /// subject (409).
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
    )]
    cert_subject: Option<String>,
}

/// A CIDR range such as `203.0.113.0/24` or `2001:db8::/48`, or one address.
#[derive(Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(max_length = 43, pattern = "^[0-9a-fA-F:.]+(/[0-9]{1,3})?$")]
pub(crate) struct CidrText(String);

/// Parses an allow-list sent in `field`.
pub(crate) fn allowed_networks(
    field: &str,
    raw: Option<&[CidrText]>,
) -> Result<AllowedNetworks, rwa_domain::ValidationError> {
    let raw: Vec<String> = raw
        .unwrap_or_default()
        .iter()
        .map(|c| c.0.clone())
        .collect();
    AllowedNetworks::parse(field, &raw)
}

/// Page parameters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

impl ListParams {
    pub(crate) fn page(&self) -> Result<PageRequest, ApiError> {
        Ok(PageRequest::parse(self.limit, self.cursor.as_deref())?)
    }
}

/// Creates a key for the caller's organization. A key created by a user
/// (with an access token, or with a key of that user) acts as that user:
/// four-eyes counts it as the user, it stops when the user is disabled or
/// deleted, and it may do only what the user's current role also allows.
#[utoipa::path(post, path = "/v1/api-keys", tag = "api-keys",
    security(("api_key" = ["admin"])),
    request_body = CreateApiKey,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = 409, description = "`/problems/conflict`: another key is bound to `cert_subject`",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_key(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Json(body): Json<CreateApiKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedApiKey>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let role = body
        .role
        .parse::<Role>()
        .map_err(|e| errors.push(e.into()))
        .ok();
    let label = parse_label(body.label.as_deref())
        .map_err(|e| errors.push(e.into()))
        .ok();
    let cidrs = allowed_networks("allowed_cidrs", body.allowed_cidrs.as_deref())
        .map_err(|e| errors.push(e.into()))
        .ok();
    if let Some(subject) = &body.cert_subject
        && (subject.is_empty()
            || subject.chars().count() > 1024
            || subject.chars().any(char::is_control))
    {
        errors.push(FieldError {
            field: "cert_subject".into(),
            message: "must be 1 to 1024 characters without control characters".into(),
        });
    }
    let (Some(role), Some(label), Some(cidrs), true) = (role, label, cidrs, errors.is_empty())
    else {
        return Err(ApiError::Validation(errors));
    };
    let (mut record, secret) = NewApiKey::generate(role, label);
    record.user = caller.user_id;
    record.allowed_cidrs = cidrs;
    record.cert_subject = body.cert_subject.clone();
    let key = state
        .keys
        .create(caller.org_id, &record, &caller.actor())
        .await
        .map_err(|e| match e {
            rwa_domain::RepoError::Conflict(_) => ApiError::Conflict(
                "another API key is bound to this client certificate subject".into(),
            ),
            e => e.into(),
        })?;
    let created = CreatedApiKey {
        key: key.into(),
        api_key: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Lists the organization's keys, revoked ones included, oldest first.
#[utoipa::path(get, path = "/v1/api-keys", tag = "api-keys",
    security(("api_key" = ["admin", "auditor"])),
    params(ListParams),
    responses((status = 200, body = ListView<ApiKeyView>)))]
async fn list_keys(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<ApiKeyView>>> {
    let page = state.keys.list(caller.org_id, params.page()?).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// Revokes a key; requests with it fail from the next one on. Idempotent.
#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "api-keys",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "key id")),
    responses((status = 200, body = ApiKeyView)))]
async fn revoke_key(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKeyView>> {
    let id: ApiKeyId = path_id(&id)?;
    let key = state
        .keys
        .revoke(caller.org_id, id, &caller.actor())
        .await?;
    Ok(axum::Json(key.into()))
}
