//! The RabbitMQ event stream end to end, against the machine's RabbitMQ
//! (127.0.0.1:5672, guest/guest; `scripts/services.sh` starts it): a test
//! consumer on a durable queue bound to the stream's exchange gets every
//! event of two organizations in `seq` order with its routing key, id and
//! properties; then RabbitMQ's application is stopped and started again
//! while events are being committed, and after de-duplication by message id
//! the consumer still has every event once, in order, with `checks.amqp`
//! showing the reconnection.
//!
//! A second test cuts the publisher's connection (a proxy between it and
//! the broker) while a burst of 240 events is being published (batches may
//! be on the wire, unconfirmed, when it breaks): again nothing is lost or
//! reordered.
//!
//! The tests take turns (`BROKER`): one stops the broker the other uses.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::api::Api;
use common::{Server, eventually};
use lapin::options::{
    BasicAckOptions, BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const WAIT: Duration = Duration::from_secs(90);
/// Held by each test for its whole run.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One message as the consumer got it.
#[derive(Clone, Debug)]
struct Got {
    routing_key: String,
    message_id: String,
    seq: i64,
    header_seq: Option<i64>,
    content_type: String,
    persistent: bool,
    body: Value,
}

/// A consumer on its own durable queue, reconnecting whenever the broker
/// goes away, acknowledging each message after recording it.
struct Consumer {
    got: Arc<Mutex<Vec<Got>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn declare(exchange: &str, queue: &str) -> Connection {
    let connection = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (scripts/services.sh starts it)");
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    connection
}

impl Consumer {
    fn start(queue: String) -> Consumer {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let task = tokio::spawn(async move {
            loop {
                // Errors are the broker going away: connect again.
                let _ = Self::drain(&queue, &sink).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Consumer { got, task }
    }

    async fn drain(queue: &str, sink: &Mutex<Vec<Got>>) -> lapin::Result<()> {
        let connection = Connection::connect(BROKER, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        loop {
            let Some(message) = channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await?
            else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let properties = &message.delivery.properties;
            let body: Value = serde_json::from_slice(&message.delivery.data).unwrap();
            let header_seq = properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("rwa-event-seq").cloned())
                .and_then(|v| match v {
                    AMQPValue::LongLongInt(n) => Some(n),
                    _ => None,
                });
            sink.lock().unwrap().push(Got {
                routing_key: message.delivery.routing_key.to_string(),
                message_id: properties
                    .message_id()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                seq: body["seq"].as_i64().unwrap(),
                header_seq,
                content_type: properties
                    .content_type()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                persistent: *properties.delivery_mode() == Some(2),
                body,
            });
            message.delivery.ack(BasicAckOptions::default()).await?;
        }
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// `seq`s de-duplicated by message id, in arrival order.
    fn once(&self) -> Vec<i64> {
        let mut seen = HashSet::new();
        self.got()
            .into_iter()
            .filter(|g| seen.insert(g.message_id.clone()))
            .map(|g| g.seq)
            .collect()
    }
}

/// `rabbitmqctl stop_app` / `start_app`: the broker's application stops
/// (every connection closed, listeners down) and starts again with its
/// durable exchanges, queues and persistent messages.
fn rabbitmqctl(command: &str) {
    let out = Command::new("rabbitmqctl")
        .arg(command)
        .output()
        .expect("rabbitmqctl (installed with RabbitMQ)");
    assert!(
        out.status.success(),
        "rabbitmqctl {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts the broker's application again however the test ends.
struct RestartGuard;

impl Drop for RestartGuard {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").output();
    }
}

/// Creates investors `range` in the organization of `key`, `writers` at a
/// time, each pausing `pause` after each: one `investor.created` apiece.
fn writer(
    s: &Server,
    key: &str,
    range: std::ops::Range<usize>,
    writers: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let url = s.url("/v1/investors");
    let key = key.to_owned();
    tokio::spawn(async move {
        let client = Client::new();
        let numbers: Vec<usize> = range.collect();
        let mut tasks = tokio::task::JoinSet::new();
        for part in numbers.chunks(numbers.len().div_ceil(writers.max(1)).max(1)) {
            let (client, url, key, part) =
                (client.clone(), url.clone(), key.clone(), part.to_vec());
            tasks.spawn(async move {
                for n in part {
                    let response = client
                        .post(&url)
                        .bearer_auth(&key)
                        .json(&json!({
                            "name": format!("Stream Investor {n}"),
                            "email": format!("stream{n}.{}@example.com", uuid::Uuid::now_v7().simple()),
                            "country": "DE",
                            "type": "individual",
                            "accredited": false,
                        }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                    tokio::time::sleep(pause).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    })
}

/// Every event of the organizations, as `/v1/events` lists them, by `seq`.
async fn all_events(api: &Api<'_>, keys: &[&str]) -> Vec<Value> {
    let mut events = Vec::new();
    for key in keys {
        let mut after = 0;
        loop {
            let page = api
                .get(key, &format!("/v1/events?after={after}&limit=200"))
                .await;
            let items = page["items"].as_array().unwrap().clone();
            let Some(last) = items.last() else { break };
            after = last["seq"].as_i64().unwrap();
            events.extend(items);
        }
    }
    events.sort_by_key(|e| e["seq"].as_i64().unwrap());
    events
}

async fn amqp_check(s: &Server) -> Value {
    s.detailed_health().await["checks"]["amqp"].clone()
}

#[tokio::test]
async fn every_event_reaches_rabbitmq_in_order_through_a_broker_restart() {
    let _turn = TURN.lock().await;
    let _restart = RestartGuard;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let exchange = format!("rwa-test-{run}");
    let queue = format!("rwa-test-{run}");
    let setup = declare(&exchange, &queue).await;

    let s = Server::start(&[
        ("RWA_AMQP_URL", BROKER),
        ("RWA_AMQP_EXCHANGE", exchange.as_str()),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (org_a, a) = s.create_org("Stream Fund A");
    let (org_b, b) = s.create_org("Stream Fund B");
    let consumer = Consumer::start(queue.clone());

    // Two organizations, interleaved.
    for n in 0..12 {
        let key = if n % 3 == 2 { &b } else { &a };
        writer(&s, key, n..n + 1, 1, Duration::ZERO).await.unwrap();
    }
    let events = all_events(&api, &[&a, &b]).await;
    let want: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(want.len() >= 12, "{events:?}");
    assert!(
        eventually(WAIT, async || consumer.once() == want).await,
        "every event once, in seq order: {:?} (want {want:?})\n{}",
        consumer.once(),
        s.log_lines().join("\n")
    );
    let got = consumer.got();
    assert_eq!(
        got.iter().map(|g| g.seq).collect::<Vec<_>>(),
        want,
        "no duplicates while nothing failed"
    );
    for (g, event) in got.iter().zip(&events) {
        let org = if event["org_id"] == org_a.as_str() {
            &org_a
        } else {
            assert_eq!(event["org_id"], org_b.as_str());
            &org_b
        };
        assert_eq!(
            g.routing_key,
            format!("{org}.{}", event["type"].as_str().unwrap())
        );
        assert_eq!(g.message_id, event["id"].as_str().unwrap());
        assert_eq!(g.header_seq, Some(g.seq));
        assert_eq!(g.content_type, "application/json");
        assert!(g.persistent, "persistent messages survive a broker restart");
        assert_eq!(&g.body, event, "the body is the event as the API shows it");
    }
    let check = amqp_check(&s).await;
    assert_eq!(check["status"], "healthy", "{check}");
    assert_eq!(check["state"], "connected", "{check}");
    assert_eq!(check["exchange"], exchange.as_str(), "{check}");
    assert!(!check.to_string().contains("guest:guest"), "{check}");
    // The cursor is recorded after the confirmations, which may come after
    // the consumer already has the messages.
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["published_seq"]
            == json!(want.last().unwrap()))
        .await,
        "{}",
        amqp_check(&s).await
    );

    // Mid-stream: events keep being committed while the broker stops and
    // starts again.
    let before = want.len();
    let writer = writer(&s, &a, 100..160, 1, Duration::from_millis(25));
    assert!(
        eventually(WAIT, async || consumer.once().len() >= before + 10).await,
        "the stream moves before the restart: {}",
        consumer.once().len()
    );
    drop(setup);
    rabbitmqctl("stop_app");
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["state"] == "connecting").await,
        "the publisher notices the broker went away: {}",
        amqp_check(&s).await
    );
    let check = amqp_check(&s).await;
    assert_eq!(check["status"], "degraded", "{check}");
    assert!(check["last_error"].is_string(), "{check}");
    rabbitmqctl("start_app");
    writer.await.unwrap();

    let events = all_events(&api, &[&a, &b]).await;
    let want: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(want.len(), before + 60);
    assert!(
        eventually(WAIT, async || consumer.once() == want).await,
        "after the restart, every event once (by message id), in order: {:?} (want {want:?})\n{}",
        consumer.once(),
        s.log_lines()
            .iter()
            .filter(|l| l.contains("stream"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["state"] == "connected").await,
        "{}",
        amqp_check(&s).await
    );
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["published_seq"]
            == json!(want.last().unwrap()))
        .await,
        "{}",
        amqp_check(&s).await
    );
    let check = amqp_check(&s).await;
    assert_eq!(check["status"], "healthy", "{check}");
    assert!(
        check["last_error"].is_null(),
        "cleared once connected: {check}"
    );
    let duplicates = consumer.got().len() - want.len();
    eprintln!("duplicates after the restart (at least once): {duplicates}");

    // The test's own exchange and queue go.
    drop(consumer);
    let cleanup = Connection::connect(BROKER, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = cleanup.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}

#[tokio::test]
async fn a_connection_cut_while_a_burst_streams_loses_nothing() {
    let _turn = TURN.lock().await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let exchange = format!("rwa-test-{run}");
    let queue = format!("rwa-test-{run}");
    let setup = declare(&exchange, &queue).await;
    let proxy = rwa_testkit::TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let through_proxy = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let s = Server::start(&[
        ("RWA_AMQP_URL", through_proxy.as_str()),
        ("RWA_AMQP_EXCHANGE", exchange.as_str()),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, key) = s.create_org("Cut Fund");
    let consumer = Consumer::start(queue.clone());
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["state"] == "connected").await,
        "{}",
        amqp_check(&s).await
    );

    // A burst from 8 writers; the connection is cut while it streams.
    let burst = writer(&s, &key, 0..240, 8, Duration::ZERO);
    assert!(
        eventually(WAIT, async || consumer.once().len() >= 40).await,
        "the burst streams: {}",
        consumer.once().len()
    );
    proxy.cut();
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["state"] == "connecting").await,
        "the publisher notices the cut: {}",
        amqp_check(&s).await
    );
    proxy.restore().await;
    burst.await.unwrap();

    let events = all_events(&api, &[&key]).await;
    let want: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(want.len(), 240);
    assert!(
        eventually(WAIT, async || consumer.once() == want).await,
        "after the cut, every event once (by message id), in order: {:?} (want {want:?})",
        consumer.once()
    );
    let duplicates = consumer.got().len() - want.len();
    eprintln!("duplicates after the cut (at least once): {duplicates}");
    assert!(
        eventually(WAIT, async || amqp_check(&s).await["published_seq"]
            == json!(want.last().unwrap()))
        .await,
        "{}",
        amqp_check(&s).await
    );

    drop(consumer);
    let channel = setup.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await;
}
