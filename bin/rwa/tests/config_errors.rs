//! Bad configuration: each rule has its own message, the exit code is 2, and
//! nothing starts (the commands run the real binary).

mod common;

use std::process::Output;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    common::base_command(&env)
        .args(args)
        .output()
        .expect("run rwa")
}

fn check(env: &[(&str, &str)]) -> Output {
    run(&["config", "check"], env)
}

fn assert_rejected(out: &Output, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code 2; stderr:\n{stderr}");
    for needle in expected {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("config error: ") && l.contains(needle)),
            "a line mentions {needle:?}; stderr:\n{stderr}"
        );
    }
}

const PROD_OK: &[(&str, &str)] = &[
    ("RWA_ENV", "production"),
    (
        "RWA_SECRET_KEY",
        "9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928",
    ),
    ("RWA_CHAIN_RPC_URL", "https://rpc.internal.example:8545"),
    (
        "RWA_SIGNER_KEY",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    ("RWA_DATABASE_URL", "postgres://rwa@db.internal.example/rwa"),
    ("RWA_CORS_ORIGINS", "https://console.example.com"),
];

fn prod_with(overrides: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env: Vec<_> = PROD_OK
        .iter()
        .filter(|(k, _)| !overrides.iter().any(|(o, _)| o == k))
        .copied()
        .collect();
    env.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
    env
}

#[test]
fn a_complete_production_configuration_passes_and_prints_no_secret() {
    let out = check(PROD_OK);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["env"], "production");
    assert_eq!(v["log_format"], "json");
    // Every lane's signer, with the address an operator must fund.
    for lane in ["deploy", "mint", "settlement", "admin"] {
        assert_eq!(v["signers"][lane]["source"], "RWA_SIGNER_KEY", "{v}");
        assert_eq!(
            v["signers"][lane]["address"],
            "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
        );
    }
    assert!(
        !stdout.contains("9f8e7d6c5b4a"),
        "the secret key is never printed"
    );
    assert!(
        !stdout.contains("59c6995e"),
        "the signer key is never printed"
    );
}

#[test]
fn production_requires_a_strong_secret_key() {
    assert_rejected(
        &check(&prod_with(&[("RWA_SECRET_KEY", "")])),
        &["RWA_SECRET_KEY: required in production"],
    );
    assert_rejected(
        &check(&prod_with(&[("RWA_SECRET_KEY", "short")])),
        &["RWA_SECRET_KEY: must be at least 32 bytes"],
    );
    assert_rejected(
        &check(&prod_with(&[(
            "RWA_SECRET_KEY",
            "0000000000000000000000000000000000000000000000000000000000000000",
        )])),
        &["RWA_SECRET_KEY: is a known default"],
    );
}

#[test]
fn production_refuses_wildcard_and_local_cors_origins() {
    assert_rejected(
        &check(&prod_with(&[("RWA_CORS_ORIGINS", "*")])),
        &["\"*\" is not allowed in production"],
    );
    assert_rejected(
        &check(&prod_with(&[(
            "RWA_CORS_ORIGINS",
            "https://ok.example.com,http://localhost:3000",
        )])),
        &["\"http://localhost:3000\" is a local origin"],
    );
    assert_rejected(
        &check(&[("RWA_CORS_ORIGINS", "not-an-origin")]),
        &["\"not-an-origin\" is not an origin"],
    );
}

#[test]
fn production_refuses_the_embedded_devnet_and_generated_signer_keys() {
    assert_rejected(
        &check(&prod_with(&[("RWA_CHAIN_RPC_URL", "")])),
        &["RWA_CHAIN_RPC_URL: required in production"],
    );
    assert_rejected(
        &check(&prod_with(&[("RWA_SIGNER_KEY", "")])),
        &["RWA_SIGNER_KEY: required in production"],
    );
}

