//! Spawning the real `rwa` binary for integration tests.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rwa_testkit::TestDatabase;

pub mod api;
pub mod tls;

pub const BIN: &str = env!("CARGO_BIN_EXE_rwa");

/// A running `rwa serve` on a throw-away database and data dir.
pub struct Server {
    pub addr: SocketAddr,
    pub child: Child,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    pub env: Vec<(String, String)>,
    _db: Option<TestDatabase>,
}

impl Server {
    /// Starts a server on the backend chosen by `RWA_TEST_DATABASE`.
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let db = TestDatabase::create().await;
        let url = db.url.clone();
        Self::start_with_url(&url, env, Some(db))
    }

    /// Starts a server on `database_url`.
    pub fn start_with_url(
        database_url: &str,
        env: &[(&str, &str)],
        db: Option<TestDatabase>,
    ) -> Server {
        Self::start_with_args(database_url, env, &[], db)
    }

    /// Starts `rwa serve` with `args` added (`--role worker`, ...).
    pub fn start_with_args(
        database_url: &str,
        env: &[(&str, &str)],
        args: &[&str],
        db: Option<TestDatabase>,
    ) -> Server {
        let data_dir = tempfile::tempdir().expect("data dir");
        Self::start_in(database_url, data_dir, env, args, db)
    }

    /// Starts `rwa serve` on an existing data dir (a restart).
    pub fn start_in(
        database_url: &str,
        data_dir: tempfile::TempDir,
        env: &[(&str, &str)],
        args: &[&str],
        db: Option<TestDatabase>,
    ) -> Server {
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Every test client is 127.0.0.1: the per-address limits would count
        // the whole suite as one client. A test of the limits sets its own.
        for name in [
            "RWA_RATE_LIMIT_ADDRESS_PER_MINUTE",
            "RWA_RATE_LIMIT_ADDRESS_BURST",
            "RWA_RATE_LIMIT_AUTH_PER_MINUTE",
            "RWA_RATE_LIMIT_AUTH_BURST",
        ] {
            if !env.iter().any(|(k, _)| k == name) {
                env.push((name.into(), "1000000".into()));
            }
        }
        env.push(("RWA_DATABASE_URL".into(), database_url.into()));
        env.push(("RWA_DB_MAX_CONNECTIONS".into(), "4".into()));
        let mut cmd = base_command(&env);
        // The same for the default tier's per-credential limit, which only a
        // file sets: a test sends hundreds of requests with one key.
        if !args.contains(&"--config") {
            let roomy = data_dir.path().join("test-limits.toml");
            std::fs::write(
                &roomy,
                "[rate_limits.tiers.standard]\nper_minute = 1000000\nburst = 1000000\n",
            )
            .expect("test limits");
            cmd.arg("--config").arg(roomy);
        }
        cmd.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.path())
            .args(args)
            .env("RWA_TEST_EXIT_ON_STDIN_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn rwa serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening addr=").nth(1) {
                    let _ = tx.send(rest.trim().to_owned());
                }
                // JSON log lines (production): {"message":"listening","addr":…}.
                if line.contains(r#""message":"listening""#)
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = v["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => panic!(
                "rwa serve did not log `listening addr=`; logs:\n{}",
                logs.lock().unwrap().join("\n")
            ),
        };
        Server {
            addr,
            child,
            data_dir,
            database_url: database_url.into(),
            logs,
            env,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET /health/detailed` (public), as JSON.
    pub async fn detailed_health(&self) -> serde_json::Value {
        reqwest::get(self.url("/health/detailed"))
            .await
            .expect("health request")
            .json()
            .await
            .expect("health is JSON")
    }

    /// `GET /metrics` (public), as Prometheus text.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(self.url("/metrics"))
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics text")
    }

    /// Runs a CLI command against the same database and data dir.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = base_command(&self.env);
        cmd.args(args).arg("--data-dir").arg(self.data_dir.path());
        cmd.output().expect("run rwa")
    }

    /// Creates an organization; returns (org id, admin key).
    pub fn create_org(&self, name: &str) -> (String, String) {
        let out = self.cli(&["org", "create", "--name", name]);
        assert!(
            out.status.success(),
            "org create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        (
            v["org_id"].as_str().unwrap().to_owned(),
            v["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a key of `role` in `org`.
    pub fn create_key(&self, org: &str, role: &str) -> String {
        let out = self.cli(&["keys", "create", "--org", org, "--role", role]);
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        v["api_key"].as_str().unwrap().to_owned()
    }

    /// Log lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until a log line contains `needle` (a state the server reached),
    /// for up to a generous bound that only matters when the test fails.
    pub async fn wait_for_log(&self, needle: &str) {
        let seen = eventually(Duration::from_secs(60), async || {
            self.log_lines().iter().any(|l| l.contains(needle))
        })
        .await;
        assert!(
            seen,
            "no log line contains {needle:?}; logs:\n{}",
            self.log_lines().join("\n")
        );
    }

    /// Stops the server with SIGTERM, checks it exited cleanly, and hands
    /// back its data dir for a restart (the database stays with `self`).
    pub fn stop(&mut self) -> tempfile::TempDir {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(self.wait_exit(Duration::from_secs(30)).success());
        std::mem::replace(&mut self.data_dir, tempfile::tempdir().unwrap())
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "rwa did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with a clean environment: only what the test passes, so a
/// developer's own `RWA_*` variables never leak into a test.
pub fn base_command(env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info,sqlx=warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A strict reader of the Prometheus text format: every line is a comment
/// (`# HELP`/`# TYPE`), blank, or `name{labels} value`; anything else fails the test.
pub fn parse_prometheus(
    text: &str,
) -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "bad comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in: {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), std::collections::BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = std::collections::BTreeMap::new();
                for pair in split_labels(body) {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in: {line}"));
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label: {line}"));
                    labels.insert(k.to_owned(), v.replace("\\\"", "\"").replace("\\\\", "\\"));
                }
                (name.to_owned(), labels)
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push((name, labels, value));
    }
    samples
}

