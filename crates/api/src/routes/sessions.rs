//! Logging in and out: `POST /v1/auth/login` checks a user's password and
//! opens a session (an access token and its first refresh token);
//! `POST /v1/auth/refresh` spends a refresh token for the next one and a new
//! access token, and revokes the session when a spent token comes back (a
//! replay) or, under the organization's fingerprint mode, when another
//! client presents it; `POST /v1/auth/logout` ends the session. None of
//! these takes a bearer credential: the password or the refresh token is
//! the credential. Every outcome that matters is in the audit trail.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rwa_domain::actor::{Principal, RequestContext};
use rwa_domain::api_key::KeyDigest;
use rwa_domain::password::Password;
use rwa_domain::session::{NewSession, RefreshSecret, Refreshed};
use rwa_domain::user::{Email, LoginCandidate};
use rwa_domain::{Actor, SessionId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{fingerprint, request_context};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// The request's parts that sessions look at, without consuming the body.
pub(crate) struct Client {
    request: RequestContext,
    fingerprint: rwa_domain::session::Fingerprint,
}

impl axum::extract::FromRequestParts<ApiState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &ApiState) -> Result<Self, ApiError> {
        Ok(Client {
            request: request_context(parts),
            fingerprint: fingerprint(parts),
        })
    }
}

/// Body of `POST /v1/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    /// The user's e-mail address.
    #[schema(max_length = 254)]
    email: String,
    /// The user's password.
    #[schema(max_length = 1024, format = "password")]
    password: String,
}

/// A new access token and the refresh token to get the next one.
#[derive(Serialize, ToSchema)]
pub(crate) struct Tokens {
    /// Send as `Authorization: Bearer …`.
    access_token: String,
    /// Always `Bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: u64,
    /// Spend it at `POST /v1/auth/refresh` for the next pair; it works once.
    refresh_token: String,
    /// The session both belong to.
    session_id: uuid::Uuid,
}

