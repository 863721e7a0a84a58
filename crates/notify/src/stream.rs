//! The event stream to RabbitMQ (`RWA_AMQP_URL`): every organization's
//! events published to one durable topic exchange, routing key
//! `<org_id>.<type>`, in `seq` order, from the stream's own cursor.
//!
//! One channel in confirm mode publishes a batch, then waits for the
//! broker's confirmations in order; the cursor moves (compare-and-set)
//! over the confirmed prefix only. Whatever was not confirmed when the
//! connection broke (a broker restart, a network cut, a refusal) is
//! published again from the cursor after reconnecting with backoff: at
//! least once and in order, and a consumer de-duplicates by the message id,
//! which is the event's id. Messages are persistent, so a durable queue
//! bound to the exchange keeps them across a broker restart.
//!
//! The stream runs where the webhook deliveries run, under their lease (one
//! publisher across processes), and reports as `checks.amqp`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use rwa_domain::event::Event;
use rwa_domain::event_stream::{StreamCursor, routing_key};
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};
use rwa_domain::ports::EventLog;
use rwa_domain::webhook::backoff;
use tokio::sync::watch;

/// The stream's name in `event_streams`.
const STREAM: &str = "amqp";
/// Events published before their confirmations are awaited.
const BATCH: u32 = 500;
/// Longest wait for a connection, and for a batch's confirmations.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle stream looks at its connection and the event log.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Asked of the broker unless the URL says otherwise (`?heartbeat=`).
const HEARTBEAT_SECS: u16 = 10;

/// Where the stream goes.
#[derive(Clone)]
pub struct AmqpSettings {
    /// `amqp://` or `amqps://`, with the credentials (never printed).
    url: String,
    /// The durable topic exchange.
    pub exchange: String,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpSettings")
            .field("url", &redacted(&self.url))
            .field("exchange", &self.exchange)
            .finish()
    }
}

/// The exchange when `RWA_AMQP_EXCHANGE` is not given.
pub const DEFAULT_EXCHANGE: &str = "rwa.events";

impl AmqpSettings {
    /// Checks `url` (`amqp://user:password@host:port/vhost`; in production
    /// `amqps://` unless the broker is on this host, since the messages
    /// carry investors' and transfers' data) and `exchange` (letters,
    /// digits, `-_.:`, at most 127, not the broker's reserved `amq.`).
    pub fn parse(url: &str, exchange: Option<&str>, production: bool) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let host = match parsed.host() {
            Some(h) => h,
            None => return Err("names no broker host".into()),
        };
        // `amqp` is not a scheme the URL standard knows, so an address
        // comes back as an opaque name: parse it here.
        let loopback = match host {
            url::Host::Domain(d) => {
                d == "localhost"
                    || d.trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_loopback())
            }
            url::Host::Ipv4(a) => a.is_loopback(),
            url::Host::Ipv6(a) => a.is_loopback(),
        };
        match parsed.scheme() {
            "amqps" => {}
            "amqp" if production && !loopback => {
                return Err(
                    "must be amqps:// in production (plain amqp:// only to a broker on this host)"
                        .into(),
                );
            }
            "amqp" => {}
            other => return Err(format!("scheme {other}: must be amqp:// or amqps://")),
        }
        url.parse::<lapin::uri::AMQPUri>()
            .map_err(|e| format!("not an AMQP URL: {e}"))?;
        let exchange = exchange.unwrap_or(DEFAULT_EXCHANGE);
        let valid = !exchange.is_empty()
            && exchange.len() <= 127
            && !exchange.starts_with("amq.")
            && exchange
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if !valid {
            return Err(format!(
                "exchange {exchange:?}: 1 to 127 of letters, digits, '-', '_', '.', ':', not starting with 'amq.'"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
        })
    }

    /// The URL with its password hidden, for logs and `rwa config check`.
    pub fn redacted_url(&self) -> String {
        redacted(&self.url)
    }
}

fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "(invalid)".into(),
    }
}

/// Where the publisher stands, for `checks.amqp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Another process holds the delivery lease and publishes.
    Standby,
    Connecting,
    Connected,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Standby => "standby",
            Phase::Connecting => "connecting",
            Phase::Connected => "connected",
        }
    }
}

struct State {
    phase: Phase,
    last_error: Option<String>,
    published_seq: Option<i64>,
}

/// The publisher.
pub struct EventStream {
    settings: AmqpSettings,
    cursor: Arc<dyn StreamCursor>,
    events: Arc<dyn EventLog>,
    state: Mutex<State>,
}

/// Sets the phase back to standby when the publisher's task ends (the
/// lease lost, the process stopping).
struct StandbyOnDrop(Arc<EventStream>);

impl Drop for StandbyOnDrop {
    fn drop(&mut self) {
        self.0.state().phase = Phase::Standby;
    }
}

