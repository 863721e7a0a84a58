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
//!   fingerprint is judged under the organization's mode;
//! - under mutual TLS, a verified client certificate without a bearer: the
//!   API key bound to its subject. A key bound to a subject works only over
//!   a connection that presented that certificate.
//!
//! A key or user with an allow-list is refused (403, audited) from any other
//! network address.
//!
//! Each authenticated request is counted against its credential's rate
//! limit, at the tier of its organization (`rate_limit/`).
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
use crate::rate_limit::{DecisionSlot, Limit, ceil_secs};
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

/// The subject of the verified client certificate of the request's
/// connection (mutual TLS), as the TLS server read it (`CN=…, O=…`).
#[derive(Clone, Debug)]
pub struct ClientCertificate(pub String);

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

/// The client's address: behind a trusted proxy the one it forwarded, else
/// the connection's peer (`middleware/client.rs`).
pub(crate) fn client_ip(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<crate::middleware::client::ClientAddr>()
        .map(|c| c.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip())
        })
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
        let certificate = parts
            .extensions
            .get::<ClientCertificate>()
            .map(|c| c.0.clone());
        let caller = match (bearer(parts), certificate) {
            (Some(bearer), _) if looks_like_api_key(bearer) => {
                by_api_key(bearer, parts, state).await?
            }
            (Some(bearer), _) => by_access_token(bearer, parts, state).await?,
            (None, Some(subject)) => by_certificate(&subject, parts, state).await?,
            (None, None) => return Err(ApiError::Unauthorized),
        };
        if let Some(slot) = parts.extensions.get::<OrgSlot>() {
            let _ = slot.0.set(caller.org_id);
        }
        limit_credential(&caller, parts, state).await?;
        Ok(caller)
    }
}

/// Counts the request against the credential's bucket at its organization's
/// tier: an API key's own, or the user's for all of their access tokens.
async fn limit_credential(
    caller: &Caller,
    parts: &Parts,
    state: &ApiState,
) -> Result<(), ApiError> {
    let limits = &state.limits;
    if !limits.enabled() {
        return Ok(());
    }
    let quota = limits.tier_quota(caller.org_id, state.orgs.as_ref()).await;
    let subject = match (caller.credential, caller.user_id) {
        (Credential::ApiKey(key), _) => format!("key:{key}"),
        (Credential::Session(_), Some(user)) => format!("user:{user}"),
        (Credential::Session(session), None) => format!("session:{session}"),
    };
    let decision = limits.check(Limit::Credential, &subject, quota).await;
    if let Some(slot) = parts.extensions.get::<DecisionSlot>() {
        slot.add(decision);
    }
    if decision.allowed {
        Ok(())
    } else {
        metrics::counter!("rwa_http_rate_limited_total", "limit" => "credential").increment(1);
        Err(ApiError::RateLimited(
            ceil_secs(decision.retry_after).max(1),
            "too many requests with this credential for its organization's tier",
        ))
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
    if let Some(bound) = &key.cert_subject {
        let presented = parts.extensions.get::<ClientCertificate>();
        if presented.is_none_or(|c| &c.0 != bound) {
            return Err(ApiError::UnauthorizedBecause(
                "this API key is bound to a client certificate: connect with it",
            ));
        }
    }
    key_caller(key, parts, state).await
}

/// A request over mutual TLS without a bearer: the API key bound to the
/// verified certificate's subject.
async fn by_certificate(
    subject: &str,
    parts: &Parts,
    state: &ApiState,
) -> Result<Caller, ApiError> {
    let key = state
        .keys
        .system_find_by_cert_subject(subject)
        .await?
        .filter(|k| k.revoked_at.is_none())
        .ok_or(ApiError::UnauthorizedBecause(
            "no API key is bound to this client certificate's subject",
        ))?;
    key_caller(key, parts, state).await
}

/// The caller a valid key stands for, once its network and its user's
/// standing are checked.
async fn key_caller(
    key: rwa_domain::api_key::ApiKey,
    parts: &Parts,
    state: &ApiState,
) -> Result<Caller, ApiError> {
    let request = request_context(parts);
    let actor = Actor {
        principal: key
            .user_id
            .map_or(Principal::ApiKey(key.id), Principal::User),
        request: Some(request.clone()),
    };
    let target = format!("api_key:{}", key.id);
    if !key.allowed_cidrs.permits(request.ip) {
        return Err(refuse_network(state, key.org_id, &actor, target).await);
    }
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
            if !standing.allowed_cidrs.permits(request.ip) {
                return Err(refuse_network(state, key.org_id, &actor, target).await);
            }
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
        request,
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
    if !standing.allowed_cidrs.permits(request.ip) {
        let actor = Actor {
            principal: Principal::User(claims.sub),
            request: Some(request),
        };
        let target = format!("session:{}", claims.sid);
        return Err(refuse_network(state, claims.org, &actor, target).await);
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

/// Records a credential used from outside its allow-list (a security
/// event) and gives the 403 to answer; a failure to record it is logged and
/// does not change the answer.
pub(crate) async fn refuse_network(
    state: &ApiState,
    org: OrgId,
    actor: &Actor,
    target: String,
) -> ApiError {
    let ip = actor.request.as_ref().and_then(|r| r.ip);
    let record = AuditRecord {
        action: "auth.network_denied",
        target,
        data: serde_json::json!({ "ip": ip.map(|i| i.to_string()) }),
    };
    if let Err(e) = state.audit.record(org, actor, &record).await {
        tracing::warn!(error = %e, "could not record a refused network");
    }
    tracing::warn!(security_event = "auth.network_denied", "request refused");
    ApiError::ForbiddenBecause("this credential may not be used from this network address")
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
