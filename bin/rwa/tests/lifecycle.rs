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
    let url = s.url("/test/slow?ms=3000");
    let slow = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    s.wait_for_log("slow request started").await;
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
    let url = s.url("/test/slow?ms=60000");
    let slow = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    s.wait_for_log("slow request started").await;
    kill(Pid::from_raw(s.child.id() as i32), Signal::SIGTERM).unwrap();
    let exit = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(30)));
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
        &["auth"],
        &["auth", "rotate-key"],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_dir_refuses_to_start() {
    let mut s = Server::start(&[]).await;
    let second = || {
        common::base_command(&s.env)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(s.data_dir.path())
            .output()
            .expect("run rwa serve")
    };
    let out = tokio::task::block_in_place(second);
    assert!(!out.status.success(), "the second server must not run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another rwa serve is already running"),
        "{stderr}"
    );
    // The administrative commands still work beside the running server.
    let (org, _) = s.create_org("Beside The Server");
    assert!(!org.is_empty());

    // Once the first server stops, its locks are gone with it.
    kill(Pid::from_raw(s.child.id() as i32), Signal::SIGTERM).unwrap();
    let exit = tokio::task::block_in_place(|| s.wait_exit(Duration::from_secs(30)));
    assert_eq!(exit.code(), Some(0));
    let data_dir = std::mem::replace(&mut s.data_dir, tempfile::tempdir().unwrap());
    let again = Server::start_in(&s.database_url.clone(), data_dir, &[], &[], None);
    assert_eq!(
        reqwest::get(again.url("/health/ready"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Runs one statement against the server's database, as an intruder with
/// direct database access would.
async fn tamper(database_url: &str, statement: &'static str) {
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        pool.close().await;
    }
}

#[tokio::test]
async fn audit_verify_exits_one_at_an_altered_or_removed_entry() {
    let s = Server::start(&[]).await;
    let (org, _) = s.create_org("Tamper Evident Fund");
    s.create_key(&org, "auditor");
    s.create_key(&org, "operator");
    let verify = || {
        let out = s.cli(&["audit", "verify"]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), report)
    };
    let (code, report) = verify();
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        report["entries"], 4,
        "the organization, its admin key, two more keys"
    );

    // An altered entry breaks the chain at that entry; undoing the change
    // mends it (the hashes cover exactly what is stored).
    let url = s.database_url.clone();
    tamper(
        &url,
        "UPDATE audit_log SET data = data || ' ' WHERE seq = 2",
    )
    .await;
    let (code, report) = verify();
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_broken"]["seq"], 2, "{report}");
    tamper(
        &url,
        "UPDATE audit_log SET data = rtrim(data) WHERE seq = 2",
    )
    .await;
    assert_eq!(verify().0, Some(0), "restored");

    // A removed entry is found even at the end, where it leaves no gap in
    // the sequence: the chain's head still records it.
    tamper(&url, "DELETE FROM audit_log WHERE seq = 4").await;
    let (code, report) = verify();
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report["first_broken"]["seq"], 4, "{report}");
}

/// `rwa secrets rotate` after the server secret changed: every investor row
/// sealed under the previous secret is re-sealed under the current one, its
/// search hashes re-keyed, and the command is idempotent; without the
/// previous secret it refuses and names the variable.
#[tokio::test]
async fn secrets_rotate_reseals_personal_data_under_the_new_secret() {
    use rwa_domain::investor::{InvestorDraft, InvestorFilter, InvestorRepository, NewInvestor};
    use rwa_domain::pii::PiiKeys;
    use rwa_domain::ports::OrgRepository;
    use std::sync::Arc;

    const OLD: &str = "0ld5ecret0ld5ecret0ld5ecret0ld5ecret0ld5ecret0ld5ecret0ld5ecret00";
    const NEW: &str = "9e7f3a0c2b4d6e8f1a3c5e7092b4d6f8a1c3e5f7092b4d6e8f0a2c4e6f8091b3";
    let db = rwa_testkit::TestDatabase::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let open = async |secret: &str, previous: Option<&str>| {
        let mut opts = rwa_store::StoreOptions::new(&db.url);
        opts.pii = Some(Arc::new(PiiKeys::new(
            secret.as_bytes(),
            previous.map(str::as_bytes),
        )));
        let store = rwa_store::Store::connect(&opts).await.unwrap();
        store.migrate().await.unwrap();
        store
    };
    let before = open(OLD, None).await;
    let (key, _) = rwa_domain::api_key::NewApiKey::generate(rwa_domain::Role::Admin, None);
    let org = before
        .system_create_with_key(
            &rwa_domain::org::OrgName::parse("Rotating").unwrap(),
            &key,
            &rwa_domain::Actor::CLI,
        )
        .await
        .unwrap()
        .id;
    let mut ids = Vec::new();
    for (name, reference) in [("Ana Müller", Some("crm:1")), ("Bo Chen", None)] {
        let draft = InvestorDraft {
            name: name.into(),
            email: "someone@example.com".into(),
            country: "DE".into(),
            kind: "individual".into(),
            accredited: false,
            accreditation_expires_at: None,
            external_ref: reference.map(Into::into),
        };
        let investor = NewInvestor::parse(&draft, chrono::Utc::now()).unwrap();
        InvestorRepository::create(&before, org, &investor, &rwa_domain::Actor::CLI)
            .await
            .unwrap();
        ids.push(investor.id);
    }
    before.close().await;

    let rotate = |previous: Option<&str>| {
        let mut env = vec![
            ("RWA_DATABASE_URL".to_owned(), db.url.clone()),
            ("RWA_SECRET_KEY".to_owned(), NEW.to_owned()),
        ];
        if let Some(p) = previous {
            env.push(("RWA_PREVIOUS_SECRET_KEY".to_owned(), p.to_owned()));
        }
        common::base_command(&env)
            .args(["secrets", "rotate", "--data-dir"])
            .arg(data_dir.path())
            .output()
            .unwrap()
    };
    let refused = rotate(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("RWA_PREVIOUS_SECRET_KEY"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let out = rotate(Some(OLD));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["resealed"], 2);
    let again: Value = serde_json::from_slice(&rotate(Some(OLD)).stdout).unwrap();
    assert_eq!(again["resealed"], 0, "a second run finds nothing to do");

    // Only the new secret is needed now: rows open and search finds them.
    let after = open(NEW, None).await;
    for id in &ids {
        InvestorRepository::get(&after, org, *id).await.unwrap();
    }
    for q in ["muller ana", "crm:1"] {
        let filter = InvestorFilter {
            q: Some(q.into()),
            ..InvestorFilter::default()
        };
        let found = InvestorRepository::list(&after, org, &filter, Default::default())
            .await
            .unwrap();
        assert_eq!(found.items.len(), 1, "{q}");
        assert_eq!(found.items[0].name, "Ana Müller");
    }
    assert_eq!(
        printed["key_id"].as_str().unwrap(),
        rwa_domain::pii::PiiKey::derive(NEW.as_bytes()).id()
    );
    after.close().await;
}
