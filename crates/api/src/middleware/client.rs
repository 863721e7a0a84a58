//! The client's address: the connection's peer, or, when the peer is a
//! configured trusted proxy, the address it reports in `X-Forwarded-For`
//! (the right-most entry that is not itself a trusted proxy, so a client
//! cannot choose its address by sending the header itself).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;

use crate::state::ApiState;

/// The client's address as resolved for this request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

pub(crate) async fn layer(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = resolve(peer, req.headers(), &state.settings.trusted_proxies);
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map_while(|h| h.trim().parse::<IpAddr>().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_header_is_believed_from_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&["198.51.100.7"]);
        assert_eq!(resolve(stranger, &h, &trusted), stranger);
        assert_eq!(resolve(proxy, &h, &trusted).to_string(), "198.51.100.7");
        // A client's own header is left of what the proxies appended.
        let h = headers(&["1.2.3.4, 198.51.100.7", "10.9.9.9"]);
        assert_eq!(resolve(proxy, &h, &trusted).to_string(), "198.51.100.7");
        // Nothing usable: the peer.
        assert_eq!(resolve(proxy, &headers(&[]), &trusted), proxy);
        assert_eq!(resolve(proxy, &headers(&["garbage"]), &trusted), proxy);
    }
}
