//! Authentication of `/v1` requests and role checks.
//!
//! Order of checks, everywhere: credential (401), then role (403), then the
//! resource inside the caller's organization (404). Two credentials are
//! accepted as `Authorization: Bearer …`:
//!
//! - an API key (`rwa_…`), looked up by the SHA-256 digest of the presented
//!   value and the stored digest compared in constant time. The store caches
//!   verified keys in-process: a revoked key fails on the next request to the
//!   process that revoked it, and on other processes as soon as the
//!   revocation's notification reaches them (the cache is bypassed whenever
//!   that channel is down). A key created by a user acts as that user: the
//!   user's standing is read at each request, so a disabled or deleted user's
//!   keys stop at once, and the key may do only what both its own role and
//!   the user's current role allow;
//! - a user's access token (a JWT, `access_token.rs`): its session and user
//!   are read at each request, so logout, a replayed refresh token, a
//!   disabled user or a changed role take effect at once, and the session's
//!   fingerprint is judged under the organization's mode.
//!
//! A refused role is a security event in the audit trail.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use chrono::{TimeDelta, Utc};
use rwa_domain::actor::{Principal, RequestContext};
use rwa_domain::api_key::{KeyDigest, looks_like_api_key};
use rwa_domain::audit::AuditRecord;
use rwa_domain::session::{Fingerprint, FingerprintVerdict};
use rwa_domain::{Actor, ApiKeyId, OrgId, Role, SessionId, UserId};

use crate::access_token::Refusal;
use crate::error::ApiError;
use crate::state::ApiState;

/// `last_used_at` is written at most this often per key, so authentication
/// stays a read on the hot path.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The credential a request came with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// An API key.
    ApiKey(ApiKeyId),
    /// A user's access token of this session.
    Session(SessionId),
}

/// The authenticated caller of a `/v1` request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's organization; every query is scoped to it.
    pub org_id: OrgId,
    /// The role it acts with: the key's, or the user's current one.
    pub role: Role,
    /// The user behind the request: the token's, or the one who created the key.
    pub user_id: Option<UserId>,
    /// What authenticated the request.
    pub credential: Credential,
    /// For a key created by a user: the user's current role, which the
    /// key's role is narrowed by.
    user_role: Option<Role>,
    /// The request (its id and the client's address).
    pub request: RequestContext,
}

impl Caller {
    /// Whether the caller may act with one of `allowed`.
    pub fn may(&self, allowed: &[Role]) -> bool {
        allowed.contains(&self.role) && self.user_role.is_none_or(|r| allowed.contains(&r))
    }

    /// 403 unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if self.may(allowed) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The caller as the author of a change, for the audit trail and
    /// four-eyes: the user when there is one (two keys of one user are one
    /// person), else the key.
    pub fn actor(&self) -> Actor {
        let principal = match (self.user_id, self.credential) {
            (Some(user), _) => Principal::User(user),
            (None, Credential::ApiKey(key)) => Principal::ApiKey(key),
            (None, Credential::Session(_)) => unreachable!("a session always has its user"),
        };
        Actor {
            principal,
            request: Some(self.request.clone()),
        }
    }
}

/// Filled by authentication so the request log line can name the organization.
#[derive(Clone, Default)]
pub(crate) struct OrgSlot(pub(crate) Arc<OnceLock<OrgId>>);

