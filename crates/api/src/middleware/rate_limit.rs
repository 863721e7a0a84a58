//! Limits per client address (stricter on `/v1/auth/*`) before anything
//! else runs, and the `RateLimit-*` headers of the tightest limit the request
//! met (the credential's is counted by authentication, `auth.rs`). Health
//! probes are not limited.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::client::ClientAddr;
use crate::error::ApiError;
use crate::rate_limit::{Decision, DecisionSlot, Limit, ceil_secs};
use crate::state::ApiState;

pub(crate) async fn layer(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !state.limits.enabled() || path.starts_with("/health") {
        return next.run(req).await;
    }
    let auth = path.starts_with("/v1/auth/");
    let slot = DecisionSlot::default();
    if let Some(ClientAddr(ip)) = req.extensions().get::<ClientAddr>().copied() {
        let subject = address_subject(ip);
        let limits = &state.limits;
        let mut decision = limits
            .check(Limit::Address, &subject, limits.address_quota(false))
            .await;
        let mut why = "too many requests from this address";
        let mut limit = "address";
        if decision.allowed && auth {
            decision = decision.tighter(
                limits
                    .check(Limit::Auth, &subject, limits.address_quota(true))
                    .await,
            );
            if !decision.allowed {
                why = "too many authentication requests from this address";
                limit = "auth";
            }
        }
        if !decision.allowed {
            metrics::counter!("rwa_http_rate_limited_total", "limit" => limit).increment(1);
            let mut response =
                ApiError::RateLimited(ceil_secs(decision.retry_after).max(1), why).into_response();
            set_headers(&mut response, decision);
            return response;
        }
        slot.add(decision);
    }
    req.extensions_mut().insert(slot.clone());
    let mut response = next.run(req).await;
    if let Some(decision) = slot.get() {
        set_headers(&mut response, decision);
    }
    response
}

/// The bucket of an address: IPv4 addresses one by one, IPv6 by /64 (one
/// host commonly holds a whole /64).
fn address_subject(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

fn set_headers(response: &mut Response, d: Decision) {
    let h = response.headers_mut();
    h.insert("ratelimit-limit", HeaderValue::from(d.limit));
    h.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    h.insert("ratelimit-reset", HeaderValue::from(ceil_secs(d.reset)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(address_subject(a), address_subject(b));
        assert_eq!(
            address_subject("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1"
        );
    }
}
