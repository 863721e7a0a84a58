//! One webhook delivery: the event as JSON, POSTed with `Rwa-Signature`
//! (one `v1=` per secret that signs now), `Rwa-Event-Id` and
//! `Rwa-Event-Seq`; a 2xx within the timeout is a delivery, anything else a
//! failure with its reason.
//!
//! Server-side request forgery: unless private targets are allowed
//! (`RWA_WEBHOOK_ALLOW_PRIVATE`, for development), every address the URL's
//! host resolves to is checked at every delivery, in the resolver the
//! connection actually uses (so a name that resolves to a public address at
//! registration and to 127.0.0.1 later is refused then, with no window
//! between the check and the connect); literal addresses are checked before
//! sending; redirects are not followed (a 3xx is a failure).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rwa_domain::event::Event;
use rwa_domain::signature;
use rwa_domain::webhook::{SNIPPET_MAX, forbidden_address};

/// What one attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// 2xx within the timeout.
    pub succeeded: bool,
    /// The receiver's status, when it answered.
    pub status_code: Option<u16>,
    /// From sending to the answer or the failure.
    pub latency: Duration,
    /// Why it failed.
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response_snippet: Option<String>,
}

/// Refuses names that resolve to an address deliveries may not reach.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            // One forbidden address refuses the name: a receiver's DNS must
            // not be able to steer a retry to the inside.
            if let Some((addr, why)) = addrs
                .iter()
                .find_map(|a| forbidden_address(a.ip()).map(|why| (a, why)))
            {
                // The tenant sees that it was refused, not what the name
                // resolves to inside: that would map internal DNS.
                tracing::warn!(host = %host, address = %addr.ip(), reason = why,
                    "webhook target refused: it resolves to a forbidden address");
                return Err(format!(
                    "{host} resolves to a non-public address (loopback, private, link-local or \
                     metadata): refused (RWA_WEBHOOK_ALLOW_PRIVATE allows it)"
                )
                .into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends deliveries; one per endpoint at a time, many endpoints at once.
pub struct WebhookSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl WebhookSender {
    /// A sender whose attempts give up after `timeout`.
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, past the check.
            .no_proxy()
            .user_agent(concat!("rwa-webhooks/", env!("CARGO_PKG_VERSION")))
            // One connection per endpoint at a time; endpoints sharing a
            // host (a receiver with one path per tenant) each keep theirs.
            .pool_max_idle_per_host(64);
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        let client = builder
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_private,
        })
    }

    /// POSTs `event` to `url`, signed with each of `secrets`.
    pub async fn send(
        &self,
        url: &str,
        webhook_id: uuid::Uuid,
        secrets: &[String],
        event: &Event,
    ) -> Sent {
        let started = Instant::now();
        let failed = |error: String, status: Option<u16>, snippet: Option<String>| Sent {
            succeeded: false,
            status_code: status,
            latency: started.elapsed(),
            error: Some(error),
            response_snippet: snippet,
        };
        if let Err(e) = self.check_literal(url) {
            return failed(e, None, None);
        }
        let body = serde_json::to_vec(event).expect("events serialize");
        let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
        let header = signature::sign(&keys, Utc::now().timestamp(), &body);
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(signature::HEADER, header)
            .header("Rwa-Event-Id", event.id.to_string())
            .header("Rwa-Event-Seq", event.seq.to_string())
            .header("Rwa-Event-Type", &event.kind)
            .header("Rwa-Webhook-Id", webhook_id.to_string())
            .body(body);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return failed(describe(&e), None, None),
        };
        let status = response.status();
        let snippet = snippet(&mut response).await;
        if status.is_success() {
            Sent {
                succeeded: true,
                status_code: Some(status.as_u16()),
                latency: started.elapsed(),
                error: None,
                response_snippet: snippet,
            }
        } else {
            let why = if status.is_redirection() {
                format!("answered {status}: redirects are not followed")
            } else {
                format!("answered {status}")
            };
            failed(why, Some(status.as_u16()), snippet)
        }
    }

    /// A URL naming an address directly never reaches the resolver.
    fn check_literal(&self, url: &str) -> Result<(), String> {
        if self.allow_private {
            return Ok(());
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
            _ => return Ok(()),
        };
        match forbidden_address(ip) {
            Some(why) => Err(format!(
                "{ip} is {why}: refused (RWA_WEBHOOK_ALLOW_PRIVATE allows it)"
            )),
            None => Ok(()),
        }
    }
}

/// The failure as the deliveries list shows it: the cause chain, which
/// carries the resolver's refusal.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let message = s.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = s.source();
    }
    text
}

/// Reads at most [`SNIPPET_MAX`] bytes of the answer (never the whole of a
/// huge one).
async fn snippet(response: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < SNIPPET_MAX {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(SNIPPET_MAX);
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    (!text.is_empty()).then_some(text)
}