/// The request's id and client address, for the audit trail.
pub(crate) fn request_context(parts: &Parts) -> RequestContext {
    RequestContext {
        request_id: crate::request_id::current()
            .or_else(|| {
                parts
                    .headers
                    .get(&crate::request_id::X_REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default(),
        ip: client_ip(parts),
    }
}

/// The peer's address (the connection's; proxies are not believed yet).
pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The fingerprint of the client making this request.
pub(crate) fn fingerprint(parts: &Parts) -> Fingerprint {
    let agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    Fingerprint::of(agent, client_ip(parts))
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let bearer = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let caller = if looks_like_api_key(bearer) {
            by_api_key(bearer, parts, state).await?
        } else {
            by_access_token(bearer, parts, state).await?
        };
        if let Some(slot) = parts.extensions.get::<OrgSlot>() {
            let _ = slot.0.set(caller.org_id);
        }
        Ok(caller)
    }
}

async fn by_api_key(bearer: &str, parts: &Parts, state: &ApiState) -> Result<Caller, ApiError> {
    let presented = KeyDigest::of(bearer);
    let stored = state
        .keys
        .system_find_by_digest(&presented)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !stored.digest.matches(&presented) || stored.key.revoked_at.is_some() {
        return Err(ApiError::Unauthorized);
    }
    let key = stored.key;
    let user_role = match key.user_id {
        None => None,
        Some(user) => {
            let standing = state
                .users
                .auth_standing(key.org_id, user)
                .await?
                .filter(|s| s.active)
                .ok_or(ApiError::UnauthorizedBecause(
                    "the user who created this API key is disabled or deleted",
                ))?;
            Some(standing.role)
        }
    };
    let stale = key
        .last_used_at
        .is_none_or(|t| Utc::now() - t > TOUCH_EVERY);
    if stale {
        let keys = Arc::clone(&state.keys);
        let id = key.id;
        tokio::spawn(async move {
            if let Err(e) = keys.system_touch_last_used(id).await {
                tracing::debug!(error = %e, key = %id, "could not record key use");
            }
        });
    }
    Ok(Caller {
        org_id: key.org_id,
        role: key.role,
        user_id: key.user_id,
        credential: Credential::ApiKey(key.id),
        user_role,
        request: request_context(parts),
    })
}

async fn by_access_token(
    bearer: &str,
    parts: &Parts,
    state: &ApiState,
) -> Result<Caller, ApiError> {
    let claims = match state.access.verify(bearer).await? {
        Ok(claims) => claims,
        Err(Refusal::Expired) => {
            return Err(ApiError::UnauthorizedBecause(
                "the access token has expired: get a new one from POST /v1/auth/refresh",
            ));
        }
        Err(Refusal::Invalid) => return Err(ApiError::Unauthorized),
    };
    let standing = state
        .sessions
        .auth_standing(claims.org, claims.sub, claims.sid)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if !standing.live {
        return Err(ApiError::UnauthorizedBecause(
            "the session has ended (logout, revocation or a change to the user): log in again",
        ));
    }
    let request = request_context(parts);
    let seen = fingerprint(parts);
    if standing.mode.judge(&standing.fingerprint, &seen) == FingerprintVerdict::Revoke {
        let actor = Actor {
            principal: Principal::User(claims.sub),
            request: Some(request),
        };
        state
            .sessions
            .auth_revoke_mismatched(claims.org, claims.sid, &actor, &seen)
            .await?;
        return Err(ApiError::UnauthorizedBecause(
            "this session was opened by another client: it is revoked, log in again",
        ));
    }
    Ok(Caller {
        org_id: claims.org,
        role: standing.role,
        user_id: Some(claims.sub),
        credential: Credential::Session(claims.sid),
        user_role: None,
        request,
    })
}

/// A set of roles allowed to call an operation, named as a type so the check
/// happens during extraction, before the body is read: a caller without the
/// role gets 403 even when its body is also invalid.
pub trait Allowed: Send + Sync + 'static {
    /// The roles allowed.
    const ROLES: &'static [Role];
}

/// Role sets used by the routes.
pub mod roles {
    use super::Allowed;
    use rwa_domain::Role;

    /// Every role.
    pub struct Anyone;
    impl Allowed for Anyone {
        const ROLES: &'static [Role] = &Role::ALL;
    }

    /// Administrators only.
    pub struct Admin;
    impl Allowed for Admin {
        const ROLES: &'static [Role] = &[Role::Admin];
    }

    /// Administrators and operators (jobs, tokens, operations, transfers).
    pub struct AdminOrOperator;
    impl Allowed for AdminOrOperator {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Operator];
    }

    /// Administrators, operators and compliance officers (a transfer's dry
    /// run).
    pub struct AdminOperatorOrCompliance;
    impl Allowed for AdminOperatorOrCompliance {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Operator, Role::Compliance];
    }

    /// Administrators and compliance officers (KYC decisions, screening).
    pub struct AdminOrCompliance;
    impl Allowed for AdminOrCompliance {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Compliance];
    }

    /// Administrators and auditors (read-only views of sensitive records).
    pub struct AdminOrAuditor;
    impl Allowed for AdminOrAuditor {
        const ROLES: &'static [Role] = &[Role::Admin, Role::Auditor];
    }
}

/// An authenticated caller whose role is in `A::ROLES`: 401 without a valid
/// credential, then 403 for another role.
pub struct Authorized<A: Allowed> {
    /// The caller.
    pub caller: Caller,
    _roles: std::marker::PhantomData<A>,
}

impl<A: Allowed> std::ops::Deref for Authorized<A> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

impl<A: Allowed> FromRequestParts<ApiState> for Authorized<A> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.may(A::ROLES) {
            record_denial(&caller, parts, state).await;
            return Err(ApiError::Forbidden);
        }
        Ok(Authorized {
            caller,
            _roles: std::marker::PhantomData,
        })
    }
}

/// Appends the refused role to the audit trail (a security event); a
/// failure to record it is logged and does not change the answer.
async fn record_denial(caller: &Caller, parts: &Parts, state: &ApiState) {
    let route = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
    let record = AuditRecord {
        action: "auth.role_denied",
        target: format!("route:{} {}", parts.method, route),
        data: serde_json::json!({
            "role": caller.role.as_str(),
            "user_role": caller.user_role.map(Role::as_str),
        }),
    };
    if let Err(e) = state
        .audit
        .record(caller.org_id, &caller.actor(), &record)
        .await
    {
        tracing::warn!(error = %e, "could not record a refused role");
    }
}
