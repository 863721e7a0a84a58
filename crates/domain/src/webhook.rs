//! Webhook endpoints: an organization's HTTPS receivers of its events, each
//! with its own cursor over the event log (`delivered_seq`), its own signing
//! secret (sealed at rest, shown once) and its own failure state, so one
//! slow or dead endpoint never delays another.
//!
//! What is decided here, without IO: which event types an endpoint selects
//! (`*`, `<noun>.*`, `<noun>.<state>`), what URL it may have, which
//! addresses it may never be delivered to (loopback, private, link-local
//! and metadata ranges: checked at every delivery, since DNS can change
//! after registration), the retry schedule, and the repository ports the
//! API and the delivery loop use.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::Rng as _;
use serde::Serialize;
use uuid::Uuid;

use crate::event::TypeFilter;
use crate::page::{Page, PageRequest};
use crate::{Actor, OrgId, RepoResult, ValidationError};

/// An endpoint was registered.
pub const WEBHOOK_CREATED: &str = "webhook.created";
/// An endpoint's URL, selection, description or state changed.
pub const WEBHOOK_UPDATED: &str = "webhook.updated";
/// An endpoint was removed.
pub const WEBHOOK_DELETED: &str = "webhook.deleted";
/// An endpoint's signing secret was rotated.
pub const WEBHOOK_SECRET_ROTATED: &str = "webhook.secret_rotated";
/// An endpoint failed for longer than the configured period and was
/// turned off (the organization's e-mail recipients are told).
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";

/// Longest accepted URL.
pub const URL_MAX: usize = 2048;
/// Most event patterns per endpoint.
pub const EVENTS_MAX: usize = 50;
/// Longest description.
pub const DESCRIPTION_MAX: usize = 200;
/// Bytes of a receiver's answer kept with a delivery.
pub const SNIPPET_MAX: usize = 512;

/// One entry of an endpoint's selection.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    All,
    Type(TypeFilter),
}

/// The event types an endpoint receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSelector(Vec<Pattern>);

impl EventSelector {
    /// `["*"]`, or patterns `<noun>.*` / `<noun>.<state>`: 1 to 50 of them,
    /// errors naming `field[i]`. Duplicates are dropped.
    pub fn parse(field: &str, raw: &[String]) -> Result<EventSelector, ValidationError> {
        if raw.is_empty() || raw.len() > EVENTS_MAX {
            return Err(ValidationError::new(
                field,
                format!("must list 1 to {EVENTS_MAX} event types (\"*\" for every event)"),
            ));
        }
        let mut patterns = Vec::with_capacity(raw.len());
        for (i, p) in raw.iter().enumerate() {
            let pattern = if p.len() > 100 {
                return Err(ValidationError::new(
                    format!("{field}[{i}]"),
                    "must be at most 100 characters",
                ));
            } else if p == "*" {
                Pattern::All
            } else {
                Pattern::Type(TypeFilter::parse(p).map_err(|_| {
                    ValidationError::new(
                        format!("{field}[{i}]"),
                        "must be \"*\", <noun>.* or <noun>.<state> (lower-case letters, digits, _)",
                    )
                })?)
            };
            if !patterns.contains(&pattern) {
                patterns.push(pattern);
            }
        }
        Ok(EventSelector(patterns))
    }

    /// Whether an event of type `kind` is delivered.
    pub fn matches(&self, kind: &str) -> bool {
        self.0.iter().any(|p| match p {
            Pattern::All => true,
            Pattern::Type(TypeFilter::Exact(t)) => t == kind,
            Pattern::Type(TypeFilter::Noun(n)) => {
                kind.len() > n.len()
                    && kind.starts_with(n.as_str())
                    && kind.as_bytes()[n.len()] == b'.'
            }
        })
    }

    /// The patterns as they are sent and stored.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|p| match p {
                Pattern::All => "*".to_owned(),
                Pattern::Type(TypeFilter::Exact(t)) => t.clone(),
                Pattern::Type(TypeFilter::Noun(n)) => format!("{n}.*"),
            })
            .collect()
    }
}

