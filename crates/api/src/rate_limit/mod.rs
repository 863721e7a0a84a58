//! Rate limits: per client address on every request (stricter on
//! `/v1/auth/*`), and per credential (an API key, or a user's access tokens)
//! at the quota of its organization's tier.
//!
//! Every limit is a GCRA bucket: `burst` requests at once, refilled at
//! `per_minute`. Buckets live in this process ([`local`], the governor crate)
//! or, when Redis is configured, in Redis for every instance at once
//! ([`shared`], one atomic script on Redis's own clock). While Redis cannot
//! answer, the same limits are kept in-process, `checks.redis` is degraded,
//! and Redis is tried again every second.

pub mod local;
pub mod shared;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwa_domain::OrgId;
use rwa_domain::ports::OrgRepository;

pub use shared::SharedLimits;

/// A bucket: `burst` requests at once, refilled at `per_minute`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Sustained rate, requests per minute (at least 1).
    pub per_minute: u32,
    /// Requests allowed at once (at least 1).
    pub burst: u32,
}

impl Quota {
    /// Time between two refills.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(60) / self.per_minute.max(1)
    }
}

/// One bucket's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The bucket's size (`RateLimit-Limit`).
    pub limit: u32,
    /// Requests left at once (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// For a refusal: until one request is allowed again (`Retry-After`).
    pub retry_after: Duration,
}

impl Decision {
    /// Of two decisions on one request, the one to report: a refusal, else
    /// the one with fewer requests left.
    pub fn tighter(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (false, true) => self,
            (true, false) => other,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

/// Which limit a bucket belongs to; part of its key, so the limits never
/// share a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Every request of a client address.
    Address,
    /// `/v1/auth/*` requests of a client address.
    Auth,
    /// A credential's requests, at its organization's tier.
    Credential,
}

impl Limit {
    fn as_str(self) -> &'static str {
        match self {
            Limit::Address => "ip",
            Limit::Auth => "auth",
            Limit::Credential => "cred",
        }
    }
}

/// What operators configure (`[rate_limits]`).
#[derive(Clone, Debug)]
pub struct RateLimitSettings {
    /// Off: nothing is limited and no headers are sent.
    pub enabled: bool,
    /// Every request per client address.
    pub per_address: Quota,
    /// `/v1/auth/*` per client address.
    pub auth: Quota,
    /// Per-credential quotas by tier name.
    pub tiers: BTreeMap<String, Quota>,
    /// The tier of organizations that have none set (a key of `tiers`).
    pub default_tier: String,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_address: Quota {
                per_minute: 6_000,
                burst: 1_000,
            },
            auth: Quota {
                per_minute: 30,
                burst: 10,
            },
            tiers: BTreeMap::from([(
                "standard".to_owned(),
                Quota {
                    per_minute: 3_000,
                    burst: 500,
                },
            )]),
            default_tier: "standard".to_owned(),
        }
    }
}

/// How long an organization's tier is believed before it is read again: a
/// change of tier reaches every process within this.
const TIER_TTL: Duration = Duration::from_secs(10);

/// The limits of this process.
pub struct RateLimiter {
    settings: RateLimitSettings,
    local: local::LocalLimits,
    shared: Option<Arc<SharedLimits>>,
    tiers: Mutex<HashMap<OrgId, (Quota, Instant)>>,
}

impl RateLimiter {
    /// Limits in this process only, or shared through Redis.
    pub fn new(settings: RateLimitSettings, shared: Option<Arc<SharedLimits>>) -> Self {
        Self {
            settings,
            local: local::LocalLimits::default(),
            shared,
            tiers: Mutex::new(HashMap::new()),
        }
    }

    /// Whether limits apply at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Counts one request of `subject` against `limit`.
    pub async fn check(&self, limit: Limit, subject: &str, quota: Quota) -> Decision {
        let key = format!("{}:{subject}", limit.as_str());
        if let Some(shared) = &self.shared
            && let Some(decision) = shared.check(&key, quota).await
        {
            return decision;
        }
        self.local.check(&key, quota)
    }

    /// The address quotas.
    pub fn address_quota(&self, auth: bool) -> Quota {
        if auth {
            self.settings.auth
        } else {
            self.settings.per_address
        }
    }

    /// The per-credential quota of `org`'s tier, read at most every
    /// [`TIER_TTL`]. A tier no longer configured falls back to the default.
    pub async fn tier_quota(&self, org: OrgId, orgs: &dyn OrgRepository) -> Quota {
        let now = Instant::now();
        if let Some((quota, at)) = self.tiers.lock().expect("tier cache").get(&org)
            && now.duration_since(*at) < TIER_TTL
        {
            return *quota;
        }
        let tier = match orgs.get(org).await {
            Ok(o) => o.rate_tier,
            Err(e) => {
                tracing::warn!(error = %e, %org, "could not read the organization's tier");
                None
            }
        };
        let default = self.settings.tiers[&self.settings.default_tier];
        let quota = match tier {
            None => default,
            Some(name) => self.settings.tiers.get(&name).copied().unwrap_or_else(|| {
                tracing::warn!(%org, tier = %name, "tier not configured: using the default tier");
                default
            }),
        };
        let mut cache = self.tiers.lock().expect("tier cache");
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(org, (quota, now));
        quota
    }
}

/// Shared by the middleware and authentication: the decisions taken for one
/// request, so its response carries the tightest one's headers.
#[derive(Clone, Default)]
pub(crate) struct DecisionSlot(pub(crate) Arc<Mutex<Option<Decision>>>);

impl DecisionSlot {
    pub(crate) fn add(&self, decision: Decision) {
        let mut slot = self.0.lock().expect("decision slot");
        *slot = Some(match *slot {
            Some(d) => d.tighter(decision),
            None => decision,
        });
    }

    pub(crate) fn get(&self) -> Option<Decision> {
        *self.0.lock().expect("decision slot")
    }
}

/// Whole seconds, rounded up, as the headers carry them.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_micros().div_ceil(1_000_000) as u64
}
