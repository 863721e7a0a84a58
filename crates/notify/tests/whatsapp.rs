//! The WhatsApp connector against a local stand-in for the Cloud API that
//! records every request (when, path, bearer token, JSON body) and answers
//! from a script: the exact request, `Retry-After` honoured, 5xx retried
//! then given up, 4xx never retried, and the breaker opening, refusing
//! without calling, showing in health, and closing after a probe.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rwa_domain::health::{HealthCheck, HealthStatus};
use rwa_domain::notification::{Phone, parse_phone};
use rwa_notify::whatsapp::{BreakerState, WhatsApp, WhatsAppError, WhatsAppSettings};
use serde_json::{Value, json};

const TOKEN: &str = "EAAtest-token-42";
const PHONE_ID: &str = "106540352242922";

/// One scripted answer.
#[derive(Clone)]
enum Reply {
    /// 200 with `{"messages":[{"id": …}]}`.
    Sent(&'static str),
    /// This status, optional `Retry-After`, this JSON body.
    Status(u16, Option<&'static str>, Value),
    /// Never answers (the client's timeout must end the attempt).
    Hang,
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Recorded {
    at: Instant,
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

struct Script {
    replies: VecDeque<Reply>,
    /// Once `replies` is used up.
    otherwise: Reply,
    requests: Vec<Recorded>,
}

type Shared = Arc<Mutex<Script>>;

struct MockApi {
    url: String,
    script: Shared,
}

impl MockApi {
    async fn start() -> Self {
        let script: Shared = Arc::new(Mutex::new(Script {
            replies: VecDeque::new(),
            otherwise: Reply::Status(500, None, json!({"error": {"message": "unscripted"}})),
            requests: Vec::new(),
        }));
        // Every path reaches the handler, so a wrong one is recorded and
        // fails the path assertion rather than hiding behind a 404.
        let app = Router::new().fallback(answer).with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues answers for the next requests.
    fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().replies.extend(replies);
    }

    /// The answer once the queue is empty.
    fn otherwise(&self, reply: Reply) {
        self.lock().otherwise = reply;
    }

    fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    fn count(&self) -> usize {
        self.lock().requests.len()
    }

    /// A connector to this server with short backoff; `tune` adjusts the rest.
    fn connector(&self, tune: impl FnOnce(&mut WhatsAppSettings)) -> WhatsApp {
        let mut settings =
            WhatsAppSettings::parse(&self.url, TOKEN, PHONE_ID, false).expect("settings");
        settings.retry_backoff = Duration::from_millis(10);
        tune(&mut settings);
        WhatsApp::new(settings).expect("connector")
    }
}

async fn answer(
    State(script): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let reply = {
        let mut script = script.lock().unwrap_or_else(|p| p.into_inner());
        script.requests.push(Recorded {
            at: Instant::now(),
            method,
            path: uri.path().to_owned(),
            authorization: text(header::AUTHORIZATION),
            content_type: text(header::CONTENT_TYPE),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        });
        match script.replies.pop_front() {
            Some(reply) => reply,
            None => script.otherwise.clone(),
        }
    };
    match reply {
        Reply::Sent(id) => {
            axum::Json(json!({"messaging_product": "whatsapp", "messages": [{"id": id}]}))
                .into_response()
        }
        Reply::Status(status, retry_after, body) => {
            let mut response = (
                StatusCode::from_u16(status).expect("status"),
                axum::Json(body),
            )
                .into_response();
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, after.parse().expect("header"));
            }
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}

fn recipient() -> Phone {
    parse_phone("+4915112345678", "phone").expect("recipient")
}

fn params() -> Vec<String> {
    vec!["Alice".into(), "1,000 ACME".into()]
}

async fn send(whatsapp: &WhatsApp) -> Result<String, WhatsAppError> {
    whatsapp
        .send_template(&recipient(), "transfer_settled", "en_US", &params())
        .await
}

/// The request every send above must make, checked field by field.
fn assert_exact(request: &Recorded) {
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.path, format!("/v21.0/{PHONE_ID}/messages"));
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        request.body,
        json!({
            "messaging_product": "whatsapp",
            "to": "4915112345678",
            "type": "template",
            "template": {
                "name": "transfer_settled",
                "language": {"code": "en_US"},
                "components": [{
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Alice"},
                        {"type": "text", "text": "1,000 ACME"},
                    ],
                }],
            },
        })
    );
}

/// Polls `done` every 20 ms, failing after 10 s.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sends_a_template_with_the_exact_request_and_returns_the_message_id() {
    let api = MockApi::start().await;
    api.then([Reply::Sent("wamid.X")]);
    let whatsapp = api.connector(|_| {});