impl EventStream {
    /// A publisher to `settings`' broker, reading `events` from `cursor`.
    pub fn new(
        settings: AmqpSettings,
        cursor: Arc<dyn StreamCursor>,
        events: Arc<dyn EventLog>,
    ) -> Self {
        Self {
            settings,
            cursor,
            events,
            state: Mutex::new(State {
                phase: Phase::Standby,
                last_error: None,
                published_seq: None,
            }),
        }
    }

    /// Creates the stream's cursor if this is its first start (after the
    /// newest event), so events committed from now on are published even
    /// before the publisher first runs.
    pub async fn open(&self) -> rwa_domain::RepoResult<i64> {
        self.cursor.system_stream_open(STREAM).await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes until the task is aborted, reconnecting with backoff
    /// (0.5 s doubling to 30 s, with jitter) after every failure. `head`
    /// changes when newer events are numbered.
    pub(crate) async fn run(self: Arc<Self>, mut head: watch::Receiver<i64>) {
        let _standby = StandbyOnDrop(self.clone());
        let mut failures = 0u32;
        loop {
            self.state().phase = Phase::Connecting;
            let started = Instant::now();
            let Err(error) = self.session(&mut head).await;
            // A session that ran a while was a recovery: start the backoff
            // again from its first step.
            if started.elapsed() > Duration::from_secs(60) {
                failures = 0;
            }
            failures += 1;
            tracing::warn!(error = %error, broker = %self.settings.redacted_url(),
                "event stream: disconnected; reconnecting");
            metrics::counter!("rwa_notify_stream_disconnects_total").increment(1);
            {
                let mut state = self.state();
                state.phase = Phase::Connecting;
                state.last_error = Some(error);
            }
            let wait = backoff(
                failures,
                Duration::from_millis(500),
                Duration::from_secs(30),
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One connection: declares the exchange and publishes until something
    /// fails.
    async fn session(&self, head: &mut watch::Receiver<i64>) -> Result<Infallible, String> {
        let properties =
            ConnectionProperties::default().with_connection_name("rwa event stream".into());
        let mut uri: lapin::uri::AMQPUri = self
            .settings
            .url
            .parse()
            .map_err(|e| format!("not an AMQP URL: {e}"))?;
        // A connection that died silently (no close, no reset) is noticed
        // within two heartbeats; the broker's default is a minute.
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        let connection =
            tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
                .await
                .map_err(|_| format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))?
                .map_err(|e| format!("cannot connect: {e}"))?;
        let result = self.publish(&connection, head).await;
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            connection.close(200, "reconnecting".into()),
        )
        .await;
        result
    }

    async fn publish(
        &self,
        connection: &Connection,
        head: &mut watch::Receiver<i64>,
    ) -> Result<Infallible, String> {
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot turn on publisher confirms: {e}"))?;
        channel
            .exchange_declare(
                self.settings.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot declare exchange {}: {e}", self.settings.exchange))?;
        let mut cursor = self
            .cursor
            .system_stream_open(STREAM)
            .await
            .map_err(|e| format!("cannot read the stream's cursor: {e}"))?;
        {
            let mut state = self.state();
            state.phase = Phase::Connected;
            state.published_seq = Some(cursor);
            state.last_error = None;
        }
        tracing::info!(broker = %self.settings.redacted_url(), exchange = %self.settings.exchange,
            after = cursor, "event stream: publishing");
        loop {
            let events = self
                .events
                .system_all_numbered_after(cursor, BATCH)
                .await
                .map_err(|e| format!("cannot read the event log: {e}"))?;
            if events.is_empty() {
                if !connection.status().connected() || !channel.status().connected() {
                    return Err("the broker closed the connection".into());
                }
                tokio::select! {
                    _ = head.changed() => {}
                    () = tokio::time::sleep(IDLE_CHECK) => {}
                }
                continue;
            }
            let (through, failure) = self.publish_batch(&channel, &events, cursor).await;
            if through > cursor {
                let moved = self
                    .cursor
                    .system_stream_advance(STREAM, cursor, through)
                    .await
                    .map_err(|e| format!("cannot record the stream's cursor: {e}"))?;
                if !moved {
                    return Err("the stream's cursor moved under this publisher".into());
                }
                let published = events.iter().take_while(|e| e.seq <= through).count();
                metrics::counter!("rwa_notify_stream_published_total").increment(published as u64);
                metrics::gauge!("rwa_notify_stream_published_seq").set(through as f64);
                cursor = through;
                self.state().published_seq = Some(cursor);
            }
            if let Some(failure) = failure {
                return Err(failure);
            }
        }
    }

    /// Publishes `events`, then waits for their confirmations in order;
    /// answers the highest `seq` of the confirmed prefix and what stopped
    /// it, if anything did.
    async fn publish_batch(
        &self,
        channel: &lapin::Channel,
        events: &[Event],
        cursor: i64,
    ) -> (i64, Option<String>) {
        let mut pending = Vec::with_capacity(events.len());
        let mut failure = None;
        // One deadline for the whole batch: a broker that blocks publishers
        // (a memory or disk alarm) stops taking frames, and a publish then
        // waits without end.
        let deadline = tokio::time::Instant::now() + CONFIRM_TIMEOUT;
        for event in events {
            let body = serde_json::to_vec(event).expect("events serialize");
            let sent = tokio::time::timeout_at(
                deadline,
                channel.basic_publish(
                    self.settings.exchange.as_str().into(),
                    routing_key(event.org_id, &event.kind).into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties(event),
                ),
            )
            .await;
            match sent {
                Ok(Ok(confirm)) => pending.push((event.seq, confirm)),
                Ok(Err(e)) => {
                    failure = Some(format!("cannot publish event {}: {e}", event.seq));
                    break;
                }
                Err(_) => {
                    failure = Some(format!(
                        "the broker took no publish for {} s (blocked by a memory or disk alarm?)",
                        CONFIRM_TIMEOUT.as_secs()
                    ));
                    break;
                }
            }
        }
        let mut through = cursor;
        for (seq, confirm) in pending {
            let problem = match tokio::time::timeout_at(deadline, confirm).await {
                Ok(Ok(Confirmation::Ack(_))) => {
                    through = seq;
                    continue;
                }
                Ok(Ok(Confirmation::Nack(_))) => format!("the broker refused event {seq}"),
                Ok(Ok(Confirmation::NotRequested)) => {
                    format!("event {seq} was not confirmed (confirms are off)")
                }
                Ok(Err(e)) => format!("event {seq} unconfirmed: {e}"),
                Err(_) => format!(
                    "event {seq} unconfirmed after {} s",
                    CONFIRM_TIMEOUT.as_secs()
                ),
            };
            // What follows an unconfirmed event is published again after
            // it, keeping the order; the first problem is the one reported.
            return (through, failure.or(Some(problem)));
        }
        (through, failure)
    }
}

/// Persistent, JSON, with the event's id as the message id (consumers
/// de-duplicate by it), its type, its time, and `rwa-event-seq` /
/// `rwa-org-id` headers.
fn properties(event: &Event) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("rwa-event-seq".into(), AMQPValue::LongLongInt(event.seq));
    headers.insert(
        "rwa-org-id".into(),
        AMQPValue::LongString(event.org_id.to_string().into()),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(event.id.to_string().into())
        .with_type(event.kind.as_str().into())
        .with_timestamp(event.created_at.timestamp().max(0) as u64)
        .with_app_id("rwa".into())
        .with_headers(headers)
}

#[async_trait]
impl HealthCheck for EventStream {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn critical(&self) -> bool {
        false
    }

    /// The publisher's connection, the last confirmed `seq` and the last
    /// error; degraded while it reconnects (the events wait in the log).
    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let (phase, last_error, published_seq) = {
            let state = self.state();
            (state.phase, state.last_error.clone(), state.published_seq)
        };
        let status = match phase {
            Phase::Connecting => HealthStatus::Degraded,
            Phase::Connected | Phase::Standby => HealthStatus::Healthy,
        };
        let mut details = serde_json::Map::new();
        details.insert("state".into(), phase.as_str().into());
        details.insert("exchange".into(), self.settings.exchange.clone().into());
        details.insert("published_seq".into(), published_seq.into());
        details.insert("last_error".into(), last_error.into());
        CheckReport {
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_exchanges_are_checked() {
        let ok = AmqpSettings::parse("amqp://guest:guest@127.0.0.1:5672/%2f", None, true).unwrap();
        assert_eq!(ok.exchange, DEFAULT_EXCHANGE);
        assert_eq!(ok.redacted_url(), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert!(!format!("{ok:?}").contains("guest@"));
        assert!(
            AmqpSettings::parse("amqps://u:p@broker.example:5671/prod", Some("x.y"), true).is_ok()
        );
        let plain = AmqpSettings::parse("amqp://u:p@broker.example/", None, true).unwrap_err();
        assert!(plain.contains("amqps://"), "{plain}");
        assert!(AmqpSettings::parse("amqp://u:p@broker.example/", None, false).is_ok());
        assert!(AmqpSettings::parse("amqp://u:p@[::1]:5672/", None, true).is_ok());
        assert!(AmqpSettings::parse("amqp://u:p@localhost/", None, true).is_ok());
        assert!(AmqpSettings::parse("amqp://u:p@10.0.0.8/", None, true).is_err());
        assert!(AmqpSettings::parse("http://broker.example/", None, false).is_err());
        assert!(AmqpSettings::parse("amqp://", None, false).is_err());
        for bad in ["", "amq.topic", "has space", &"x".repeat(128)] {
            let e = AmqpSettings::parse("amqp://localhost", Some(bad), false).unwrap_err();
            assert!(e.contains("exchange"), "{bad}: {e}");
        }
    }
}
