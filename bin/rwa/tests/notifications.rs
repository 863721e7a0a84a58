//! Notifications end to end against the real binary. Webhooks: signed deliveries verified
//! by the README's receiver run as written, a receiver down then up getting
//! every event in order and once after de-duplication, a hanging endpoint
//! delaying nobody, replays of one delivery and of a range, secret rotation
//! with both signatures (and a second rotation keeping the first secret's
//! overlap), redirects not followed, SSRF refusals (literal
//! loopback, private, a name resolving to loopback) and an endpoint turned
//! off after failing for longer than allowed, with its e-mail received by a
//! real SMTP server. WhatsApp: the exact request reaches a stand-in for the
//! Cloud API, and its breaker shows in `/health/detailed`.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::api::Api;
use common::{Server, eventually};
use reqwest::{Client, Method};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// What a test receiver answers.
const UP: u8 = 0;
const DOWN: u8 = 1;
const HANG: u8 = 2;
const REDIRECT: u8 = 3;

/// One request a test receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    seq: i64,
    signature: String,
    /// Whether it was answered 2xx.
    accepted: bool,
}

/// An HTTP receiver in the test, answering as its mode says.
#[derive(Clone)]
struct Receiver {
    mode: Arc<AtomicU8>,
    got: Arc<Mutex<Vec<Received>>>,
    url: String,
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, HeaderMap) {
    let mode = r.mode.load(Ordering::SeqCst);
    if mode == HANG {
        std::future::pending::<()>().await;
    }
    let event: Value = serde_json::from_str(&body).expect("the body is the event as JSON");
    let header = |n: &str| {
        headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("Rwa-Event-Id"), event["id"].as_str().unwrap());
    assert_eq!(header("Rwa-Event-Seq"), event["seq"].to_string());
    r.got.lock().unwrap().push(Received {
        id: header("Rwa-Event-Id"),
        seq: event["seq"].as_i64().unwrap(),
        signature: header("Rwa-Signature"),
        accepted: mode == UP,
    });
    let mut out = HeaderMap::new();
    match mode {
        UP => (StatusCode::NO_CONTENT, out),
        REDIRECT => {
            out.insert("location", format!("{}/elsewhere", r.url).parse().unwrap());
            (StatusCode::FOUND, out)
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, out),
    }
}

impl Receiver {
    async fn start(mode: u8) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let r = Receiver {
            mode: Arc::new(AtomicU8::new(mode)),
            got: Arc::default(),
            url,
        };
        let app = axum::Router::new().fallback(receive).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Accepted events, de-duplicated by id, in arrival order.
    fn accepted_once(&self) -> Vec<i64> {
        let mut seen = HashSet::new();
        self.got()
            .into_iter()
            .filter(|r| r.accepted && seen.insert(r.id.clone()))
            .map(|r| r.seq)
            .collect()
    }
}

/// The README's receiver, run as written.
struct ReadmeReceiver {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    url: String,
}

impl Drop for ReadmeReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn readme_receiver_source() -> String {
    let readme = include_str!("../../../README.md");
    let after = readme
        .split("<!-- webhook-receiver -->")
        .nth(1)
        .expect("the README marks its webhook receiver");
    let code = after
        .split("```python\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a python block follows the marker");
    code.to_owned()
}

impl ReadmeReceiver {
    fn start(dir: &std::path::Path, port: u16, secrets: &[&str]) -> ReadmeReceiver {
        let file = dir.join("receiver.py");
        std::fs::write(&file, readme_receiver_source()).unwrap();
        let mut child = Command::new("python3")
            .arg(&file)
            .arg(port.to_string())
            .args(secrets)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_str(&line).unwrap());
            }
        });
        ReadmeReceiver {
            child,
            lines,
            url: format!("http://127.0.0.1:{port}/hooks"),
        }
    }

    fn seqs(&self) -> Vec<i64> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| l["seq"].as_i64().unwrap())
            .collect()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Creates an investor: one `investor.created` event. Answers its `seq`.