/// An endpoint's URL: absolute `https` (`http` too outside production), a
/// host, no credentials, no fragment.
pub fn parse_url(field: &str, raw: &str, production: bool) -> Result<String, ValidationError> {
    let bad = |m: &str| ValidationError::new(field, m);
    if raw.is_empty() || raw.chars().count() > URL_MAX {
        return Err(bad("must be an absolute URL of at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not an absolute URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if !production => {}
        "http" => return Err(bad("must use https in production")),
        _ => return Err(bad("must be an https:// URL")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials (the signature authenticates us)",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("must not have a #fragment"));
    }
    Ok(url.to_string())
}

/// What is said of an endpoint's URL outside the endpoint itself (events,
/// which other receivers get; the audit trail; logs): scheme, host and
/// port. Receivers' URLs often carry a token in their path or query.
pub fn url_origin(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => u.origin().ascii_serialization(),
        Err(_) => "(invalid URL)".to_owned(),
    }
}

/// A description: at most 200 characters, no control characters; blank
/// means none.
pub fn parse_description(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<String>, ValidationError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > DESCRIPTION_MAX || raw.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must be at most 200 characters without control characters",
        ));
    }
    let trimmed = raw.trim();
    Ok((!trimmed.is_empty()).then(|| trimmed.to_owned()))
}

/// Why an address may not receive deliveries (`None`: it may). Metadata
/// services (169.254.169.254, fd00:ec2::254) fall in the link-local and
/// unique-local ranges, named apart for the operator.
pub fn forbidden_address(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            forbidden_v6(v6)
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if ip.is_multicast() || ip.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if a == 192 && b == 0 && ip.octets()[2] == 0 {
        Some("an IETF protocol assignment address")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking (private) address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if seg == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if seg[0] == 0x64 && seg[1] == 0xff9b {
        // NAT64 (64:ff9b::/96 and the local-use 64:ff9b:1::/48): the
        // gateway reaches the IPv4 address inside.
        forbidden_v4(embedded(seg[6], seg[7])).or(if seg[2] == 1 {
            Some("a local-use NAT64 address")
        } else {
            None
        })
    } else if seg[0] == 0x2002 {
        // 6to4 carries an IPv4 address in bits 16..48.
        forbidden_v4(embedded(seg[1], seg[2]))
    } else if seg[0] & 0xe000 != 0x2000 {
        // Outside global unicast (2000::/3): unique local, link-local,
        // site-local, multicast, IPv4-compatible and -translated forms.
        Some("not a global unicast address")
    } else if seg[0] == 0x2001 && seg[1] == 0 {
        Some("a Teredo tunnel address")
    } else if seg[0] == 0x2001 && seg[1] == 0xdb8 {
        Some("a documentation address")
    } else {
        None
    }
}

/// How long to wait before the `attempt`-th retry (1 = the first retry):
/// `base` doubled each time up to `cap`, then a random 0.8–1.2 of it, so
/// endpoints that failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let wait = doubled.min(cap);
    wait.mul_f64(rand::rng().random_range(0.8..1.2))
}

/// A new endpoint's signing secret: `whsec_` and 64 hex characters.
pub fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", hex::encode(bytes))
}

/// A registered endpoint, without its secret.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Webhook {
    /// Id.
    pub id: Uuid,
    /// Its organization.
    pub org_id: OrgId,
    /// Where events are POSTed.
    pub url: String,
    /// Which events.
    #[serde(serialize_with = "selector_strings")]
    pub events: EventSelector,
    /// The organization's note.
    pub description: Option<String>,
    /// Whether deliveries run.
    pub enabled: bool,
    /// Why it was turned off by the service (failing too long).
    pub disabled_reason: Option<String>,
    /// Every event up to this `seq` has been delivered or skipped.
    pub delivered_seq: i64,
    /// When the event at the head of its outbox first failed (`None`: not failing).
    pub failing_since: Option<DateTime<Utc>>,
    /// Failed attempts at the head event.
    pub attempts: i32,
    /// When the head event is tried again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last failure, as delivered.
    pub last_error: Option<String>,
    /// The last successful delivery.
    pub last_delivered_at: Option<DateTime<Utc>>,
    /// Until when the previous secret's signature is sent too.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed by the organization.
    pub updated_at: DateTime<Utc>,
}

fn selector_strings<S: serde::Serializer>(s: &EventSelector, ser: S) -> Result<S::Ok, S::Error> {
    s.to_strings().serialize(ser)
}

/// A new endpoint.
#[derive(Clone, Debug)]
pub struct NewWebhook {
    /// Validated URL.
    pub url: String,
    /// Selection.
    pub events: EventSelector,
    /// Note.
    pub description: Option<String>,
    /// Starts delivering at once (default) or not.
    pub enabled: bool,
    /// The secret, generated by the caller and shown to the client once.
    pub secret: String,
}

