//! A production server checked as deployed: `RWA_ENV=production` on the
//! backend `RWA_TEST_DATABASE` names (PostgreSQL in CI's second run), TLS
//! terminated by `rwa serve`, and a real JSON-RPC node (anvil) on which a
//! token is deployed. Checked end to end: HSTS on every answer, every log
//! line JSON, CORS only for the configured origin, no `/test` routes even in
//! this test build, no development secret or signer key generated, and no
//! secret, key or token in any log line.

mod common;

use std::time::Duration;

use common::tls::{Ca, call, connect, request, write};
use common::{Server, eventually};
use rwa_testkit::anvil::{Anvil, DEV_KEY_0};
use serde_json::{Value, json};

const ORIGIN: &str = "https://console.example.com";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_production_server_behaves_as_deployed() {
    let anvil = Anvil::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("rwa production test CA");
    let (cert, key) = ca.issue("localhost", true);
    let cert_path = write(dir.path(), "cert.pem", &cert);
    let key_path = write(dir.path(), "key.pem", &key);
    let secret = hex::encode(rand08::random::<[u8; 32]>());
    let rpc = anvil.url();
    let env = [
        ("RWA_ENV", "production"),
        ("RWA_SECRET_KEY", secret.as_str()),
        ("RWA_CHAIN_RPC_URL", rpc.as_str()),
        ("RWA_CHAIN_CONFIRMATIONS", "1"),
        ("RWA_SIGNER_KEY", DEV_KEY_0),
        ("RWA_TLS_CERT", cert_path.to_str().unwrap()),
        ("RWA_TLS_KEY", key_path.to_str().unwrap()),
        ("RWA_CORS_ORIGINS", ORIGIN),
    ];
    let s = Server::start(&env).await;
    let (_, admin) = s.create_org("Production Fund");
    let ca_pem = ca.pem();
    let (mut conn, _) = connect(&s, &ca_pem, None).await.unwrap();

    // HSTS on every answer, errors included.
    for path in ["/health/live", "/v1/org", "/no/such/route"] {
        let req = hyper::Request::get(path).header("authorization", format!("Bearer {admin}"));
        let (status, headers, _) = request(&mut conn, req, None).await.unwrap();
        assert!(status == 200 || status == 404, "{path}: {status}");
        assert_eq!(
            headers["strict-transport-security"], "max-age=63072000; includeSubDomains",
            "{path}"
        );
    }

    // The chain is the JSON-RPC node: a token is deployed on it.
    let body = json!({ "name": "Production Note", "symbol": "PRD", "decimals": 0 });
    let (status, created) = call(&mut conn, "POST", "/v1/tokens", Some(&admin), Some(body))
        .await
        .unwrap();
    assert_eq!(status, 202, "{created}");
    let path = format!("/v1/tokens/{}", created["id"].as_str().unwrap());
    let mut token = Value::Null;
    let deployed = eventually(Duration::from_secs(120), async || {
        token = call(&mut conn, "GET", &path, Some(&admin), None)
            .await
            .unwrap()
            .1;
        token["status"] == "deployed"
    })
    .await;
    assert!(deployed, "{token}");

    // CORS: the configured origin only.
    let preflight = |origin: &'static str| {
        hyper::Request::builder()
            .method("OPTIONS")
            .uri("/v1/org")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
    };
    let (_, headers, _) = request(&mut conn, preflight(ORIGIN), None).await.unwrap();
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    let (_, headers, _) = request(&mut conn, preflight("https://evil.example"), None)
        .await
        .unwrap();
    assert!(
        headers.get("access-control-allow-origin").is_none(),
        "{headers:?}"
    );

    // No test routes, though this build carries them.
    for path in ["/test/panic", "/test/slow"] {
        let (status, _) = call(&mut conn, "GET", path, None, None).await.unwrap();
        assert_eq!(status, 404, "{path}");
    }

    // No development secret or signer key was generated.
    let files: Vec<String> = std::fs::read_dir(s.data_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f == "secret.key" || f == "dev-signer.key"),
        "{files:?}"
    );

    // Every line is JSON with a level and a time; the requests are there;
    // no secret is anywhere.
    let lines = s.log_lines();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("/v1/tokens")),
        "request lines are logged"
    );
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    let signer = DEV_KEY_0.trim_start_matches("0x");
    for needle in [secret.as_str(), signer, admin.as_str(), &key_body[..40]] {
        assert!(
            !lines.iter().any(|l| l.contains(needle)),
            "a secret reached the log"
        );
    }
}
