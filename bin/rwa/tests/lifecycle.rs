//! Process lifecycle and the command line: graceful shutdown on SIGTERM and
//! SIGINT, and the administrative commands.

mod common;

use std::time::Duration;

use common::Server;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::StatusCode;
use serde_json::Value;

async fn signal_during_slow_request(signal: Signal) {
    let mut s = Server::start(&[]).await;
    let url = s.url("/test/slow?ms=1500");
    let slow = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    kill(Pid::from_raw(s.child.id() as i32), signal).unwrap();

    let status = slow
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(
        status,
        StatusCode::OK,
        "in-flight work finishes before exit"
    );
    let exit = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(10)));
    assert_eq!(exit.code(), Some(0), "clean exit after {signal}");
    assert!(
        reqwest::get(s.url("/health")).await.is_err(),
        "no longer accepting"
    );
    let logs = s.log_lines().join("\n");
    assert!(
        logs.contains("shutdown requested") && logs.contains("stopped"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_request_finish_then_exits_zero() {
    signal_during_slow_request(Signal::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_behaves_like_sigterm() {
    signal_during_slow_request(Signal::SIGINT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shutdown_deadline_cuts_requests_that_outlast_it() {
    let mut s = Server::start(&[("RWA_HTTP_SHUTDOWN_TIMEOUT_MS", "300")]).await;
    let url = s.url("/test/slow?ms=10000");
    let slow = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(Pid::from_raw(s.child.id() as i32), Signal::SIGTERM).unwrap();
    let exit = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(5)));
    assert_eq!(exit.code(), Some(0));
    assert!(
        slow.await.unwrap().is_err(),
        "the request past the deadline was cut"
    );
}

#[tokio::test]
async fn a_request_past_the_timeout_is_a_504_problem() {
    let s = Server::start(&[("RWA_HTTP_REQUEST_TIMEOUT_MS", "200")]).await;
    let resp = reqwest::get(s.url("/test/slow?ms=2000")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["type"], "/problems/timeout");
}

#[tokio::test]
async fn cli_creates_organizations_and_keys_and_verifies_the_audit_trail() {
    let s = Server::start(&[]).await;
    let out = s.cli(&["org", "create", "--name", "Harbor Credit Fund"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "exactly one JSON line: {stdout}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    let org = created["org_id"].as_str().unwrap();
    let admin = created["api_key"].as_str().unwrap();

    let resp = reqwest::Client::new()
        .get(s.url("/v1/org"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["name"], "Harbor Credit Fund");
    assert_eq!(body["id"], org);

    let auditor = s.create_key(org, "auditor");
    let resp = reqwest::Client::new()
        .get(s.url("/v1/audit"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let bad_role = s.cli(&["keys", "create", "--org", org, "--role", "root"]);
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("--role: must be one of"));
    let unknown_org = s.cli(&[
        "keys",
        "create",
        "--org",
        "0198a7a0-0000-7000-8000-000000000000",
        "--role",
        "admin",
    ]);
    assert_eq!(unknown_org.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown_org.stderr).contains("no such organization"));
    let empty_name = s.cli(&["org", "create", "--name", "  "]);
    assert_eq!(empty_name.status.code(), Some(2));

    let verify = s.cli(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let v: Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(
        v["entries"], 3,
        "org.created, its admin key, the auditor key"
    );

    let migrate = s.cli(&["migrate"]);
    assert!(migrate.status.success(), "migrate is idempotent");
}

#[test]
fn every_command_has_help() {
    let commands: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["config"],
        &["config", "check"],
        &["org"],
        &["org", "create"],
        &["keys"],
        &["keys", "create"],
        &["audit"],
        &["audit", "verify"],
    ];
    for cmd in commands {
        let out = common::base_command(&[])
            .args(*cmd)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "rwa {} --help", cmd.join(" "));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Usage: rwa"),
            "rwa {} --help prints usage",
            cmd.join(" ")
        );
    }
}

#[tokio::test]
async fn development_generates_a_private_secret_key_into_the_data_dir() {
    let s = Server::start(&[]).await;
    let path = s.data_dir.path().join("secret.key");
    let first = std::fs::read_to_string(&path).expect("secret generated");
    assert_eq!(first.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "readable by the owner only");
    }
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
}