/// A change to an endpoint (absent: unchanged).
#[derive(Clone, Debug, Default)]
pub struct WebhookChange {
    /// New URL.
    pub url: Option<String>,
    /// New selection.
    pub events: Option<EventSelector>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// On or off; turning a disabled endpoint on retries its head event now.
    pub enabled: Option<bool>,
}

/// One attempt to deliver one event to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// The endpoint.
    pub webhook_id: Uuid,
    /// The event's position.
    pub event_seq: i64,
    /// The event's id (what receivers de-duplicate on).
    pub event_id: Uuid,
    /// The event's type.
    pub event_type: String,
    /// 1 for the first attempt at this event, counting up.
    pub attempt: i32,
    /// Asked for by a replay, not by the outbox.
    pub replay: bool,
    /// Whether the receiver answered 2xx in time.
    pub succeeded: bool,
    /// The receiver's status code, when it answered.
    pub status_code: Option<i32>,
    /// From sending to the answer (or the failure).
    pub latency_ms: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The first bytes of the answer's body.
    pub response_snippet: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// What the delivery loop records of an attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The event.
    pub event_seq: i64,
    /// Its id.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: String,
    /// Which attempt at it.
    pub attempt: i32,
    /// 2xx in time.
    pub succeeded: bool,
    /// Status, when answered.
    pub status_code: Option<i32>,
    /// Duration.
    pub latency: Duration,
    /// Failure.
    pub error: Option<String>,
    /// First bytes of the body.
    pub response_snippet: Option<String>,
}

/// What the delivery loop needs of an endpoint: where, what, with which
/// secrets, and where its outbox stands.
#[derive(Clone, Debug)]
pub struct Target {
    /// The endpoint as the API shows it.
    pub webhook: Webhook,
    /// The current secret, then the previous one while its overlap lasts;
    /// why not, when the sealed secret cannot be opened (the server secret
    /// changed without `rwa secrets rotate`): nothing can then be signed.
    pub secrets: Result<Vec<String>, String>,
    /// Replays waiting: (replay id, event seq).
    pub replays: Vec<(Uuid, i64)>,
    /// Counts the organization's changes; a record made under an older
    /// one is refused.
    pub version: i64,
}

/// How an outbox step ended, to record with its attempts.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Every attempted event went through; the cursor moves to `through`.
    Advanced {
        /// The new `delivered_seq`.
        through: i64,
    },
    /// Events up to `through` went through, the next one failed: retry at
    /// `retry_at`; disable the endpoint when `disable` is set.
    Failed {
        /// The new `delivered_seq` (the events before the failure).
        through: i64,
        /// When to try again.
        retry_at: DateTime<Utc>,
        /// The failure.
        error: String,
        /// Failing for longer than allowed: turn it off.
        disable: bool,
    },
}

/// The organization's side of endpoints: registration and inspection.
#[async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Registers an endpoint; its outbox starts after the newest event.
    async fn create(&self, org: OrgId, new: &NewWebhook, actor: &Actor) -> RepoResult<Webhook>;
    /// The organization's endpoints, oldest first.
    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<Webhook>>;
    /// One endpoint.
    async fn get(&self, org: OrgId, id: Uuid) -> RepoResult<Webhook>;
    /// Changes an endpoint; audited.
    async fn update(
        &self,
        org: OrgId,
        id: Uuid,
        change: &WebhookChange,
        actor: &Actor,
    ) -> RepoResult<Webhook>;
    /// Removes an endpoint with its deliveries; audited.
    async fn delete(&self, org: OrgId, id: Uuid, actor: &Actor) -> RepoResult<()>;
    /// Replaces the secret with `secret`; the previous one keeps signing
    /// until `overlap` has passed. During an overlap, only the newer secret
    /// is replaced and the older keeps its end. Audited.
    async fn rotate_secret(
        &self,
        org: OrgId,
        id: Uuid,
        secret: &str,
        overlap: Duration,
        actor: &Actor,
    ) -> RepoResult<Webhook>;
    /// Attempts, oldest first.
    async fn deliveries(
        &self,
        org: OrgId,
        id: Uuid,
        page: PageRequest,
    ) -> RepoResult<Page<Delivery>>;
    /// Sends a delivery's event once more (out of band, the outbox goes
    /// on); answers the replay's id. Audited.
    async fn replay_delivery(
        &self,
        org: OrgId,
        id: Uuid,
        delivery: Uuid,
        actor: &Actor,
    ) -> RepoResult<Uuid>;
    /// Sends again every selected event from `from_seq` on, in order (the
    /// outbox moves back; never forward). Audited.
    async fn replay_from(
        &self,
        org: OrgId,
        id: Uuid,
        from_seq: i64,
        actor: &Actor,
    ) -> RepoResult<Webhook>;
}