    assert_eq!(send(&whatsapp).await, Ok("wamid.X".to_owned()));

    let requests = api.requests();
    assert_eq!(requests.len(), 1);
    assert_exact(&requests[0]);
    let report = whatsapp.check().await;
    assert_eq!(whatsapp.name(), "whatsapp");
    assert!(!whatsapp.critical());
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.details["breaker"], "closed");
    assert_eq!(report.details["last_error"], Value::Null);
}

#[tokio::test]
async fn waits_what_a_429_retry_after_asks_then_sends() {
    let api = MockApi::start().await;
    api.then([
        Reply::Status(
            429,
            Some("1"),
            json!({"error": {"message": "rate limited"}}),
        ),
        Reply::Sent("wamid.X"),
    ]);
    let whatsapp = api.connector(|_| {});

    assert_eq!(send(&whatsapp).await, Ok("wamid.X".to_owned()));

    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    requests.iter().for_each(assert_exact);
    // The retry waited out Retry-After (not the 10 ms backoff): a lower
    // bound, measured on the server's own clock.
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(990), "retried after {gap:?}");
}

#[tokio::test]
async fn hands_a_retry_after_beyond_the_cap_back_to_the_caller() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(429, Some("120"), json!({})));
    let whatsapp = api.connector(|s| s.max_retry_wait = Duration::from_secs(2));

    assert_eq!(
        send(&whatsapp).await,
        Err(WhatsAppError::RetryAfter(Duration::from_secs(120)))
    );
    assert_eq!(api.count(), 1, "no retry inline");
}

#[tokio::test]
async fn gives_up_on_repeated_5xx_after_max_attempts() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(503, None, json!({})));
    let whatsapp = api.connector(|s| s.max_attempts = 3);

    match send(&whatsapp).await {
        Err(WhatsAppError::Transient { attempts, message }) => {
            assert_eq!(attempts, 3);
            assert!(message.contains("503"), "{message}");
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    requests.iter().for_each(assert_exact);
}

#[tokio::test]
async fn a_400_is_rejected_with_the_apis_message_and_not_retried() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(
        400,
        None,
        json!({"error": {"message": "bad template", "code": 132001}}),
    ));
    let whatsapp = api.connector(|s| s.max_attempts = 3);

    let error = send(&whatsapp).await.expect_err("rejected");
    assert_eq!(
        error,
        WhatsAppError::Rejected {
            status: 400,
            message: "bad template".into()
        }
    );
    assert!(!error.is_transient());
    assert_eq!(api.count(), 1);
    // The API answered: the breaker stays closed.
    let report = whatsapp.check().await;
    assert_eq!(report.details["breaker"], "closed");
    assert!(
        report.details["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("bad template"))
    );
}

#[tokio::test]
async fn a_success_without_a_message_id_is_not_retried() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(200, None, json!({"messages": []})));
    let whatsapp = api.connector(|_| {});

    assert!(matches!(
        send(&whatsapp).await,
        Err(WhatsAppError::Malformed(_))
    ));
    assert_eq!(api.count(), 1, "the message may have gone out: never twice");
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_transient() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Hang);
    let whatsapp = api.connector(|s| {
        s.timeout = Duration::from_millis(300);
        s.max_attempts = 2;
    });
    match send(&whatsapp).await {
        Err(WhatsAppError::Transient { attempts: 2, .. }) => {}
        other => panic!("expected a transient error, got {other:?}"),
    }
    assert_eq!(api.count(), 2, "the timed-out attempt was retried");

    // A port nothing listens on any more.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut settings = WhatsAppSettings::parse(&url, TOKEN, PHONE_ID, false).expect("settings");
    settings.retry_backoff = Duration::from_millis(10);
    let unreachable = WhatsApp::new(settings).expect("connector");
    let error = send(&unreachable).await.expect_err("unreachable");
    assert!(error.is_transient(), "{error:?}");
    assert!(!error.to_string().contains(TOKEN));
}