/// The declared `maxLength`s, enforced as declared (422 naming the field).
fn longest(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.chars().count() > max {
        return Err(ApiError::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(())
}

fn bad_credentials() -> ApiError {
    ApiError::UnauthorizedBecause("wrong e-mail address or password")
}

/// Logs a user in. A wrong password, an unknown address and a disabled
/// user get the same answer, in about the same time. Consecutive failures
/// lock the account (5 by default: a minute, doubling with each further
/// failure up to a day); while locked, logins answer 429 with
/// `Retry-After`, without checking the password. A user with an
/// allow-list logs in only from its networks.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth",
    request_body = Login,
    responses(
        (status = 200, body = Tokens),
        (status = 401, description = "`/problems/unauthorized`: wrong e-mail address or password",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`/problems/forbidden`: the password is right but the user may not log in from this network address (its `allowed_cidrs`)",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "`/problems/rate-limited`: the account is locked after too many failed logins, or too many authentication requests came from this address; `Retry-After` says for how long",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`/problems/unavailable`: a dependency is down; retry later",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`/problems/timeout`: the request took longer than the configured timeout",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<ApiState>,
    client: Client,
    Json(body): Json<Login>,
) -> ApiResult<axum::Json<Tokens>> {
    longest("email", &body.email, 254)?;
    longest("password", &body.password, 1024)?;
    // An address that cannot exist is checked like an unknown one, so the
    // answer's timing does not tell them apart either.
    let candidate = match Email::parse(&body.email) {
        Ok(email) => state.users.auth_find_login(&email).await?,
        Err(_) => None,
    };
    // A locked account is not even checked: the password is not verified
    // (no oracle, no CPU spent) until the lock ends.
    if let Some(c) = &candidate
        && let Some(until) = c.locked_until.filter(|t| *t > chrono::Utc::now())
    {
        let left = (until - chrono::Utc::now()).num_milliseconds().max(0) as u64;
        tracing::warn!(security_event = "auth.login_locked", "login refused");
        return Err(ApiError::RateLimited(
            left.div_ceil(1000).max(1),
            "too many failed logins: this account is locked",
        ));
    }
    let presented = Password::presented(&body.password);
    let checked = tokio::task::spawn_blocking(move || match candidate {
        Some(c) => {
            let ok = presented.matches(&c.password_hash);
            (Some(c), ok)
        }
        None => {
            presented.burn_one_verification();
            (None, false)
        }
    })
    .await
    .map_err(|e| ApiError::Internal(format!("password check: {e}")))?;
    let user = match checked {
        (Some(LoginCandidate { user, .. }), true) if !user.disabled => user,
        (Some(LoginCandidate { user, .. }), matched) => {
            let reason = if matched {
                "user_disabled"
            } else {
                "wrong_password"
            };
            let actor = Actor {
                principal: Principal::User(user.id),
                request: Some(client.request),
            };
            let lockout = &state.access.settings().lockout;
            state
                .users
                .auth_login_failed(user.org_id, user.id, lockout, reason, &actor)
                .await?;
            return Err(bad_credentials());
        }
        (None, _) => {
            // No organization to file it under: a log line, without the address.
            tracing::warn!(
                security_event = "auth.login_failed",
                reason = "unknown_user",
                "login refused"
            );
            return Err(bad_credentials());
        }
    };
    if !user.allowed_cidrs.permits(client.request.ip) {
        let actor = Actor {
            principal: Principal::User(user.id),
            request: Some(client.request),
        };
        let target = format!("user:{}", user.id);
        return Err(crate::auth::refuse_network(&state, user.org_id, &actor, target).await);
    }
    let secret = RefreshSecret::generate();
    let session = NewSession {
        id: SessionId::new(),
        user: user.id,
        org: user.org_id,
        fingerprint: client.fingerprint,
        refresh: secret.digest(),
        lifetime: chrono::TimeDelta::from_std(state.access.settings().session_ttl)
            .unwrap_or(chrono::TimeDelta::MAX),
    };
    let actor = Actor {
        principal: Principal::User(user.id),
        request: Some(client.request),
    };
    state.sessions.auth_open(&session, &actor).await?;
    let (access_token, expires_in) = state.access.issue(user.id, user.org_id, session.id).await?;
    Ok(axum::Json(Tokens {
        access_token,
        token_type: "Bearer",
        expires_in,
        refresh_token: secret.expose().to_owned(),
        session_id: session.id.as_uuid(),
    }))
}

/// Body of `POST /v1/auth/refresh` and `POST /v1/auth/logout`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    /// The latest refresh token of the session.
    #[schema(max_length = 128)]
    refresh_token: String,
}

/// Spends a refresh token for a new access token and the next refresh
/// token. A token spent before revokes its whole session (someone else
/// holds it); so does another client presenting it when the organization's
/// `session_fingerprint` mode says so.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, body = Tokens),
        (status = 401, description = "`/problems/unauthorized`: unknown, spent (the session is now revoked), revoked or expired refresh token, or another client",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "`/problems/forbidden`: the user may not act from this network address (its `allowed_cidrs`); the token is spent",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`/problems/unavailable`: a dependency is down; retry later",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`/problems/timeout`: the request took longer than the configured timeout",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    State(state): State<ApiState>,
    client: Client,
    Json(body): Json<RefreshBody>,
) -> ApiResult<axum::Json<Tokens>> {
    longest("refresh_token", &body.refresh_token, 128)?;
    let presented = KeyDigest::of(&body.refresh_token);
    let next = RefreshSecret::generate();
    let outcome = state
        .sessions
        .auth_refresh(
            &presented,
            &next.digest(),
            &client.fingerprint,
            &client.request,
        )
        .await?;
    match outcome {
        Refreshed::Rotated { session, user, .. } => {
            // The token is spent either way: from outside the user's
            // networks the session cannot be carried on.
            if !user.allowed_cidrs.permits(client.request.ip) {
                let actor = Actor {
                    principal: Principal::User(user.id),
                    request: Some(client.request),
                };
                let target = format!("session:{session}");
                return Err(crate::auth::refuse_network(&state, user.org_id, &actor, target).await);
            }
            let (access_token, expires_in) =
                state.access.issue(user.id, user.org_id, session).await?;
            Ok(axum::Json(Tokens {
                access_token,
                token_type: "Bearer",
                expires_in,
                refresh_token: next.expose().to_owned(),
                session_id: session.as_uuid(),
            }))
        }
        Refreshed::Refused => Err(ApiError::UnauthorizedBecause(
            "this refresh token is unknown, or its session has ended: log in again",
        )),
        Refreshed::Replayed => {
            tracing::warn!(security_event = "auth.refresh_replayed", "session revoked");
            Err(ApiError::UnauthorizedBecause(
                "this refresh token was already used: its session is revoked, log in again",
            ))
        }
        Refreshed::FingerprintMismatch => Err(ApiError::UnauthorizedBecause(
            "this session was opened by another client: it is revoked, log in again",
        )),
    }
}

/// Ends the session of a refresh token: its refresh tokens and access
/// tokens stop working. Ending an ended session again is fine.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 204, description = "the session is ended"),
        (status = 401, description = "`/problems/unauthorized`: unknown refresh token",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 503, description = "`/problems/unavailable`: a dependency is down; retry later",
            body = crate::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "`/problems/timeout`: the request took longer than the configured timeout",
            body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
async fn logout(
    State(state): State<ApiState>,
    client: Client,
    Json(body): Json<RefreshBody>,
) -> ApiResult<StatusCode> {
    longest("refresh_token", &body.refresh_token, 128)?;
    let presented = KeyDigest::of(&body.refresh_token);
    if state
        .sessions
        .auth_logout(&presented, &client.request)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::UnauthorizedBecause(
            "this refresh token is unknown",
        ))
    }
}
