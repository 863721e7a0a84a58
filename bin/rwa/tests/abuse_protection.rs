//! Abuse protection through the running service, on the backend
//! `RWA_TEST_DATABASE` names: rate limits per credential (at the
//! organization's tier) and per address (stricter on `/v1/auth/*`) with
//! their `RateLimit-*` and `Retry-After` headers; an address limit shared by
//! two `rwa serve` processes through a real Redis, kept in each process
//! while that Redis is stopped (`checks.redis` degraded) and shared again
//! once it is back, and a server whose Redis is down from the start keeping
//! its limits itself; network allow-lists on keys and users refusing other
//! addresses as audited security events; `X-Forwarded-For` believed only
//! from trusted proxies.
//!
//! Limits here refill at one request a minute, so a bucket emptied by a
//! handful of sequential requests stays empty for the rest of the step.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::api::Api;
use common::{Server, assert_detail, eventually, problem_fields};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = "quartz-lantern-orbit-1957";

/// A configuration file with a `small` tier (4 at once, one a minute) and a
/// roomy default tier.
fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("limits.toml");
    std::fs::write(
        &path,
        "[rate_limits]\n\
         default_tier = \"standard\"\n\
         [rate_limits.tiers.standard]\nper_minute = 1000000\nburst = 1000000\n\
         [rate_limits.tiers.small]\nper_minute = 1\nburst = 4\n",
    )
    .unwrap();
    path
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `(status, RateLimit-Limit, RateLimit-Remaining, Retry-After, body)` of a
/// `GET` with `key`, optionally claiming to come through a proxy.
async fn get(
    client: &Client,
    s: &Server,
    key: &str,
    path: &str,
    forwarded_for: Option<&str>,
) -> (StatusCode, Option<u32>, Option<u32>, Option<u64>, Value) {
    let mut req = client.get(s.url(path)).bearer_auth(key);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let r = req.send().await.unwrap();
    let n = |name| header(&r, name).map(|v| v.parse().unwrap());
    let (limit, remaining) = (n("ratelimit-limit"), n("ratelimit-remaining"));
    let retry = header(&r, "retry-after").map(|v| v.parse().unwrap());
    if r.status() != StatusCode::OK {
        assert!(
            header(&r, "ratelimit-reset").is_some() || r.status() != StatusCode::TOO_MANY_REQUESTS
        );
    }
    let status = r.status();
    (
        status,
        limit,
        remaining,
        retry,
        r.json().await.unwrap_or(Value::Null),
    )
}