async fn event(api: &Api<'_>, key: &str, n: usize) -> i64 {
    let (status, _, body) = api
        .call(
            key,
            Method::POST,
            "/v1/investors",
            None,
            Some(json!({
                "name": format!("Hook Investor {n} {}", uuid::Uuid::now_v7()),
                "email": format!("hook{n}.{}@example.com", uuid::Uuid::now_v7().simple()),
                "country": "DE",
                "type": "individual",
                "accredited": false,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let events = api
        .get(key, "/v1/events?type=investor.created&limit=200")
        .await;
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["data"]["investor"]["id"] == id.as_str())
        .and_then(|e| e["seq"].as_i64())
        .unwrap_or_else(|| panic!("investor.created for {id}: {events}"))
}

async fn hook(api: &Api<'_>, key: &str, url: &str, events: Value) -> Value {
    let (status, _, body) = api
        .call(
            key,
            Method::POST,
            "/v1/webhooks",
            None,
            Some(json!({ "url": url, "events": events })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn deliveries(api: &Api<'_>, key: &str, id: &str) -> Vec<Value> {
    api.get(key, &format!("/v1/webhooks/{id}/deliveries?limit=200"))
        .await["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn signatures_verify_with_the_readme_receiver_through_a_rotation() {
    let s = Server::start(&[("RWA_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, admin) = s.create_org("Hooked Fund");
    let dir = tempfile::tempdir().unwrap();

    // Registered before the receiver runs: the first attempts find nobody.
    let port = free_port();
    let created = hook(
        &api,
        &admin,
        &format!("http://127.0.0.1:{port}/hooks"),
        json!(["investor.created"]),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first = created["secret"].as_str().unwrap().to_owned();
    assert!(first.starts_with("whsec_"), "{created}");
    let got = api.get(&admin, &format!("/v1/webhooks/{id}")).await;
    assert!(
        got.get("secret").is_none(),
        "the secret is shown once: {got}"
    );

    let mut seqs = Vec::new();
    for n in 0..3 {
        seqs.push(event(&api, &admin, n).await);
    }
    let old_only = ReadmeReceiver::start(dir.path(), port, &[&first]);
    assert!(
        eventually(WAIT, async || old_only.seqs() == seqs).await,
        "the README receiver gets every event once, in order: {:?} (want {seqs:?})",
        old_only.seqs()
    );

    // Rotated: both signatures, so a receiver knowing only the old secret
    // and one knowing only the new one both accept.
    let (status, _, rotated) = api
        .call(
            &admin,
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(
        rotated["previous_secret_expires_at"].is_string(),
        "{rotated}"
    );
    seqs.push(event(&api, &admin, 3).await);
    assert!(
        eventually(WAIT, async || old_only.seqs() == seqs).await,
        "the old secret still verifies during the overlap: {:?}",
        old_only.seqs()
    );
    let new_port = free_port();
    let new_only = ReadmeReceiver::start(dir.path(), new_port, &[&second]);
    let (status, _, _) = api
        .call(
            &admin,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            None,
            Some(json!({ "url": new_only.url })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let next = event(&api, &admin, 4).await;
    // A step that sent the previous event just before the change may have
    // its record refused (the endpoint's version moved): that event then
    // goes again, to the new URL, before `next`. At least once, in order.
    let last_before = *seqs.last().unwrap();
    assert!(
        eventually(WAIT, async || {
            let got = new_only.seqs();
            got.last() == Some(&next) && (got.len() == 1 || got == vec![last_before, next])
        })
        .await,
        "the new secret verifies: {:?}",
        new_only.seqs()
    );

    // Rotated again during the overlap (say, a retry whose answer was
    // lost): the second secret, which receivers may never have seen, is
    // replaced; the first keeps its overlap. A receiver knowing only the
    // second now refuses; one knowing only the first still accepts.
    let (status, _, again) = api
        .call(
            &admin,
            Method::POST,
            &format!("/v1/webhooks/{id}/rotate-secret"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        again["previous_secret_expires_at"], rotated["previous_secret_expires_at"],
        "the first secret keeps its overlap"
    );
    let refused = event(&api, &admin, 5).await;
    assert!(
        eventually(WAIT, async || deliveries(&api, &admin, &id)
            .await
            .iter()
            .any(|d| {
                d["event_seq"] == refused && d["status_code"] == 401 && d["succeeded"] == false
            }))
        .await,
        "a receiver with the replaced secret refuses: {:?}",
        deliveries(&api, &admin, &id).await
    );
    // (A step that began under the earlier secrets may also have sent it
    // with them, once: its record is refused and the event sent again.)
    let (status, _, _) = api
        .call(
            &admin,
            Method::PATCH,
            &format!("/v1/webhooks/{id}"),
            None,
            Some(json!({ "url": old_only.url })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        eventually(WAIT, async || old_only.seqs().contains(&refused)).await,
        "the first secret still verifies: {:?}",
        old_only.seqs()
    );
}

#[tokio::test]
async fn outboxes_are_ordered_at_least_once_independent_and_replayable() {
    let s = Server::start(&[
        ("RWA_WEBHOOK_ALLOW_PRIVATE", "true"),
        // Longer than the test waits for the healthy endpoint: a hanging
        // endpoint that held up the others would fail it.
        ("RWA_WEBHOOK_TIMEOUT_MS", "60000"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, admin) = s.create_org("Outbox Fund");
    let auditor = s.create_key(&_org, "auditor");

    // Validation names the fields.
    let (status, _, problem) = api
        .call(
            &admin,
            Method::POST,
            "/v1/webhooks",
            None,
            Some(json!({ "url": "ftp://example.com/x", "events": ["investor.created", "Bad"] })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        common::problem_fields(&problem),
        ["url", "events[1]"],
        "{problem}"
    );
    let (status, _, _) = api
        .call(
            &auditor,
            Method::POST,
            "/v1/webhooks",
            None,
            Some(json!({ "url": "http://x.example", "events": ["*"] })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "webhooks are admin's");
    let (status, _, problem) = api
        .call(
            &admin,
            Method::PUT,
            "/v1/org/notifications",
            None,
            Some(json!({ "email": { "to": ["ops@outbox.example"], "events": ["*"] } })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no SMTP here: {problem}"
    );
    assert_eq!(common::problem_fields(&problem), ["email"], "{problem}");

    let flaky = Receiver::start(DOWN).await;
    let hanging = Receiver::start(HANG).await;
    let healthy = Receiver::start(UP).await;
    let redirecting = Receiver::start(REDIRECT).await;
    let flaky_hook = hook(&api, &admin, &flaky.url, json!(["investor.*"])).await;
    let flaky_id = flaky_hook["id"].as_str().unwrap().to_owned();
    hook(&api, &admin, &hanging.url, json!(["*"])).await;
    let redirect_hook = hook(&api, &admin, &redirecting.url, json!(["investor.created"])).await;
    hook(&api, &admin, &healthy.url, json!(["investor.created"])).await;

    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(event(&api, &admin, n).await);
    }
    // The hanging endpoint holds its first attempt for a minute; the
    // healthy one gets everything meanwhile.
    assert!(
        eventually(WAIT / 2, async || healthy.accepted_once() == seqs).await,
        "the healthy endpoint is not delayed: {:?}",
        healthy.accepted_once()
    );
    assert!(
        hanging.got().is_empty(),
        "the hanging endpoint has not answered anything"
    );
    assert!(
        healthy
            .got()
            .iter()
            .all(|r| r.signature.starts_with("t=") && r.signature.matches(",v1=").count() == 1),
        "one signature before any rotation: {:?}",
        healthy.got()
    );

    // Down: its head event is retried, nothing after it is sent.
    assert!(
        eventually(WAIT, async || flaky.got().len() >= 2).await,
        "the failing endpoint is retried"
    );
    assert!(
        flaky.got().iter().all(|r| r.seq == seqs[0]),
        "order holds: {:?}",
        flaky.got()
    );
    let failing = api.get(&auditor, &format!("/v1/webhooks/{flaky_id}")).await;
    assert!(
        failing["failing_since"].is_string() && failing["attempts"].as_i64() >= Some(1),
        "{failing}"
    );
    assert_eq!(
        failing["last_error"], "answered 503 Service Unavailable",
        "{failing}"
    );
    flaky.set(UP);
    assert!(
        eventually(WAIT, async || flaky.accepted_once() == seqs).await,
        "up again: every event, in order, once: {:?}",
        flaky.accepted_once()
    );
    let attempts = deliveries(&api, &auditor, &flaky_id).await;
    let head: Vec<&Value> = attempts
        .iter()
        .filter(|d| d["event_seq"] == seqs[0])
        .collect();
    assert!(head.len() >= 3, "{attempts:?}");
    assert_eq!(head.iter().filter(|d| d["succeeded"] == true).count(), 1);
    assert_eq!(head[0]["status_code"], 503);
    assert_eq!(head[0]["attempt"], 1);
    assert_eq!(head.last().unwrap()["attempt"], head.len() as i64);
    assert!(head[0]["latency_ms"].is_i64() && head[0]["event_type"] == "investor.created");
    let done = api.get(&admin, &format!("/v1/webhooks/{flaky_id}")).await;
    assert!(
        done["failing_since"].is_null() && done["attempts"] == 0,
        "{done}"
    );

    // Replay one delivery: the event arrives again (a duplicate receivers
    // drop by id), marked as a replay in the list.
    let delivered = attempts
        .iter()
        .find(|d| d["event_seq"] == seqs[2] && d["succeeded"] == true)
        .unwrap();
    let before = flaky.got().len();
    let (status, _, replay) = api
        .call(
            &admin,
            Method::POST,
            &format!(
                "/v1/webhooks/{flaky_id}/deliveries/{}/replay",
                delivered["id"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{replay}");
    assert!(
        eventually(WAIT, async || flaky.got().len() == before + 1).await,
        "the replay arrives"
    );
    assert_eq!(flaky.got().last().unwrap().seq, seqs[2]);
    assert!(
        eventually(WAIT, async || deliveries(&api, &auditor, &flaky_id)
            .await
            .iter()
            .any(|d| d["replay"] == true && d["event_seq"] == seqs[2]))
        .await
    );
    assert_eq!(
        flaky.accepted_once(),
        seqs,
        "de-duplicated by id, nothing new"
    );

    // Replay a range: from the third event on, in order.
    let before = flaky.got().len();
    let (status, _, _) = api
        .call(
            &admin,
            Method::POST,
            &format!("/v1/webhooks/{flaky_id}/replay?from_seq={}", seqs[2]),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        eventually(WAIT, async || flaky.got().len() >= before + 3).await,
        "the range arrives again"
    );
    let again: Vec<i64> = flaky.got()[before..].iter().map(|r| r.seq).collect();
    assert_eq!(again, seqs[2..].to_vec(), "the range, in order");

    // Redirects are not followed.
    let redirect_id = redirect_hook["id"].as_str().unwrap();
    assert!(
        eventually(WAIT, async || !deliveries(&api, &admin, redirect_id)
            .await
            .is_empty())
        .await
    );
    let first = &deliveries(&api, &admin, redirect_id).await[0];
    assert_eq!(first["status_code"], 302, "{first}");
    assert!(
        first["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{first}"
    );
    assert!(
        redirecting.got().iter().all(|r| r.seq == seqs[0]),
        "nothing follows the redirect"
    );
}

#[tokio::test]
async fn private_targets_are_refused_and_a_failing_endpoint_is_turned_off_and_mailed() {
    let smtp = rwa_testkit::SmtpServer::start().await;
    let s = Server::start(&[
        ("RWA_WEBHOOK_DISABLE_AFTER_SECS", "1"),
        ("RWA_SMTP_URL", &smtp.url()),
        ("RWA_SMTP_FROM", "rwa alerts <alerts@rwa.example>"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, admin) = s.create_org("Guarded Fund");
    let (status, _, prefs) = api
        .call(
            &admin,
            Method::PUT,
            "/v1/org/notifications",
            None,
            Some(json!({ "email": { "to": ["ops@guarded.example", "cfo@guarded.example"], "events": ["investor.created"] } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["email"]["events"], json!(["investor.created"]));
    let target = Receiver::start(UP).await;
    let port = target.url.rsplit(':').next().unwrap().to_owned();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://10.1.2.3/".to_owned(),
            "10.1.2.3 is a private address",
        ),
        (
            "http://169.254.169.254/latest/meta-data".to_owned(),
            "a cloud metadata address",
        ),
        (format!("http://localhost:{port}/"), "localhost resolves to"),
    ];
    let mut ids = Vec::new();
    for (url, _) in &cases {
        ids.push(
            hook(&api, &admin, url, json!(["*"])).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    event(&api, &admin, 0).await;
    for (id, (url, why)) in ids.iter().zip(&cases) {
        assert!(
            eventually(WAIT, async || {
                let w = api.get(&admin, &format!("/v1/webhooks/{id}")).await;
                w["enabled"] == false
            })
            .await,
            "{url}: turned off after failing for longer than a second"
        );
        let w = api.get(&admin, &format!("/v1/webhooks/{id}")).await;
        assert!(
            w["disabled_reason"].as_str().unwrap().contains("failing"),
            "{w}"
        );
        let attempts = deliveries(&api, &admin, id).await;
        assert!(attempts.len() >= 2, "{url}: {attempts:?}");
        for a in &attempts {
            let error = a["error"].as_str().unwrap();
            assert!(error.contains(why), "{url}: {error}");
            assert!(a["status_code"].is_null(), "{url}: never sent: {a}");
        }
    }
    assert!(
        target.got().is_empty(),
        "nothing reached the loopback receiver"
    );
    let events = api.get(&admin, "/v1/events?type=webhook.disabled").await;
    let disabled: HashSet<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["webhook_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        disabled,
        ids.iter().map(String::as_str).collect(),
        "{events}"
    );

    // Mailed in seq order: the selected event, then each turned-off webhook
    // (always mailed), to both recipients.
    let mails = smtp.wait_for(1 + ids.len(), WAIT).await;
    let text: Vec<String> = mails
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let subject = |m: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        subject(&text[0]).contains("investor.created"),
        "{}",
        text[0]
    );
    let mut named = HashSet::new();
    for mail in &text[1..] {
        assert!(subject(mail).contains("disabled"), "{mail}");
        assert!(
            mail.contains("To: ops@guarded.example, cfo@guarded.example"),
            "{mail}"
        );
        assert!(mail.contains("<alerts@rwa.example>"), "{mail}");
        named.extend(ids.iter().filter(|id| mail.contains(id.as_str())).cloned());
    }
    assert_eq!(
        named.len(),
        ids.len(),
        "a message names each webhook turned off"
    );

    // Turned on again, it starts a new failure period and retries at once.
    let (status, _, on) = api
        .call(
            &admin,
            Method::PATCH,
            &format!("/v1/webhooks/{}", ids[1]),
            None,
            Some(json!({ "enabled": true })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert!(
        on["enabled"] == true && on["disabled_reason"].is_null() && on["failing_since"].is_null(),
        "{on}"
    );
}

/// A stand-in for the WhatsApp Cloud API (a third party): records each
/// request's path, bearer and body, and answers with a message id.
async fn whatsapp_api() -> (String, Arc<Mutex<Vec<(String, String, Value)>>>) {
    let got: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
    let sink = got.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let bearer = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                sink.lock()
                    .unwrap()
                    .push((uri.path().to_owned(), bearer, body));
                axum::Json(json!({ "messages": [{ "id": "wamid.test" }] }))
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn whatsapp_messages_carry_the_template_and_the_breaker_shows_in_health() {
    let (url, got) = whatsapp_api().await;
    let s = Server::start(&[
        ("RWA_WHATSAPP_URL", &url),
        ("RWA_WHATSAPP_TOKEN", "test-token-1"),
        ("RWA_WHATSAPP_PHONE_ID", "123456789"),
    ])
    .await;
    let api = Api {
        s: &s,
        client: Client::new(),
    };
    let (_org, admin) = s.create_org("WhatsApp Fund");
    let (status, _, problem) = api
        .call(
            &admin,
            Method::PUT,
            "/v1/org/notifications",
            None,
            Some(json!({ "whatsapp": {
                "to": ["+0123"], "template": "Bad-Name", "language": "english", "events": ["*"]
            } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        common::problem_fields(&problem),
        ["whatsapp.to[0]", "whatsapp.template", "whatsapp.language"],
        "{problem}"
    );
    let (status, _, prefs) = api
        .call(
            &admin,
            Method::PUT,
            "/v1/org/notifications",
            None,
            Some(json!({ "whatsapp": {
                "to": ["+4915112345678"], "template": "rwa_event", "language": "en_US",
                "events": ["investor.created"]
            } })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["whatsapp"]["to"], json!(["+4915112345678"]));
    assert!(prefs["email"].is_null(), "{prefs}");

    event(&api, &admin, 0).await;
    assert!(
        eventually(WAIT, async || got.lock().unwrap().len() == 1).await,
        "one message for the one selected event: {:?}\n{}",
        got.lock().unwrap(),
        s.log_lines()
            .iter()
            .filter(|l| l.contains("notif") || l.contains("whatsapp") || l.contains("WARN"))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (path, bearer, body) = got.lock().unwrap()[0].clone();
    assert_eq!(path, "/v21.0/123456789/messages");
    assert_eq!(bearer, "Bearer test-token-1");
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "4915112345678");
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["name"], "rwa_event");
    assert_eq!(body["template"]["language"]["code"], "en_US");
    let parameters = &body["template"]["components"][0]["parameters"];
    assert_eq!(body["template"]["components"][0]["type"], "body");
    assert_eq!(
        parameters[0],
        json!({ "type": "text", "text": "WhatsApp Fund" })
    );
    assert_eq!(
        parameters[1],
        json!({ "type": "text", "text": "investor.created" })
    );
    assert!(
        parameters[2]["text"]
            .as_str()
            .unwrap()
            .contains("investor.created"),
        "{body}"
    );

    let health = s.detailed_health().await;
    assert_eq!(
        health["checks"]["whatsapp"]["status"], "healthy",
        "{health}"
    );
    assert_eq!(
        health["checks"]["whatsapp"]["breaker"], "closed",
        "{health}"
    );
    assert!(
        !health.to_string().contains("test-token-1"),
        "the token is never shown"
    );
}

/// The server secret replaced without `rwa secrets rotate`: the endpoint's
/// sealed secret no longer opens, so nothing can be signed. Its deliveries
/// fail with that reason, shown in the attempts and on the endpoint,
/// instead of a task retrying silently.
#[tokio::test]
async fn an_endpoint_whose_secret_cannot_be_opened_says_why() {
    let mut s = Server::start(&[("RWA_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let (_org, admin) = s.create_org("Resealed Fund");
    let receiver = Receiver::start(UP).await;
    let created = {
        let api = Api {
            s: &s,
            client: Client::new(),
        };
        hook(&api, &admin, &receiver.url, json!(["investor.created"])).await
    };
    let id = created["id"].as_str().unwrap().to_owned();
    let data_dir = s.stop();
    let again = Server::start_in(
        &s.database_url,
        data_dir,
        &[
            ("RWA_WEBHOOK_ALLOW_PRIVATE", "true"),
            (
                "RWA_SECRET_KEY",
                "a-different-server-secret-of-at-least-32-bytes",
            ),
        ],
        &[],
        None,
    );
    let api = Api {
        s: &again,
        client: Client::new(),
    };
    event(&api, &admin, 0).await;
    let path = format!("/v1/webhooks/{id}");
    assert!(
        eventually(WAIT, async || api.get(&admin, &path).await["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("rwa secrets rotate")))
        .await,
        "the endpoint shows why: {}",
        api.get(&admin, &path).await
    );
    let attempts = deliveries(&api, &admin, &id).await;
    assert!(
        !attempts.is_empty()
            && attempts
                .iter()
                .all(|a| a["succeeded"] == false && a["status_code"].is_null()),
        "{attempts:?}"
    );
    assert!(
        receiver.got().is_empty(),
        "nothing was sent unsigned: {:?}",
        receiver.got()
    );
}
