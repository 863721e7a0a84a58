//! Authentication of `/v1` requests and role checks.
//!
//! Order of checks, everywhere: credential (401), then role (403), then the
//! resource inside the caller's organization (404). A key is looked up by the
//! SHA-256 digest of the presented value and the stored digest compared in
//! constant time. The store caches verified keys in-process: a revoked key
//! fails on the next request to the process that revoked it, and on other
//! processes as soon as the revocation's notification reaches them (the
//! cache is bypassed whenever that channel is down).

use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{TimeDelta, Utc};
use rwa_domain::api_key::{KeyDigest, looks_like_api_key};
use rwa_domain::{Actor, ApiKeyId, OrgId, Role};

use crate::error::ApiError;
use crate::state::ApiState;

/// `last_used_at` is written at most this often per key, so authentication
/// stays a read on the hot path.
const TOUCH_EVERY: TimeDelta = TimeDelta::seconds(60);

/// The authenticated caller of a `/v1` request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The caller's organization; every query is scoped to it.
    pub org_id: OrgId,
    /// The credential's role.
    pub role: Role,
    /// The key used.
    pub key_id: ApiKeyId,
}

impl Caller {
    /// 403 unless the caller's role is one of `allowed`.
    pub fn require(&self, allowed: &[Role]) -> Result<(), ApiError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The caller as the author of a change, for the audit trail.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key_id)
    }
}

/// Filled by authentication so the request log line can name the organization.
#[derive(Clone, Default)]
pub(crate) struct OrgSlot(pub(crate) Arc<OnceLock<OrgId>>);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        if !looks_like_api_key(bearer) {
            return Err(ApiError::Unauthorized);
        }
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
        if let Some(slot) = parts.extensions.get::<OrgSlot>() {
            let _ = slot.0.set(key.org_id);
        }
        Ok(Caller {
            org_id: key.org_id,
            role: key.role,
            key_id: key.id,
        })
    }
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
        caller.require(A::ROLES)?;
        Ok(Authorized {
            caller,
            _roles: std::marker::PhantomData,
        })
    }
}
