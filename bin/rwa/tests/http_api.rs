//! The HTTP contract, against one real `rwa serve` process shared by the tests
//! of this binary (on the backend named by `RWA_TEST_DATABASE`).

mod common;

use common::Server;
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn server() -> &'static Server {
    SERVER.get_or_init(|| Server::start(&[])).await
}

fn client() -> Client {
    Client::builder().build().unwrap()
}

async fn problem(resp: reqwest::Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(
        resp.status(),
        status,
        "unexpected status for {}",
        resp.url()
    );
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(ct, "application/problem+json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], format!("/problems/{kind}"), "body: {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(
        body["request_id"], request_id,
        "the body quotes the request id"
    );
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Every secured operation of the spec, with its allowed roles.
async fn secured_operations(s: &Server) -> Vec<(Method, String, Vec<String>)> {
    common::spec_operations(s)
        .await
        .into_iter()
        .filter_map(|op| {
            let concrete = op
                .path
                .replace("{id}", "0198a7a0-0000-7000-8000-000000000000");
            op.roles.map(|roles| (op.method, concrete, roles))
        })
        .collect()
}

/// Without a credential, or with an unknown key, every secured route is
/// 401 before anything else; what each role may do is the role matrix of
/// `access_matrix.rs` (keys and users' access tokens alike).
#[tokio::test]
async fn every_v1_route_checks_the_credential_first() {
    let s = server().await;
    let ops = secured_operations(s).await;
    assert!(ops.len() >= 5, "the spec lists the /v1 operations: {ops:?}");
    for (method, path, _) in &ops {
        assert!(
            path.starts_with("/v1/"),
            "secured paths are under /v1: {path}"
        );
        let resp = client()
            .request(method.clone(), s.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let resp = client()
            .request(method.clone(), s.url(path))
            .bearer_auth("rwa_0000000000000000000000000000000000000000")
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let resp = client()
            .request(method.clone(), s.url(path))
            .bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.forged")
            .send()
            .await
            .unwrap();
        problem(resp, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}

#[tokio::test]
async fn another_organizations_resources_are_not_found() {
    let s = server().await;
    let (_, admin_a) = s.create_org("A Fund");
    let (org_b, admin_b) = s.create_org("B Fund");
    let victim = s.create_key(&org_b, "operator");

    let listed: Value = client()
        .get(s.url("/v1/api-keys"))
        .bearer_auth(&admin_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let victim_id = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| victim.starts_with(k["prefix"].as_str().unwrap()))
        .expect("B lists its key")["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = client()
        .delete(s.url(&format!("/v1/api-keys/{victim_id}")))
        .bearer_auth(&admin_a)
        .send()
        .await
        .unwrap();
    problem(resp, StatusCode::NOT_FOUND, "not-found").await;
    let still = client()
        .get(s.url("/v1/org"))
        .bearer_auth(&victim)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK, "A could not revoke B's key");

    let a_view: Value = client()
        .get(s.url("/v1/api-keys"))
        .bearer_auth(&admin_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        a_view["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["id"] != victim_id.as_str())
    );
    let a_org: Value = client()
        .get(s.url("/v1/org"))
        .bearer_auth(&admin_a)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(a_org["name"], "A Fund");
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_secret_and_revoked_at_once() {
    let s = server().await;
    let (_, admin) = s.create_org("Keys Ltd");
    let resp = client()
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"role": "operator", "label": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created: Value = resp.json().await.unwrap();
    let secret = created["api_key"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rwa_") && secret.len() == 44);
    assert_eq!(created["role"], "operator");

    let org = client()
        .get(s.url("/v1/org"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(org.status(), StatusCode::OK);

    let listing = client()
        .get(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!listing.contains(&secret), "the secret is never listed");
    assert!(
        !listing.contains("api_key\""),
        "no secret field in listings"
    );
    let listing: Value = serde_json::from_str(&listing).unwrap();
    let entry = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap()
        .clone();
    assert_eq!(entry["label"], "ci");
    assert!(secret.starts_with(entry["prefix"].as_str().unwrap()));

    let id = created["id"].as_str().unwrap();
    let revoked = client()
        .delete(s.url(&format!("/v1/api-keys/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let revoked: Value = revoked.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());

    let after = client()
        .get(s.url("/v1/org"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    problem(after, StatusCode::UNAUTHORIZED, "unauthorized").await;

    let audit: Value = client()
        .get(s.url("/v1/audit"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "org.created",
            "api_key.created",
            "api_key.created",
            "api_key.revoked"
        ]
    );
}

#[tokio::test]
async fn bad_bodies_get_problems_that_name_the_field() {
    let s = server().await;
    let (_, admin) = s.create_org("Validation Co");
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = client()
            .post(s.url("/v1/api-keys"))
            .bearer_auth(&admin)
            .body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");

    let body = problem(
        post(r#"{"role":"root"}"#, json_ct).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "role");
    let long_label = format!(r#"{{"role":"root","label":"{}"}}"#, "x".repeat(101));
    let resp = client()
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(long_label)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["role", "label"],
        "every failing field is reported at once"
    );

    let body = problem(
        post(r#"{"role": 7}"#, json_ct).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "role");
    let body = problem(
        post(r#"{"role":"admin","colour":"red"}"#, json_ct)
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation",
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("colour")
    );
    problem(
        post(r#"{"role":"#, json_ct).await.unwrap(),
        StatusCode::BAD_REQUEST,
        "bad-request",
    )
    .await;
    problem(
        post(r#"{"role":"admin"}"#, None).await.unwrap(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    )
    .await;
    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let resp = client()
        .post(s.url("/v1/api-keys"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::BAD_REQUEST, "bad-request").await;
    assert!(body["detail"].as_str().unwrap().contains("nesting"));

    let resp = client()
        .get(s.url("/v1/api-keys?limit=0"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "limit");
    let resp = client()
        .get(s.url("/v1/api-keys?limit=abc"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let body = problem(resp, StatusCode::UNPROCESSABLE_ENTITY, "validation").await;
    assert_eq!(body["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_problems() {
    let s = server().await;
    let (_, admin) = s.create_org("Big Body");
    let big = format!(
        r#"{{"role":"admin","label":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    // With Content-Length the server refuses before reading the body.
    let sized = || {
        client()
            .post(s.url("/v1/api-keys"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(big.clone())
    };
    let resp = answer_despite_close(sized).await;
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;

    // Without Content-Length (chunked), the limit still holds while streaming.
    let streamed = || {
        client()
            .post(s.url("/v1/api-keys"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures_stream(
                big.clone().into_bytes(),
            )))
    };
    let resp = answer_despite_close(streamed).await;
    problem(resp, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large").await;
}

/// Sends an oversized request until the server's answer is read. The server
/// answers and closes as soon as it knows the body is too large; a client
/// still writing its body can see the close (broken pipe) before it reads the
/// answer. That transport race is retried (five tries); any other client
/// error fails the test, and whatever answer arrives is for the caller to
/// check.
async fn answer_despite_close(request: impl Fn() -> reqwest::RequestBuilder) -> reqwest::Response {
    for _ in 0..5 {
        match request().send().await {
            Ok(resp) => return resp,
            Err(e) if e.is_request() => continue,
            Err(e) => panic!("unexpected client error: {e}"),
        }
    }
    panic!("the server answered none of five oversized requests");
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn a_panicking_handler_is_a_500_and_the_server_carries_on() {
    let s = server().await;
    let resp = client().get(s.url("/test/panic")).send().await.unwrap();
    let body = problem(resp, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert!(
        !body.to_string().contains("test hook panic"),
        "500s reveal nothing internal"
    );
    let next = client().get(s.url("/health")).send().await.unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(next.json::<Value>().await.unwrap(), json!({"status": "ok"}));
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let s = server().await;
    problem(
        client()
            .get(s.url("/v1/nothing-here"))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
        "not-found",
    )
    .await;
    let resp = client().delete(s.url("/v1/org")).send().await.unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    problem(resp, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    assert_eq!(allow.as_deref(), Some("GET,HEAD,PATCH"));
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated_and_logged_with_the_org() {
    let s = server().await;
    let (org, admin) = s.create_org("Traced");
    let resp = client()
        .get(s.url("/v1/org"))
        .bearer_auth(&admin)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-42");
    let resp = client()
        .get(s.url("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(generated).is_ok(),
        "unsafe ids are replaced by a UUID"
    );

    let found = common::eventually(std::time::Duration::from_secs(5), async || {
        s.log_lines().iter().any(|l| {
            l.contains("trace-me-42")
                && l.contains("route=/v1/org")
                && l.contains(&org)
                && l.contains("status=200")
        })
    })
    .await;
    assert!(
        found,
        "one log line per request with route, status, request id and org id"
    );
}

#[tokio::test]
async fn security_headers_are_set_and_docs_allow_only_self() {
    let s = server().await;
    let resp = client()
        .get(s.url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    let h = resp.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(
        h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert!(h.get("server").is_none(), "no server banner");
    assert!(
        h.get("strict-transport-security").is_none(),
        "HSTS only in production"
    );
    assert!(
        h.get("access-control-allow-origin").is_none(),
        "no CORS unless configured"
    );

    let docs = client().get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    let html = docs.text().await.unwrap();
    assert!(
        html.contains("swagger"),
        "the page is served from the binary"
    );
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let r = client().get(s.url(asset)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset} is embedded");
    }
}

#[tokio::test]
async fn the_openapi_spec_describes_every_route_with_roles_and_problems() {
    let s = server().await;
    let spec: Value = client()
        .get(s.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = spec["paths"].as_object().unwrap();
    let expected = [
        ("/health", "get"),
        ("/health/live", "get"),
        ("/health/ready", "get"),
        ("/health/detailed", "get"),
        ("/metrics", "get"),
        ("/v1/org", "get"),
        ("/v1/org", "patch"),
        ("/v1/api-keys", "post"),
        ("/v1/api-keys", "get"),
        ("/v1/api-keys/{id}", "delete"),
        ("/v1/audit", "get"),
        ("/v1/jobs", "get"),
        ("/v1/jobs/{id}/retry", "post"),
        ("/v1/jobs/{id}/cancel", "post"),
        ("/v1/tokens", "post"),
        ("/v1/tokens", "get"),
        ("/v1/tokens/{id}", "get"),
        ("/v1/tokens/{id}", "patch"),
        ("/v1/tokens/{id}/compliance", "get"),
        ("/v1/tokens/{id}/compliance", "put"),
        ("/v1/tokens/{id}/compliance/versions", "get"),
        ("/v1/tokens/{id}/mints", "post"),
        ("/v1/tokens/{id}/burns", "post"),
        ("/v1/tokens/{id}/freezes", "post"),
        ("/v1/tokens/{id}/unfreezes", "post"),
        ("/v1/tokens/{id}/forced-transfers", "post"),
        ("/v1/tokens/{id}/pause", "post"),
        ("/v1/tokens/{id}/unpause", "post"),
        ("/v1/investors/{id}/wallets/{address}/recover", "post"),
        ("/v1/operations", "get"),
        ("/v1/operations/{id}", "get"),
        ("/v1/operations/{id}/approve", "post"),
        ("/v1/operations/{id}/reject", "post"),
        ("/v1/transfers", "post"),
        ("/v1/transfers", "get"),
        ("/v1/transfers/check", "post"),
        ("/v1/transfers/{id}", "get"),
        ("/v1/transfers/{id}/cancel", "post"),
        ("/v1/transfers/{id}/review", "post"),
        ("/v1/investors", "post"),
        ("/v1/investors", "get"),
        ("/v1/investors/{id}", "get"),
        ("/v1/investors/{id}", "patch"),
        ("/v1/investors/{id}/wallets", "post"),
        ("/v1/investors/{id}/kyc", "post"),
        ("/v1/investors/{id}/screening/clear", "post"),
        ("/v1/investors/{id}/wallets/{address}", "delete"),
        ("/callbacks/kyc/{org_id}", "post"),
        ("/v1/events", "get"),
        ("/v1/tokens/{id}/holders", "get"),
        ("/v1/tokens/{id}/transfers", "get"),
        ("/v1/investors/{id}/positions", "get"),
        ("/v1/tokens/{id}/verify", "post"),
        ("/v1/watched-contracts", "post"),
        ("/v1/watched-contracts", "get"),
        ("/v1/watched-contracts/{id}", "get"),
        ("/v1/watched-contracts/{id}", "delete"),
        ("/v1/watched-contracts/{id}/holders", "get"),
        ("/v1/watched-contracts/{id}/transfers", "get"),
        ("/v1/users", "post"),
        ("/v1/users", "get"),
        ("/v1/users/{id}", "get"),
        ("/v1/users/{id}", "patch"),
        ("/v1/users/{id}", "delete"),
        ("/v1/auth/login", "post"),
        ("/v1/auth/refresh", "post"),
        ("/v1/auth/logout", "post"),
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{id}", "get"),
        ("/v1/webhooks/{id}", "patch"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/webhooks/{id}/rotate-secret", "post"),
        ("/v1/webhooks/{id}/deliveries", "get"),
        ("/v1/webhooks/{id}/deliveries/{delivery}/replay", "post"),
        ("/v1/webhooks/{id}/replay", "post"),
        ("/v1/org/notifications", "get"),
        ("/v1/org/notifications", "put"),
    ];
    for (path, method) in expected {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is in the spec"
        );
    }
    let operations: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        operations,
        expected.len(),
        "no route outside the list above: update it with the router"
    );
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("500"),
                "{method} {path} documents 500"
            );
            if path.starts_with("/v1/") && !path.starts_with("/v1/auth/") {
                assert!(
                    op["security"][0]["api_key"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty()),
                    "{method} {path} lists roles"
                );
                for code in ["401", "403", "503"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} documents {code}"
                    );
                }
            }
            if path.contains('{') {
                assert!(
                    responses.contains_key("404"),
                    "{method} {path} documents 404"
                );
            }
            if op.get("requestBody").is_some() {
                for code in ["400", "413", "422"] {
                    assert!(
                        responses.contains_key(code),
                        "{method} {path} documents {code}"
                    );
                }
            }
        }
    }
    // And the router serves exactly these: an unauthenticated call to each /v1 one is 401, not 404.
    for (method, path, _) in secured_operations(s).await {
        let status = client()
            .request(method.clone(), s.url(&path))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{method} {path} is routed"
        );
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_requests_by_route_template() {
    let s = server().await;
    let (org, admin) = s.create_org("Metered");
    let operator = s.create_key(&org, "operator");
    let before = http_requests(s, "GET", "/v1/org", "200").await;
    for _ in 0..5 {
        let r = client()
            .get(s.url("/v1/org"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    for id in [
        "0198a7a0-0000-7000-8000-000000000001",
        "0198a7a0-0000-7000-8000-000000000002",
    ] {
        let r = client()
            .delete(s.url(&format!("/v1/api-keys/{id}")))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    let after = http_requests(s, "GET", "/v1/org", "200").await;
    assert!(
        after - before >= 5.0,
        "the 5 requests were counted ({before} → {after})"
    );
    let text = s.metrics_text().await;
    let samples = common::parse_prometheus(&text);
    let templated = samples.iter().find(|(n, l, _)| {
        n == "rwa_http_requests_total"
            && l.get("route").map(String::as_str) == Some("/v1/api-keys/{id}")
            && l.get("status").map(String::as_str) == Some("403")
    });
    assert!(
        templated.is_some_and(|(_, _, v)| *v >= 2.0),
        "ids collapse into the route template"
    );
    assert!(
        !text.contains("0198a7a0-0000-7000-8000-000000000001"),
        "raw paths never become labels"
    );
    for name in [
        "rwa_http_request_duration_seconds_bucket",
        "rwa_http_requests_in_flight",
        "rwa_db_pool_connections",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(
            samples.iter().any(|(n, _, _)| n == name),
            "{name} is exported"
        );
    }
}

async fn http_requests(s: &Server, method: &str, route: &str, status: &str) -> f64 {
    let text = s.metrics_text().await;
    common::parse_prometheus(&text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == "rwa_http_requests_total"
                && l.get("method").map(String::as_str) == Some(method)
                && l.get("route").map(String::as_str) == Some(route)
                && l.get("status").map(String::as_str) == Some(status)
        })
        .map(|(_, _, v)| v)
        .sum()
}
