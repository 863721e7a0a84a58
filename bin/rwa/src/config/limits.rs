//! Abuse protection and transport settings: rate limits and their tiers,
//! the proxies whose `X-Forwarded-For` is believed, the Redis that shares
//! limits between instances, and TLS (certificate, key, client CA).

use std::collections::BTreeMap;

use ipnet::IpNet;
use rwa_api::rate_limit::{Quota, RateLimitSettings};

use super::SecretUrl;
use super::file::{Layered, QuotaSection};

/// Rate limits, trusted proxies and Redis.
#[derive(Clone, Debug)]
pub struct LimitsConfig {
    /// The limits.
    pub rate: RateLimitSettings,
    /// Peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpNet>,
    /// Shared limits (`None`: each process keeps its own).
    pub redis_url: Option<SecretUrl>,
    /// How long a Redis attempt may take before a request is counted
    /// in-process instead.
    pub redis_timeout: std::time::Duration,
    /// TLS termination (`None`: plain HTTP, as behind a proxy that
    /// terminates TLS).
    pub tls: Option<crate::tls::TlsFiles>,
}

pub(super) fn resolve(l: &Layered, errors: &mut Vec<String>) -> LimitsConfig {
    let defaults = RateLimitSettings::default();
    let r = &l.rate_limits;
    let per_address = quota(
        "RWA_RATE_LIMIT_ADDRESS",
        &r.per_address,
        defaults.per_address,
        errors,
    );
    let auth = quota("RWA_RATE_LIMIT_AUTH", &r.auth, defaults.auth, errors);
    let mut tiers = BTreeMap::new();
    for (name, section) in &r.tiers {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            errors.push(format!(
                "[rate_limits.tiers.{name}]: a tier name is 1 to 64 letters, digits, - or _"
            ));
        }
        if section.per_minute.is_none() || section.burst.is_none() {
            errors.push(format!(
                "[rate_limits.tiers.{name}]: per_minute and burst are both required"
            ));
        }
        let fallback = defaults.tiers["standard"];
        let q = quota(
            &format!("[rate_limits.tiers.{name}]"),
            section,
            fallback,
            errors,
        );
        tiers.insert(name.clone(), q);
    }
    if !tiers.contains_key("standard") {
        tiers.insert("standard".to_owned(), defaults.tiers["standard"]);
    }
    let default_tier = r.default_tier.clone().unwrap_or(defaults.default_tier);
    if !tiers.contains_key(&default_tier) {
        errors.push(format!(
            "[rate_limits] default_tier: {default_tier:?} is not a configured tier (configured: {})",
            tiers.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }

    let mut trusted_proxies = Vec::new();
    for entry in l.trusted_proxies.iter().flatten() {
        match entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(net) => trusted_proxies.push(net.trunc()),
            Err(_) => errors.push(format!(
                "RWA_TRUSTED_PROXIES: {entry:?} is not an address or CIDR range"
            )),
        }
    }

    let redis_url = l.redis.url.clone();
    if let Some(url) = &redis_url {
        let u = url.expose();
        if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
            errors.push("RWA_REDIS_URL: must start with redis:// or rediss://".into());
        } else if redis_url_invalid(u) {
            errors.push(format!(
                "RWA_REDIS_URL: {} is not a valid URL",
                url.redacted()
            ));
        }
    }

    let tls = tls(l, errors);
    let redis_timeout = l.redis.timeout_ms.unwrap_or(250);
    if !(1..=10_000).contains(&redis_timeout) {
        errors.push("RWA_REDIS_TIMEOUT_MS: must be between 1 and 10000".into());
    }

    LimitsConfig {
        tls,
        rate: RateLimitSettings {
            enabled: r.enabled.unwrap_or(true),
            per_address,
            auth,
            tiers,
            default_tier,
        },
        trusted_proxies,
        redis_url,
        redis_timeout: std::time::Duration::from_millis(redis_timeout),
    }
}

fn tls(l: &Layered, errors: &mut Vec<String>) -> Option<crate::tls::TlsFiles> {
    let t = &l.tls;
    for (name, path) in [
        ("RWA_TLS_CERT", &t.cert),
        ("RWA_TLS_KEY", &t.key),
        ("RWA_TLS_CLIENT_CA", &t.client_ca),
    ] {
        if let Some(p) = path
            && !p.is_file()
        {
            errors.push(format!("{name}: {} is not a readable file", p.display()));
        }
    }
    match (&t.cert, &t.key) {
        (Some(cert), Some(key)) => Some(crate::tls::TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: t.client_ca.clone(),
        }),
        (None, None) => {
            if t.client_ca.is_some() {
                errors.push(
                    "RWA_TLS_CLIENT_CA: needs RWA_TLS_CERT and RWA_TLS_KEY (client certificates are asked during the TLS handshake)".into(),
                );
            }
            None
        }
        _ => {
            errors.push("RWA_TLS_CERT and RWA_TLS_KEY: give both or neither".into());
            None
        }
    }
}

fn redis_url_invalid(url: &str) -> bool {
    rwa_api::rate_limit::SharedLimits::new(url, "", std::time::Duration::from_secs(1)).is_err()
}

fn quota(name: &str, s: &QuotaSection, default: Quota, errors: &mut Vec<String>) -> Quota {
    let q = Quota {
        per_minute: s.per_minute.unwrap_or(default.per_minute),
        burst: s.burst.unwrap_or(default.burst),
    };
    // One a minute at least; a million a minute is beyond what one process serves.
    if !(1..=1_000_000).contains(&q.per_minute) {
        errors.push(format!("{name} per_minute: must be between 1 and 1000000"));
    }
    if !(1..=1_000_000).contains(&q.burst) {
        errors.push(format!("{name} burst: must be between 1 and 1000000"));
    }
    q
}