#[test]
fn sqlite_is_allowed_in_production() {
    let out = check(&prod_with(&[(
        "RWA_DATABASE_URL",
        "sqlite:///var/lib/rwa/rwa.db",
    )]));
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_values_are_each_reported_on_their_own_line() {
    let out = check(&[
        ("RWA_ENV", "staging"),
        ("RWA_ADDR", "nowhere"),
        ("RWA_DATABASE_URL", "mysql://x"),
        ("RWA_CHAIN_CONFIRMATIONS", "many"),
        ("RWA_LOG_FORMAT", "xml"),
        ("RWA_SIGNER_KEY", "0x1234"),
        ("RWA_OTLP_ENDPOINT", "udp://collector"),
    ]);
    assert_rejected(
        &out,
        &[
            "RWA_ENV: expected development or production",
            "RWA_ADDR: expected HOST:PORT",
            "RWA_DATABASE_URL: must start with sqlite:// or postgres://",
            "RWA_CHAIN_CONFIRMATIONS: expected a whole number",
            "RWA_LOG_FORMAT: expected json or pretty",
            "RWA_SIGNER_KEY: must be a 32-byte hex private key",
            "RWA_OTLP_ENDPOINT: must be a http/https URL",
        ],
    );
    let lines = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("config error: "))
        .count();
    assert_eq!(lines, 7, "one line per problem");
}

#[test]
fn the_toml_file_is_layered_under_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rwa.toml");
    std::fs::write(
        &path,
        "addr = \"127.0.0.1:9999\"\n[chain]\nconfirmations = 7\n",
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[("RWA_ADDR", "127.0.0.1:7777")],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["addr"], "127.0.0.1:7777",
        "the environment overrides the file"
    );
    assert_eq!(v["confirmations"], 7, "the file overrides defaults");

    std::fs::write(&path, "adress = \"typo\"\n").unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_rejected(&out, &["unknown field `adress`"]);
}