fn split_labels(body: &str) -> Vec<String> {
    let (mut out, mut cur, mut in_quotes, mut escaped) = (Vec::new(), String::new(), false, false);
    for c in body.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Sends an authenticated request to `s` and answers its status and JSON
/// body (`Null` when it has none).
pub async fn send(
    client: &reqwest::Client,
    s: &Server,
    key: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut req = client.request(method, s.url(path)).bearer_auth(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// Asserts that a problem's detail says `what`.
pub fn assert_detail(problem: &serde_json::Value, what: &str) {
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(what), "the detail says {what:?}: {problem}");
}

/// The fields a validation problem names, in order.
pub fn problem_fields(problem: &serde_json::Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("a validation problem lists its errors")
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect()
}

/// Deletes the indexed events of one block straight from the database, as
/// an indexer gap would leave it.
pub async fn forget_events_of_block(url: &str, block: u64) {
    use sqlx::Connection;
    let statement = "DELETE FROM onchain_events WHERE block_number = $1";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(statement)
            .bind(block as i64)
            .execute(&mut c)
            .await
            .unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(statement)
            .bind(block as i64)
            .execute(&mut c)
            .await
            .unwrap();
    }
}

/// Rewrites the indexed ERC-20 `Transfer`s of one block with one base unit
/// more, and marks the transfers settled in it unchecked, as an indexer
/// that decoded amounts wrongly would leave them.
pub async fn misrecord_amounts_of_block(url: &str, block: u64) {
    use rwa_domain::onchain::EventKind;
    use sqlx::Connection;
    let select = "SELECT block_hash, log_index, data FROM onchain_events \
                  WHERE block_number = $1 AND kind = 'erc20_transfer'";
    let update = "UPDATE onchain_events SET data = $3 WHERE block_hash = $1 AND log_index = $2";
    let reset = "UPDATE transfers SET amount_checked = false WHERE block_number = $1";
    let altered = |rows: Vec<(String, i64, String)>| -> Vec<(String, i64, String)> {
        rows.into_iter()
            .map(|(hash, index, data)| {
                let Ok(EventKind::Erc20Transfer { from, to, value }) = serde_json::from_str(&data)
                else {
                    panic!("not an ERC-20 transfer: {data}");
                };
                let wrong = EventKind::Erc20Transfer {
                    from,
                    to,
                    value: value + rwa_domain::chain::U256::from(1u8),
                };
                (hash, index, serde_json::to_string(&wrong).unwrap())
            })
            .collect()
    };
    macro_rules! run {
        ($conn:ty) => {{
            let mut c = <$conn>::connect(url).await.unwrap();
            let rows: Vec<(String, i64, String)> = sqlx::query_as(select)
                .bind(block as i64)
                .fetch_all(&mut c)
                .await
                .unwrap();
            assert!(!rows.is_empty(), "no transfer indexed in block {block}");
            for (hash, index, data) in altered(rows) {
                sqlx::query(update)
                    .bind(hash)
                    .bind(index)
                    .bind(data)
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            sqlx::query(reset)
                .bind(block as i64)
                .execute(&mut c)
                .await
                .unwrap();
        }};
    }
    if url.starts_with("sqlite:") {
        run!(sqlx::SqliteConnection)
    } else {
        run!(sqlx::PgConnection)
    }
}

/// An operation of the served OpenAPI description.
pub struct SpecOperation {
    pub method: reqwest::Method,
    /// The path template (`/v1/tokens/{id}`).
    pub path: String,
    /// Its security scopes (the roles allowed); `None` when it takes no
    /// bearer credential.
    pub roles: Option<Vec<String>>,
    /// Whether it takes a request body.
    pub has_body: bool,
}

/// Every operation `/openapi.json` lists, as served by `s`.
pub async fn spec_operations(s: &Server) -> Vec<SpecOperation> {
    let spec: serde_json::Value = reqwest::get(s.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let roles = op.get("security").map(|security| {
                security[0]["api_key"]
                    .as_array()
                    .expect("secured operations list roles as api_key scopes")
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect()
            });
            ops.push(SpecOperation {
                method: method.to_uppercase().parse().unwrap(),
                path: path.clone(),
                roles,
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    ops
}
