//! Users of the caller's organization: created by an administrator with an
//! e-mail address, a password (checked against the policy, stored as an
//! argon2id hash, never echoed) and a role; listed, changed (role,
//! disabled) and deleted. A change takes effect at the user's next request:
//! its sessions are revoked and its keys follow its standing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use rwa_domain::password::Password;
use rwa_domain::user::{Email, NewUser, User, UserChange};
use rwa_domain::{Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Json, Query, path_id};
use crate::routes::ListView;
use crate::routes::api_keys::ListParams;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_user, update_user, delete_user))
}

/// A user, without its password.
#[derive(Serialize, ToSchema)]
pub(crate) struct UserView {
    id: uuid::Uuid,
    email: String,
    #[schema(pattern = "^(admin|operator|compliance|auditor)$")]
    role: String,
    /// A disabled user cannot log in, and its tokens and keys do not work.
    disabled: bool,
    /// Who created it (`user:<id>`, `api_key:<id>`).
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    /// The networks the user may log in and act from (empty: anywhere).
    allowed_cidrs: Vec<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id.as_uuid(),
            email: u.email,
            role: u.role.as_str().to_owned(),
            disabled: u.disabled,
            created_by: u.created_by,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
            allowed_cidrs: u.allowed_cidrs.to_strings(),
        }
    }
}

/// Body of `POST /v1/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// The login name, unique across organizations; stored lower-cased.
    #[schema(format = "email", max_length = 254)]
    email: String,
    /// 12 to 256 characters, and not guessable: a password that the
    /// zxcvbn estimator scores under 3 (common words, keyboard patterns,
    /// the e-mail address) is refused with its reason.
    #[schema(min_length = 12, max_length = 256, format = "password")]
    password: String,
    /// The role the user acts with.
    #[schema(pattern = "^(admin|operator|compliance|auditor)$")]
    role: String,
}

/// Creates a user (admins only). The password is hashed with argon2id and
/// never returned.
#[utoipa::path(post, path = "/v1/users", tag = "users",
    security(("api_key" = ["admin"])),
    request_body = CreateUser,
    responses(
        (status = 201, body = UserView),
        (status = 409, description = "`/problems/conflict`: a user with this e-mail address exists",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_user(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Json(body): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|e| errors.push(e.into()))
        .ok();
    let role = body
        .role
        .parse::<Role>()
        .map_err(|e| errors.push(e.into()))
        .ok();
    // The policy's estimate and the hash are CPU work: off the async workers.
    let hints: Vec<String> = email
        .as_ref()
        .map(|e| e.hints().into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    let password = body.password;
    let hashed = tokio::task::spawn_blocking(move || {
        let hints: Vec<&str> = hints.iter().map(String::as_str).collect();
        Password::new(&password, &hints).map(|p| p.hash())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password hashing: {e}")))?;
    let hash = hashed.map_err(|e| errors.push(e.into())).ok();
    let (Some(email), Some(role), Some(password_hash)) = (email, role, hash) else {
        return Err(ApiError::Validation(errors));
    };
    let new = NewUser {
        id: UserId::new(),
        email,
        role,
        password_hash,
    };
    let user = state
        .users
        .create(caller.org_id, &new, &caller.actor())
        .await?;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

/// The organization's users, oldest first (deleted ones left out).
#[utoipa::path(get, path = "/v1/users", tag = "users",
    security(("api_key" = ["admin", "auditor"])),
    params(ListParams),
    responses((status = 200, body = ListView<UserView>)))]
async fn list_users(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Query(params): Query<ListParams>,
) -> ApiResult<axum::Json<ListView<UserView>>> {
    let page = state.users.list(caller.org_id, params.page()?).await?;
    Ok(axum::Json(ListView::from_page(page)))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "users",
    security(("api_key" = ["admin", "auditor"])),
    params(("id" = uuid::Uuid, Path, description = "user id")),
    responses((status = 200, body = UserView)))]
async fn get_user(
    caller: Authorized<roles::AdminOrAuditor>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserView>> {
    let id: UserId = path_id(&id)?;
    Ok(axum::Json(state.users.get(caller.org_id, id).await?.into()))
}

/// Body of `PATCH /v1/users/{id}`: each field given replaces the current value.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// The new role.
    #[schema(pattern = "^(admin|operator|compliance|auditor)$")]
    #[serde(default)]
    role: Option<String>,
    /// `true` disables the user, `false` enables it again.
    #[serde(default)]
    disabled: Option<bool>,
    /// CIDR ranges (or single addresses) the user may log in and act from,
    /// its keys included; a request from elsewhere is 403 and a security
    /// event. An empty list lifts the restriction.
    #[serde(default)]
    #[schema(max_items = 50)]
    allowed_cidrs: Option<Vec<super::api_keys::CidrText>>,
}

/// Changes a user's role, state or allow-list (admins only). A change of
/// role or state revokes the user's sessions and applies to its keys from their next request. Nobody
/// changes or deletes their own user (409), so an administrator cannot lock
/// the organization out by mistake.
#[utoipa::path(patch, path = "/v1/users/{id}", tag = "users",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "user id")),
    request_body = UpdateUser,
    responses(
        (status = 200, body = UserView),
        (status = 409, description = "`/problems/conflict`: the caller's own user",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn update_user(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
    Json(body): Json<UpdateUser>,
) -> ApiResult<axum::Json<UserView>> {
    let id: UserId = path_id(&id)?;
    let role = body
        .role
        .as_deref()
        .map(str::parse::<Role>)
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e.into()]))?;
    let allowed_cidrs = body
        .allowed_cidrs
        .as_deref()
        .map(|raw| super::api_keys::allowed_networks("allowed_cidrs", Some(raw)))
        .transpose()
        .map_err(|e| ApiError::Validation(vec![e.into()]))?;
    not_self(&caller, id)?;
    let change = UserChange {
        role,
        disabled: body.disabled,
        allowed_cidrs,
    };
    let user = state
        .users
        .update(caller.org_id, id, &change, &caller.actor())
        .await?;
    Ok(axum::Json(user.into()))
}

/// Deletes a user for good (admins only): its sessions end and its keys
/// stop working. The audit trail keeps naming it.
#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users",
    security(("api_key" = ["admin"])),
    params(("id" = uuid::Uuid, Path, description = "user id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 409, description = "`/problems/conflict`: the caller's own user",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn delete_user(
    caller: Authorized<roles::Admin>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: UserId = path_id(&id)?;
    not_self(&caller, id)?;
    state
        .users
        .delete(caller.org_id, id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn not_self(caller: &Authorized<roles::Admin>, id: UserId) -> Result<(), ApiError> {
    if caller.user_id == Some(id) {
        return Err(ApiError::Conflict(
            "you cannot change or delete your own user; ask another administrator".into(),
        ));
    }
    Ok(())
}