/// The delivery loop's side: across organizations.
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// The right to deliver, held by one process at a time.
    async fn system_delivery_lease(&self) -> RepoResult<Option<Box<dyn crate::ports::Lease>>>;
    /// Ids of endpoints that deliver.
    async fn system_enabled_webhooks(&self) -> RepoResult<Vec<Uuid>>;
    /// An endpoint with its secrets and waiting replays; `None` when deleted.
    async fn system_target(&self, id: Uuid) -> RepoResult<Option<Target>>;
    /// Records `attempts` and moves the outbox from `from` as `outcome`
    /// says, unless the cursor moved or the endpoint changed meanwhile
    /// (`version`): then only the attempts are kept. Answers whether the
    /// outbox moved.
    async fn system_record(
        &self,
        id: Uuid,
        from: i64,
        version: i64,
        attempts: &[Attempt],
        outcome: &Outcome,
    ) -> RepoResult<bool>;
    /// Records a replay's attempt and marks it done.
    async fn system_record_replay(
        &self,
        id: Uuid,
        replay: Uuid,
        attempt: &Attempt,
    ) -> RepoResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(p: &[&str]) -> Result<EventSelector, ValidationError> {
        EventSelector::parse(
            "events",
            &p.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn selectors_match_types_nouns_and_everything() {
        let s = sel(&["transfer.*", "investor.kyc_approved"]).unwrap();
        assert!(s.matches("transfer.settled"));
        assert!(s.matches("investor.kyc_approved"));
        assert!(!s.matches("investor.kyc_rejected"));
        assert!(!s.matches("transfers.settled"));
        assert!(!s.matches("transfer"));
        assert!(sel(&["*"]).unwrap().matches("anything.at_all"));
        assert_eq!(sel(&["a.*", "a.*"]).unwrap().to_strings(), vec!["a.*"]);
    }

    #[test]
    fn selector_errors_name_the_entry() {
        assert_eq!(sel(&[]).unwrap_err().field, "events");
        assert_eq!(
            sel(&["transfer.*", "Transfer"]).unwrap_err().field,
            "events[1]"
        );
        let many: Vec<String> = (0..51).map(|i| format!("n{i}.*")).collect();
        assert!(EventSelector::parse("events", &many).is_err());
    }

    #[test]
    fn urls_are_https_in_production_without_credentials() {
        assert!(parse_url("url", "https://hooks.example.com/rwa?x=1", true).is_ok());
        assert!(parse_url("url", "http://hooks.example.com/", false).is_ok());
        assert!(parse_url("url", "http://hooks.example.com/", true).is_err());
        assert!(parse_url("url", "ftp://hooks.example.com/", false).is_err());
        assert!(parse_url("url", "https://u:p@hooks.example.com/", false).is_err());
        assert!(parse_url("url", "https://hooks.example.com/#x", false).is_err());
        assert!(parse_url("url", "/relative", false).is_err());
    }

    #[test]
    fn only_the_origin_of_a_url_is_told() {
        assert_eq!(
            url_origin("https://hooks.example.com:8443/services/T0/B0/secret?token=x"),
            "https://hooks.example.com:8443"
        );
    }

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "64:ff9b::a00:5",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2001:0:4136:e378::1",
            "::ffff:0:a00:1",
            "198.18.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
        ] {
            assert!(forbidden_address(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(forbidden_address(ip.parse().unwrap()), None, "{ip}");
        }
        assert_eq!(
            forbidden_address("169.254.169.254".parse().unwrap()),
            Some("a cloud metadata address")
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(3600);
        for _ in 0..100 {
            let first = backoff(1, base, cap);
            assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
            let fourth = backoff(4, base, cap);
            assert!(fourth >= Duration::from_millis(6400) && fourth <= Duration::from_millis(9600));
            assert!(backoff(40, base, cap) <= cap.mul_f64(1.2));
        }
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert!(a.starts_with("whsec_") && a.len() == 70);
        assert_ne!(a, b);
    }
}