#[test]
fn notification_settings_are_validated_and_shown_redacted() {
    // The event stream: an AMQP URL, from the file or the environment,
    // shown without its password; the exchange checked.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rwa.toml");
    std::fs::write(
        &path,
        "[amqp]\nurl = \"amqp://rwa:amqp-secret-1@127.0.0.1:5672/%2f\"\nexchange = \"fund.events\"\n",
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(!printed.contains("amqp-secret-1"), "{printed}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["amqp"]["exchange"], "fund.events", "{v}");
    assert_eq!(v["amqp"]["url"], "amqp://rwa:***@127.0.0.1:5672/%2f", "{v}");
    let out = run(
        &["config", "check"],
        &[
            ("RWA_AMQP_URL", "http://broker.example"),
            ("RWA_AMQP_EXCHANGE", "fund.events"),
        ],
    );
    assert_rejected(&out, &["RWA_AMQP_URL: scheme http"]);
    let out = run(
        &["config", "check"],
        &[
            ("RWA_AMQP_URL", "amqp://broker.example"),
            ("RWA_AMQP_EXCHANGE", "amq.topic"),
        ],
    );
    assert_rejected(&out, &["RWA_AMQP_EXCHANGE: exchange \"amq.topic\""]);
    let out = run(
        &["config", "check"],
        &[("RWA_AMQP_EXCHANGE", "fund.events")],
    );
    assert_rejected(&out, &["RWA_AMQP_EXCHANGE: set without RWA_AMQP_URL"]);
    assert_rejected(
        &check(&prod_with(&[(
            "RWA_AMQP_URL",
            "amqp://rwa:p@broker.example",
        )])),
        &["RWA_AMQP_URL: must be amqps:// in production"],
    );
    let shown = check(&prod_with(&[(
        "RWA_AMQP_URL",
        "amqps://rwa:p@broker.example",
    )]));
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    // Webhooks.
    let out = run(
        &["config", "check"],
        &[
            ("RWA_WEBHOOK_ALLOW_PRIVATE", "maybe"),
            ("RWA_WEBHOOK_TIMEOUT_MS", "5"),
            ("RWA_WEBHOOK_DISABLE_AFTER_SECS", "0"),
        ],
    );
    assert_rejected(
        &out,
        &[
            "RWA_WEBHOOK_ALLOW_PRIVATE: expected true or false",
            "RWA_WEBHOOK_TIMEOUT_MS: must be 100 to 60000",
            "RWA_WEBHOOK_DISABLE_AFTER_SECS: must be 1 to 2592000",
        ],
    );
    // SMTP: both settings or neither, a URL lettre can use, shown without
    // its password.
    let out = run(
        &["config", "check"],
        &[(
            "RWA_SMTP_URL",
            "smtps://mailer:hunter2-secret@smtp.example.com",
        )],
    );
    assert_rejected(&out, &["RWA_SMTP_FROM: required with RWA_SMTP_URL"]);
    let out = run(
        &["config", "check"],
        &[
            ("RWA_SMTP_URL", "http://smtp.example.com"),
            ("RWA_SMTP_FROM", "alerts@rwa.example"),
        ],
    );
    assert_rejected(&out, &["RWA_SMTP_URL"]);
    let shown = check(&[
        (
            "RWA_SMTP_URL",
            "smtps://mailer:hunter2-secret@smtp.example.com",
        ),
        ("RWA_SMTP_FROM", "alerts@rwa.example"),
    ]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let printed = String::from_utf8_lossy(&shown.stdout);
    assert!(!printed.contains("hunter2-secret"), "{printed}");
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(
        v["smtp"].as_str().unwrap().contains("smtp.example.com"),
        "{v}"
    );
    // WhatsApp: all three or none; the token never printed.
    let out = run(
        &["config", "check"],
        &[("RWA_WHATSAPP_URL", "https://graph.example.com")],
    );
    assert_rejected(&out, &["all three or none"]);
    let out = run(
        &["config", "check"],
        &[
            ("RWA_WHATSAPP_URL", "https://graph.example.com"),
            ("RWA_WHATSAPP_TOKEN", "wa-token-secret-1"),
            ("RWA_WHATSAPP_PHONE_ID", "12ab"),
        ],
    );
    assert_rejected(&out, &["RWA_WHATSAPP_PHONE_ID"]);
    let shown = check(&[
        ("RWA_WHATSAPP_URL", "https://graph.example.com"),
        ("RWA_WHATSAPP_TOKEN", "wa-token-secret-1"),
        ("RWA_WHATSAPP_PHONE_ID", "123456789"),
    ]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let printed = String::from_utf8_lossy(&shown.stdout);
    assert!(!printed.contains("wa-token-secret-1"), "{printed}");
    assert!(printed.contains("graph.example.com"), "{printed}");
    let shown = check(&[("RWA_WEBHOOK_ALLOW_PRIVATE", "true")]);
    let v: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(v["webhooks"]["allow_private"], true);
    assert_eq!(v["webhooks"]["disable_after_secs"], 259_200);
    let plain = check(&[]);
    let v: serde_json::Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(v["amqp"].is_null(), "{v}");
}

#[test]
fn abuse_protection_settings_are_validated_and_shown_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rwa.toml");
    std::fs::write(
        &path,
        "[rate_limits]\ndefault_tier = \"gold\"\n[rate_limits.tiers.silver]\nper_minute = 0\nburst = 5\n\
         [rate_limits.tiers.\"bad name\"]\nper_minute = 5\n",
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[
            ("RWA_REDIS_URL", "http://cache:6379"),
            ("RWA_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("RWA_RATE_LIMITS", "maybe"),
            ("RWA_RATE_LIMIT_AUTH_BURST", "0"),
            ("RWA_TLS_CERT", "/nonexistent/cert.pem"),
            ("RWA_TLS_CLIENT_CA", "/nonexistent/ca.pem"),
        ],
    );
    assert_rejected(
        &out,
        &[
            "RWA_REDIS_URL: must start with redis:// or rediss://",
            "RWA_TRUSTED_PROXIES: \"proxy.internal\" is not an address or CIDR range",
            "RWA_RATE_LIMITS: expected on or off",
            "RWA_RATE_LIMIT_AUTH burst: must be between 1 and 1000000",
            "[rate_limits.tiers.silver] per_minute: must be between 1 and 1000000",
            "[rate_limits.tiers.bad name]: a tier name is 1 to 64 letters",
            "[rate_limits.tiers.bad name]: per_minute and burst are both required",
            "[rate_limits] default_tier: \"gold\" is not a configured tier",
            "RWA_TLS_CERT: /nonexistent/cert.pem is not a readable file",
            "RWA_TLS_CERT and RWA_TLS_KEY: give both or neither",
        ],
    );

    let out = check(&[
        (
            "RWA_REDIS_URL",
            "redis://:hunter2-redis-password@cache:6379/0",
        ),
        ("RWA_TRUSTED_PROXIES", "10.1.2.3/8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2-redis-password"), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trusted_proxies"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(v["rate_limits"]["default_tier"], "standard");
    assert_eq!(v["rate_limits"]["auth"]["burst"], 10);
}

#[test]
fn the_risk_engine_url_is_validated() {
    assert_rejected(
        &check(&[
            ("RWA_COMPLIANCE_ENGINE_URL", "ftp://risk"),
            ("RWA_COMPLIANCE_ENGINE_TIMEOUT_MS", "0"),
        ]),
        &[
            "RWA_COMPLIANCE_ENGINE_URL",
            "RWA_COMPLIANCE_ENGINE_TIMEOUT_MS: must be 1 to 60000",
        ],
    );
}

#[test]
fn serve_with_bad_configuration_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("RWA_ENV", "production")],
    );
    assert_rejected(
        &out,
        &["RWA_SECRET_KEY", "RWA_CHAIN_RPC_URL", "RWA_SIGNER_KEY"],
    );
    assert!(
        !dir.path().join("rwa.db").exists(),
        "no database was created"
    );
    let out = run(
        &[
            "serve",
            "--role",
            "api",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_rejected(
        &out,
        &["--role api: split roles need RWA_DATABASE_URL=postgres://"],
    );
}

#[test]
fn queue_limits_come_from_the_file_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rwa.toml");
    std::fs::write(
        &path,
        "[jobs.queues.settlement]\nconcurrency = 1\nrate_limit = 20\nrate_interval_ms = 60000\n",
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settlement = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "settlement")
        .unwrap()
        .clone();
    assert_eq!(settlement["concurrency"], 1);
    assert_eq!(settlement["rate_limit"]["jobs"], 20);
    assert_eq!(settlement["rate_limit"]["per_seconds"], 60);

    std::fs::write(
        &path,
        "[jobs.queues.settlement]\nconcurrency = 1001\n[jobs.queues.payroll]\nconcurrency = 2\n\
         [jobs.queues.reporting]\nrate_limit = 5\nrate_interval_ms = 1500\n",
    )
    .unwrap();
    let out = run(
        &["--config", path.to_str().unwrap(), "config", "check"],
        &[],
    );
    assert_rejected(
        &out,
        &[
            "jobs.queues.settlement.concurrency",
            "jobs.queues.payroll: unknown queue",
            "jobs.queues.reporting.rate_interval_ms",
        ],
    );
    let out = run(&["config", "check"], &[("RWA_JOBS_LEASE_MS", "10")]);
    assert_rejected(&out, &["RWA_JOBS_LEASE_MS"]);
}

#[test]
fn config_check_names_each_lanes_signer_without_generating_keys() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let out = check(&[
        ("RWA_DATA_DIR", dir),
        (
            "RWA_SIGNER_MINT_KEY",
            "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
        ),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signers"]["mint"]["source"], "RWA_SIGNER_MINT_KEY");
    assert_eq!(
        v["signers"]["mint"]["address"],
        "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"
    );
    let deploy = &v["signers"]["deploy"];
    assert!(
        deploy["source"]
            .as_str()
            .unwrap()
            .contains("development key"),
        "{v}"
    );
    assert_eq!(
        deploy["address"],
        serde_json::Value::Null,
        "not generated yet"
    );
    assert!(
        !data.path().join("dev-signer.key").exists(),
        "checking the configuration writes no key"
    );
}