#[tokio::test]
async fn the_breaker_opens_after_the_threshold_and_refuses_without_calling() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(500, None, json!({})));
    // A cool-down far beyond the test: the breaker cannot half-open here.
    let whatsapp = api.connector(|s| {
        s.max_attempts = 2;
        s.breaker_threshold = 2;
        s.breaker_cool_down = Duration::from_secs(3600);
    });

    for _ in 0..2 {
        assert!(matches!(
            send(&whatsapp).await,
            Err(WhatsAppError::Transient { attempts: 2, .. })
        ));
    }
    assert_eq!(api.count(), 4);
    assert_eq!(whatsapp.breaker_state(), BreakerState::Open);

    assert_eq!(send(&whatsapp).await, Err(WhatsAppError::Unavailable));
    assert_eq!(api.count(), 4, "an open breaker does not call the API");

    let report = whatsapp.check().await;
    assert_eq!(report.status, HealthStatus::Degraded);
    assert_eq!(report.details["breaker"], "open");
    let last_error = report.details["last_error"].as_str().expect("last error");
    assert!(last_error.contains("500"), "{last_error}");
    let shown = serde_json::to_string(&report).expect("json");
    assert!(!shown.contains(TOKEN), "health never shows the token");
}

#[tokio::test]
async fn after_the_cool_down_a_successful_probe_closes_the_breaker() {
    let api = MockApi::start().await;
    api.otherwise(Reply::Status(502, None, json!({})));
    let whatsapp = api.connector(|s| {
        s.max_attempts = 1;
        s.breaker_threshold = 1;
        s.breaker_cool_down = Duration::from_millis(200);
    });

    assert!(matches!(
        send(&whatsapp).await,
        Err(WhatsAppError::Transient { .. })
    ));
    // Half-open is reachable only through open: this proves the trip too.
    wait_for("the breaker to half-open", || {
        whatsapp.breaker_state() == BreakerState::HalfOpen
    })
    .await;
    assert_eq!(whatsapp.check().await.status, HealthStatus::Degraded);

    api.otherwise(Reply::Sent("wamid.probe"));
    assert_eq!(send(&whatsapp).await, Ok("wamid.probe".to_owned()));
    assert_eq!(api.count(), 2);
    assert_exact(&api.requests()[1]);
    assert_eq!(whatsapp.breaker_state(), BreakerState::Closed);
    let report = whatsapp.check().await;
    assert_eq!(report.status, HealthStatus::Healthy);
    assert_eq!(report.details["breaker"], "closed");
    assert_eq!(report.details["last_error"], Value::Null);
}

#[tokio::test]
async fn a_probe_abandoned_by_its_caller_does_not_wedge_the_breaker() {
    let api = MockApi::start().await;
    api.then([Reply::Status(503, None, json!({})), Reply::Hang]);
    api.otherwise(Reply::Sent("wamid.after"));
    let whatsapp = api.connector(|s| {
        // Longer than any wait below: only the caller ends the probe.
        s.timeout = Duration::from_secs(60);
        s.max_attempts = 1;
        s.breaker_threshold = 1;
        s.breaker_cool_down = Duration::from_millis(200);
    });
    assert!(send(&whatsapp).await.is_err());
    wait_for("the breaker to half-open", || {
        whatsapp.breaker_state() == BreakerState::HalfOpen
    })
    .await;

    // The probe hangs, and its caller gives up on it (a worker's own
    // deadline) once the server has it: dropped mid-request.
    let mut probe = Box::pin(send(&whatsapp));
    tokio::select! {
        outcome = &mut probe => panic!("the hanging probe finished: {outcome:?}"),
        () = wait_for("the probe to reach the server", || api.count() == 2) => {}
    }
    drop(probe);

    // Counted as a failure: open again, and after the cool-down a new probe
    // goes out instead of every call being refused for good.
    wait_for("the breaker to half-open again", || {
        whatsapp.breaker_state() == BreakerState::HalfOpen
    })
    .await;
    assert_eq!(send(&whatsapp).await, Ok("wamid.after".to_owned()));
    assert_eq!(whatsapp.breaker_state(), BreakerState::Closed);
}