async fn login(client: &Client, s: &Server, email: &str) -> (StatusCode, Option<u32>, Value) {
    let r = client
        .post(s.url("/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    let remaining = header(&r, "ratelimit-remaining").map(|v| v.parse().unwrap());
    let status = r.status();
    (status, remaining, r.json().await.unwrap_or(Value::Null))
}

async fn audit(api: &Api<'_>, key: &str, action: &str) -> Vec<Value> {
    let page = api.get(key, &format!("/v1/audit?action={action}")).await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_and_address_limits_answer_429_with_their_headers() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path());
    let config = config.to_str().unwrap();
    let db = rwa_testkit::TestDatabase::create().await;
    let s = Server::start_with_args(
        &db.url.clone(),
        &[
            ("RWA_RATE_LIMIT_AUTH_PER_MINUTE", "1"),
            ("RWA_RATE_LIMIT_AUTH_BURST", "3"),
        ],
        &["--config", config],
        Some(db),
    );
    let client = Client::new();
    let api = Api {
        s: &s,
        client: client.clone(),
    };
    let (org, admin) = s.create_org("Limited Fund");
    let other = s.create_key(&org, "auditor");
    let out = s.cli(&[
        "--config", config, "org", "set-tier", "--org", &org, "--tier", "small",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = s.cli(&[
        "--config", config, "org", "set-tier", "--org", &org, "--tier", "gold",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a configured tier"));

    // The small tier: 4 at once per credential, the headers counting down.
    for left in [3, 2, 1, 0] {
        let (status, limit, remaining, _, body) = get(&client, &s, &admin, "/v1/org", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!((limit, remaining), (Some(4), Some(left)));
        assert_eq!(body["rate_tier"], "small");
    }
    let (status, limit, remaining, retry, problem) =
        get(&client, &s, &admin, "/v1/org", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!((limit, remaining), (Some(4), Some(0)));
    assert!(retry.unwrap() >= 1 && retry.unwrap() <= 60, "{retry:?}");
    assert_eq!(problem["type"], "/problems/rate-limited");
    assert_detail(&problem, "credential");
    // Another credential of the organization has its own bucket.
    let (status, _, remaining, _, _) = get(&client, &s, &other, "/v1/org", None).await;
    assert_eq!((status, remaining), (StatusCode::OK, Some(3)));

    // `/v1/auth/*`: 3 at once per address, whatever the answer.
    for left in [2, 1, 0] {
        let (status, remaining, _) = login(&client, &s, "nobody@example.com").await;
        assert_eq!((status, remaining), (StatusCode::UNAUTHORIZED, Some(left)));
    }
    let (status, _, problem) = login(&client, &s, "nobody@example.com").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_detail(&problem, "authentication requests");
    // Other routes of that address go on.
    let (status, ..) = get(&client, &s, &other, "/v1/org", None).await;
    assert_eq!(status, StatusCode::OK);
    // Health probes are never limited nor counted.
    let r = client.get(s.url("/health/ready")).send().await.unwrap();
    assert!(r.headers().get("ratelimit-limit").is_none());

    // Each refusal is counted by the limit that refused it.
    let metrics = s.metrics_text().await;
    let refused = |limit: &str| {
        common::parse_prometheus(&metrics)
            .into_iter()
            .find(|(name, labels, _)| {
                name == "rwa_http_rate_limited_total"
                    && labels.get("limit").map(String::as_str) == Some(limit)
            })
            .map_or(0.0, |(_, _, v)| v)
    };
    assert_eq!(
        (refused("credential"), refused("auth")),
        (1.0, 1.0),
        "{metrics}"
    );

    // The tier change is in the audit trail, as the command line's.
    let changes = audit(&api, &other, "org.rate_tier_changed").await;
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["data"]["rate_tier"], "small");
    assert_eq!(changes[0]["actor"], "cli");
}

/// A Redis server of the test's own, on a free port, so it can be stopped
/// and started again.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut r = Redis { port, child: None };
        r.restart();
        r
    }

    fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--port", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/services.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn redis_status(s: &Server) -> String {
    s.detailed_health().await["checks"]["redis"]["status"]
        .as_str()
        .unwrap_or("absent")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_limit_is_shared_through_redis_and_kept_while_it_is_down() {
    let mut redis = Redis::start();
    let url = redis.url();
    let env = [
        ("RWA_REDIS_URL", url.as_str()),
        // A slow answer would be counted in-process and change the counts
        // below; this test is about sharing, not about slowness.
        ("RWA_REDIS_TIMEOUT_MS", "10000"),
        ("RWA_RATE_LIMIT_ADDRESS_PER_MINUTE", "1"),
        ("RWA_RATE_LIMIT_ADDRESS_BURST", "5"),
    ];
    let a = Server::start(&env).await;
    let b = Server::start(&env).await;
    let client = Client::new();
    let (_, key_a) = a.create_org("Fund A");
    let (_, key_b) = b.create_org("Fund B");
    for s in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(30), async || redis_status(s).await
                == "healthy")
            .await
        );
    }

    // One bucket for 127.0.0.1 across both processes: 5 in all.
    let shared_round = async || {
        let mut remaining = Vec::new();
        for (s, key) in [
            (&a, &key_a),
            (&b, &key_b),
            (&a, &key_a),
            (&b, &key_b),
            (&a, &key_a),
        ] {
            let (status, limit, left, ..) = get(&client, s, key, "/v1/org", None).await;
            assert_eq!((status, limit), (StatusCode::OK, Some(5)));
            remaining.push(left.unwrap());
        }
        assert_eq!(remaining, [4, 3, 2, 1, 0]);
        for (s, key) in [(&a, &key_a), (&b, &key_b)] {
            let (status, _, left, retry, _) = get(&client, s, key, "/v1/org", None).await;
            assert_eq!((status, left), (StatusCode::TOO_MANY_REQUESTS, Some(0)));
            assert!(retry.unwrap() >= 1);
        }
    };
    shared_round().await;

    // Redis stops: each process keeps the limit itself (a fresh bucket of
    // its own here), and says so.
    redis.stop();
    for left in [4, 3, 2, 1, 0] {
        let (status, _, remaining, ..) = get(&client, &a, &key_a, "/v1/org", None).await;
        assert_eq!((status, remaining), (StatusCode::OK, Some(left)));
    }
    let (status, ..) = get(&client, &a, &key_a, "/v1/org", None).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "still limited in-process"
    );
    for s in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(30), async || redis_status(s).await
                == "degraded")
            .await
        );
        assert_eq!(
            s.detailed_health().await["checks"]["redis"]["limits"],
            "in-process"
        );
    }
    assert!(
        a.log_lines()
            .iter()
            .any(|l| l.contains("rate limits are kept in each process"))
    );

    // Redis is back (empty: it keeps nothing on disk): shared again.
    redis.restart();
    for s in [&a, &b] {
        assert!(
            eventually(Duration::from_secs(30), async || redis_status(s).await
                == "healthy")
            .await
        );
    }
    shared_round().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_starts_and_limits_while_its_redis_is_unreachable() {
    // A port nobody listens on: Redis is down from the start.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let s = Server::start(&[
        ("RWA_REDIS_URL", url.as_str()),
        ("RWA_RATE_LIMIT_ADDRESS_PER_MINUTE", "1"),
        ("RWA_RATE_LIMIT_ADDRESS_BURST", "2"),
    ])
    .await;
    let client = Client::new();
    let (_, key) = s.create_org("Standalone Fund");
    for left in [1, 0] {
        let (status, _, remaining, ..) = get(&client, &s, &key, "/v1/org", None).await;
        assert_eq!((status, remaining), (StatusCode::OK, Some(left)));
    }
    let (status, ..) = get(&client, &s, &key, "/v1/org", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let health = s.detailed_health().await;
    assert_eq!(health["checks"]["redis"]["status"], "degraded", "{health}");
    assert_eq!(
        health["status"], "degraded",
        "Redis is not critical: {health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_refuse_other_networks_as_security_events() {
    let s = Server::start(&[("RWA_TRUSTED_PROXIES", "127.0.0.1/32")]).await;
    let client = Client::new();
    let api = Api {
        s: &s,
        client: client.clone(),
    };
    let (_, admin) = s.create_org("Fenced Fund");

    // Validation names the entry at fault.
    let (status, problem) = api
        .post(
            &admin,
            "/v1/api-keys",
            json!({ "role": "auditor", "allowed_cidrs": ["10.0.0.0/8", "10.0.0.0/33"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem_fields(&problem), ["allowed_cidrs[1]"]);

    // A key for 198.51.100.0/24, used through the trusted proxy 127.0.0.1.
    let (status, created) = api
        .post(
            &admin,
            "/v1/api-keys",
            json!({ "role": "auditor", "allowed_cidrs": ["198.51.100.9/24"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["allowed_cidrs"], json!(["198.51.100.0/24"]));
    let fenced = created["api_key"].as_str().unwrap().to_owned();
    let fenced_id = created["id"].as_str().unwrap().to_owned();
    let inside = Some("198.51.100.7");
    let (status, ..) = get(&client, &s, &fenced, "/v1/org", inside).await;
    assert_eq!(status, StatusCode::OK);
    // The proxy appends the real peer: what the client wrote itself is left of it.
    let spoofed = Some("198.51.100.7, 203.0.113.5");
    let (status, .., problem) = get(&client, &s, &fenced, "/v1/org", spoofed).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_detail(&problem, "network address");
    // Without the header the client is the peer, 127.0.0.1: refused.
    let (status, ..) = get(&client, &s, &fenced, "/v1/org", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let denied = audit(&api, &admin, "auth.network_denied").await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert!(
        denied
            .iter()
            .all(|e| e["target"] == format!("api_key:{fenced_id}"))
    );
    let ips: Vec<&str> = denied.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    assert!(
        ips.contains(&"203.0.113.5") && ips.contains(&"127.0.0.1"),
        "{ips:?}"
    );

    // A user fenced to 10.0.0.0/8: its login and its tokens are refused from
    // 127.0.0.1, then work once the list is lifted.
    let email = "fenced.officer@example.com";
    let (status, user) = api
        .post(
            &admin,
            "/v1/users",
            json!({ "email": email, "password": PASSWORD, "role": "auditor" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, _, tokens) = login(&client, &s, email).await;
    assert_eq!(status, StatusCode::OK);
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let path = format!("/v1/users/{user_id}");
    let patch = |body: Value| api.call(&admin, reqwest::Method::PATCH, &path, None, Some(body));
    let (status, _, changed) = patch(json!({ "allowed_cidrs": ["10.0.0.0/8"] })).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["allowed_cidrs"], json!(["10.0.0.0/8"]));
    let (status, ..) = get(&client, &s, &token, "/v1/org", None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the session's token is fenced at once"
    );
    let (status, _, problem) = login(&client, &s, email).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let r = client
        .post(s.url("/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "nor refresh from elsewhere"
    );
    let targets: Vec<String> = audit(&api, &admin, "auth.network_denied")
        .await
        .iter()
        .map(|e| e["target"].as_str().unwrap().to_owned())
        .collect();
    assert!(targets.contains(&format!("user:{user_id}")), "{targets:?}");
    assert!(
        targets.iter().any(|t| t.starts_with("session:")),
        "{targets:?}"
    );
    let (status, ..) = patch(json!({ "allowed_cidrs": [] })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, ..) = get(&client, &s, &token, "/v1/org", None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an allow-list change does not end sessions"
    );
}
