//! Defaults and the rules a configuration must meet. Each rule pushes its own
//! line; nothing stops at the first problem.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::file::Layered;
use super::secret::Secret;
use super::{
    ChainConfig, Config, DatabaseConfig, EngineConfig, Environment, HttpConfig, JobsConfig,
    LogFormat, ServeRole, SignerConfig, WebhookConfig,
};

/// Secrets that appear in examples and tutorials, refused in production.
const KNOWN_DEFAULT_SECRETS: &[&str] = &[
    "changeme",
    "change-me",
    "secret",
    "development-secret-key-change-me-now",
    "please-change-this-secret-key-in-production",
    "00000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
];
const MIN_SECRET_BYTES: usize = 32;

pub(super) fn resolve(l: Layered, role: ServeRole, errors: &mut Vec<String>) -> Option<Config> {
    let env = match l.env.as_deref().unwrap_or("development") {
        "development" => Environment::Development,
        "production" => Environment::Production,
        other => {
            errors.push(format!(
                "RWA_ENV: expected development or production, got {other:?}"
            ));
            Environment::Development
        }
    };
    let prod = env == Environment::Production;

    let addr = l.addr.as_deref().unwrap_or("127.0.0.1:8080");
    let addr: Option<SocketAddr> = addr
        .parse()
        .map_err(|_| {
            errors.push(format!(
                "RWA_ADDR: expected HOST:PORT such as 127.0.0.1:8080, got {addr:?}"
            ))
        })
        .ok();
    let data_dir = l
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./data"));

    let database = database(&l, &data_dir, errors);
    let http = http(&l, errors);
    let auth = auth(&l, errors);
    let jobs = jobs(&l, errors);
    let limits = super::limits::resolve(&l, errors);
    if role != ServeRole::All && database.url.expose().starts_with("sqlite:") {
        errors.push(format!(
            "--role {}: split roles need RWA_DATABASE_URL=postgres://… (SQLite is single-process)",
            role_name(role)
        ));
    }

    if let Some(secret) = &l.secret_key {
        check_secret(secret, prod, errors);
    } else if prod {
        errors.push("RWA_SECRET_KEY: required in production (at least 32 bytes)".into());
    }

    // A provider's callbacks are forged with the secret: it must not be
    // guessable. Without one, callbacks are refused (404).
    let kyc_callback_secret = l.kyc.callback_secret;
    if let Some(secret) = &kyc_callback_secret
        && secret.expose().len() < MIN_CALLBACK_SECRET_BYTES
    {
        errors.push(format!(
            "RWA_KYC_CALLBACK_SECRET: must be at least {MIN_CALLBACK_SECRET_BYTES} bytes (got {})",
            secret.expose().len()
        ));
    }

    let compliance_engine = l.compliance.engine_url.map(|url| {
        check_url(
            "RWA_COMPLIANCE_ENGINE_URL",
            &url,
            &["http", "https"],
            errors,
        );
        if prod && !url.starts_with("https://") {
            errors.push("RWA_COMPLIANCE_ENGINE_URL: must be https in production".into());
        }
        let timeout_ms = l.compliance.engine_timeout_ms.unwrap_or(2_000);
        if !(1..=60_000).contains(&timeout_ms) {
            errors.push("RWA_COMPLIANCE_ENGINE_TIMEOUT_MS: must be 1 to 60000".into());
        }
        EngineConfig {
            url,
            timeout: std::time::Duration::from_millis(timeout_ms),
        }
    });

    let webhooks = webhooks(&l.webhooks, errors);
    let smtp = smtp(&l.smtp, prod, errors);
    let whatsapp = whatsapp(&l.whatsapp, prod, errors);
    let amqp = amqp(&l.amqp, prod, errors);

    let cors_origins = l.cors_origins.unwrap_or_default();
    for origin in &cors_origins {
        check_origin(origin, prod, errors);
    }

    let chain = ChainConfig {
        rpc_url: l.chain.rpc_url,
        confirmations: l.chain.confirmations.unwrap_or(2),
    };
    if let Some(url) = &chain.rpc_url {
        check_url(
            "RWA_CHAIN_RPC_URL",
            url.expose(),
            &["http", "https", "ws", "wss"],
            errors,
        );
    } else if prod {
        errors.push("RWA_CHAIN_RPC_URL: required in production (the embedded devnet is for development only)".into());
    }
    if chain.confirmations > 1_000 {
        errors.push("RWA_CHAIN_CONFIRMATIONS: must be at most 1000".into());
    }

    let signer = signer(l.signer, prod, errors);

    if let Some(url) = &l.otlp_endpoint {
        check_url("RWA_OTLP_ENDPOINT", url, &["http", "https"], errors);
    }

    let log_format = match l.log_format.as_deref() {
        None if prod => LogFormat::Json,
        None => LogFormat::Pretty,
        Some("json") => LogFormat::Json,
        Some("pretty") => LogFormat::Pretty,
        Some(other) => {
            errors.push(format!(
                "RWA_LOG_FORMAT: expected json or pretty, got {other:?}"
            ));
            LogFormat::Json
        }
    };

    Some(Config {
        env,
        addr: addr?,
        data_dir,
        database,
        secret_key: l.secret_key,
        kyc_callback_secret,
        compliance_engine,
        cors_origins,
        chain,
        signer,
        webhooks,
        smtp,
        whatsapp,
        amqp,
        otlp_endpoint: l.otlp_endpoint,
        log_format,
        http,
        auth,
        limits,
        jobs,
        role,
    })
}

fn role_name(role: ServeRole) -> &'static str {
    match role {
        ServeRole::All => "all",
        ServeRole::Api => "api",
        ServeRole::Worker => "worker",
        ServeRole::Indexer => "indexer",
    }
}

fn database(l: &Layered, data_dir: &std::path::Path, errors: &mut Vec<String>) -> DatabaseConfig {
    let url = l
        .database
        .url
        .clone()
        .unwrap_or_else(|| super::SecretUrl::new(Config::default_database_url(data_dir)));
    let u = url.expose();
    if !(u.starts_with("sqlite://")
        || u.starts_with("postgres://")
        || u.starts_with("postgresql://"))
    {
        errors.push("RWA_DATABASE_URL: must start with sqlite:// or postgres://".into());
    }
    let max_connections = l.database.max_connections.unwrap_or(10);
    let min_connections = l.database.min_connections.unwrap_or(0);
    if max_connections == 0 {
        errors.push("RWA_DB_MAX_CONNECTIONS: must be at least 1".into());
    }
    if min_connections > max_connections {
        errors.push("RWA_DB_MIN_CONNECTIONS: must not exceed RWA_DB_MAX_CONNECTIONS".into());
    }
    DatabaseConfig {
        url,
        max_connections,
        min_connections,
        acquire_timeout: Duration::from_millis(l.database.acquire_timeout_ms.unwrap_or(3_000)),
    }
}

/// Shortest accepted KYC callback secret.
const MIN_CALLBACK_SECRET_BYTES: usize = 16;

fn check_secret(secret: &Secret, prod: bool, errors: &mut Vec<String>) {
    let value = secret.expose();
    if value.len() < MIN_SECRET_BYTES {
        errors.push(format!(
            "RWA_SECRET_KEY: must be at least {MIN_SECRET_BYTES} bytes (got {})",
            value.len()
        ));
    }
    let lowered = value.to_ascii_lowercase();
    let repetitive = value.len() > 1 && value.bytes().all(|b| b == value.as_bytes()[0]);
    if prod && (KNOWN_DEFAULT_SECRETS.contains(&lowered.as_str()) || repetitive) {
        errors.push("RWA_SECRET_KEY: is a known default or trivial value; generate one (e.g. openssl rand -hex 32)".into());
    }
}

fn check_origin(origin: &str, prod: bool, errors: &mut Vec<String>) {
    if origin == "*" {
        if prod {
            errors.push(
                "RWA_CORS_ORIGINS: \"*\" is not allowed in production; list the origins".into(),
            );
        }
        return;
    }
    let Some((scheme, host)) = origin.split_once("://") else {
        errors.push(format!(
            "RWA_CORS_ORIGINS: {origin:?} is not an origin like https://app.example.com"
        ));
        return;
    };
    if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
        errors.push(format!(
            "RWA_CORS_ORIGINS: {origin:?} is not an origin like https://app.example.com"
        ));
        return;
    }
    let hostname = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let local = matches!(hostname, "localhost" | "127.0.0.1" | "[::1]" | "0.0.0.0")
        || hostname.ends_with(".localhost");
    if prod && local {
        errors.push(format!(
            "RWA_CORS_ORIGINS: {origin:?} is a local origin, not allowed in production"
        ));
    }
}

fn check_url(var: &str, url: &str, schemes: &[&str], errors: &mut Vec<String>) {
    let ok = url
        .split_once("://")
        .is_some_and(|(scheme, rest)| schemes.contains(&scheme) && !rest.is_empty());
    if !ok {
        errors.push(format!("{var}: must be a {} URL", schemes.join("/")));
    }
}

fn check_private_key(var: &str, key: &Secret, errors: &mut Vec<String>) {
    let hex = key.expose().strip_prefix("0x").unwrap_or(key.expose());
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        errors.push(format!(
            "{var}: must be a 32-byte hex private key (64 hex digits, optional 0x)"
        ));
    }
}

fn signer(s: super::file::SignerSection, prod: bool, errors: &mut Vec<String>) -> SignerConfig {
    let lanes = [
        ("RWA_SIGNER_KEY", &s.key),
        ("RWA_SIGNER_DEPLOY_KEY", &s.deploy_key),
        ("RWA_SIGNER_MINT_KEY", &s.mint_key),
        ("RWA_SIGNER_SETTLEMENT_KEY", &s.settlement_key),
        ("RWA_SIGNER_ADMIN_KEY", &s.admin_key),
    ];
    for (var, key) in lanes {
        if let Some(key) = key {
            check_private_key(var, key, errors);
        }
    }
    if s.key.is_some() && s.keystore.is_some() {
        errors
            .push("RWA_SIGNER_KEYSTORE: set either RWA_SIGNER_KEY or a keystore, not both".into());
    }
    if s.keystore.is_some() && s.password.is_none() {
        errors.push("RWA_SIGNER_PASSWORD: required with RWA_SIGNER_KEYSTORE".into());
    }
    if let Some(path) = &s.keystore
        && !path.is_file()
    {
        errors.push(format!(
            "RWA_SIGNER_KEYSTORE: {} is not a readable file",
            path.display()
        ));
    }
    if prod && s.key.is_none() && s.keystore.is_none() {
        errors.push(
            "RWA_SIGNER_KEY: required in production, or RWA_SIGNER_KEYSTORE with RWA_SIGNER_PASSWORD (generated keys are for development only)".into(),
        );
    }
    SignerConfig {
        key: s.key,
        keystore: s.keystore,
        password: s.password,
        deploy_key: s.deploy_key,
        mint_key: s.mint_key,
        settlement_key: s.settlement_key,
        admin_key: s.admin_key,
    }
}

fn jobs(l: &Layered, errors: &mut Vec<String>) -> JobsConfig {
    let lease_ms = l.jobs.lease_ms.unwrap_or(30_000);
    if !(300..=3_600_000).contains(&lease_ms) {
        errors.push("RWA_JOBS_LEASE_MS: must be between 300 and 3600000".into());
    }
    let every_ms = l.jobs.maintenance_interval_ms.unwrap_or(10_000);
    if !(100..=3_600_000).contains(&every_ms) {
        errors.push("RWA_JOBS_MAINTENANCE_INTERVAL_MS: must be between 100 and 3600000".into());
    }
    JobsConfig {
        lease: Duration::from_millis(lease_ms),
        maintenance_interval: Duration::from_millis(every_ms),
        queues: queues(l, errors),
    }
}

/// The platform's queues with the file's `[jobs.queues.<name>]` overrides.
fn queues(l: &Layered, errors: &mut Vec<String>) -> Vec<rwa_jobs::worker::QueueConfig> {
    let mut queues = rwa_jobs::worker::QueueConfig::defaults();
    for (name, section) in &l.jobs.queues {
        let Some(queue) = queues.iter_mut().find(|q| &q.name == name) else {
            let known: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
            errors.push(format!(
                "jobs.queues.{name}: unknown queue; expected one of {}",
                known.join(", ")
            ));
            continue;
        };
        if let Some(n) = section.concurrency {
            if (0..=1_000).contains(&n) {
                queue.concurrency = n;
            } else {
                errors.push(format!(
                    "jobs.queues.{name}.concurrency: must be between 0 (not served by this process) and 1000"
                ));
            }
        }
        match (section.rate_limit, section.rate_interval_ms) {
            (None, None) => {}
            (Some(jobs), interval) => {
                let interval = interval.unwrap_or(1_000);
                if jobs == 0 {
                    errors.push(format!("jobs.queues.{name}.rate_limit: must be at least 1"));
                } else if interval < 1_000 || interval % 1_000 != 0 {
                    errors.push(format!(
                        "jobs.queues.{name}.rate_interval_ms: must be a whole number of seconds (1000, 2000, ...)"
                    ));
                } else {
                    queue.rate_limit = Some(rwa_jobs::rate::RateLimit {
                        jobs,
                        per: Duration::from_millis(interval),
                    });
                }
            }
            (None, Some(_)) => errors.push(format!(
                "jobs.queues.{name}.rate_interval_ms: set rate_limit too"
            )),
        }
    }
    queues
}

/// Lifetimes in seconds: an access token 1 s to a day (15 min), a session
/// an hour to a year (30 days) and at least an access token's, a signing
/// key's age a day or more (30 days; 0: rotated only by `rwa auth rotate-key`).
fn auth(l: &Layered, errors: &mut Vec<String>) -> rwa_api::access_token::AccessSettings {
    let access = l.auth.access_ttl_secs.unwrap_or(15 * 60);
    if !(1..=86_400).contains(&access) {
        errors.push("RWA_AUTH_ACCESS_TTL_SECS: must be between 1 and 86400".into());
    }
    let session = l.auth.session_ttl_secs.unwrap_or(30 * 86_400);
    if !(access.max(1)..=365 * 86_400).contains(&session) {
        errors.push(
            "RWA_AUTH_SESSION_TTL_SECS: must be at least the access-token lifetime and at most 31536000"
                .into(),
        );
    }
    let key_age = l.auth.key_max_age_secs.unwrap_or(30 * 86_400);
    if key_age != 0 && key_age < 3_600 {
        errors.push(
            "RWA_AUTH_KEY_MAX_AGE_SECS: must be 0 (manual rotation only) or at least 3600".into(),
        );
    }
    let after = l.auth.lockout_after.unwrap_or(5);
    if !(1..=100).contains(&after) {
        errors.push("RWA_AUTH_LOCKOUT_AFTER: must be between 1 and 100".into());
    }
    let base = l.auth.lockout_base_secs.unwrap_or(60);
    let max = l.auth.lockout_max_secs.unwrap_or(86_400);
    if !(1..=86_400).contains(&base) {
        errors.push("RWA_AUTH_LOCKOUT_BASE_SECS: must be between 1 and 86400".into());
    }
    if !(base..=30 * 86_400).contains(&max) {
        errors.push(
            "RWA_AUTH_LOCKOUT_MAX_SECS: must be at least the base lock and at most 2592000".into(),
        );
    }
    rwa_api::access_token::AccessSettings {
        access_ttl: Duration::from_secs(access),
        session_ttl: Duration::from_secs(session),
        key_max_age: (key_age != 0).then(|| Duration::from_secs(key_age)),
        lockout: rwa_domain::user::Lockout::from_secs(after, base, max),
    }
}

fn http(l: &Layered, errors: &mut Vec<String>) -> HttpConfig {
    let body_limit_bytes = l.http.body_limit_bytes.unwrap_or(1024 * 1024);
    if !(1024..=64 * 1024 * 1024).contains(&body_limit_bytes) {
        errors.push("RWA_HTTP_BODY_LIMIT_BYTES: must be between 1024 and 67108864".into());
    }
    let json_max_depth = l.http.json_max_depth.unwrap_or(32);
    if !(1..=256).contains(&json_max_depth) {
        errors.push("RWA_HTTP_JSON_MAX_DEPTH: must be between 1 and 256".into());
    }
    let request_timeout_ms = l.http.request_timeout_ms.unwrap_or(30_000);
    if request_timeout_ms == 0 {
        errors.push("RWA_HTTP_REQUEST_TIMEOUT_MS: must be at least 1".into());
    }
    HttpConfig {
        body_limit_bytes,
        json_max_depth,
        request_timeout: Duration::from_millis(request_timeout_ms),
        shutdown_timeout: Duration::from_millis(l.http.shutdown_timeout_ms.unwrap_or(30_000)),
    }
}

/// `[webhooks]` / `RWA_WEBHOOK_*`.
fn webhooks(w: &super::file::WebhooksSection, errors: &mut Vec<String>) -> WebhookConfig {
    let timeout_ms = w.timeout_ms.unwrap_or(10_000);
    if !(100..=60_000).contains(&timeout_ms) {
        errors.push("RWA_WEBHOOK_TIMEOUT_MS: must be 100 to 60000".into());
    }
    let disable_after = w.disable_after_secs.unwrap_or(3 * 24 * 3600);
    if !(1..=30 * 24 * 3600).contains(&disable_after) {
        errors.push("RWA_WEBHOOK_DISABLE_AFTER_SECS: must be 1 to 2592000 (30 days)".into());
    }
    let overlap = w.secret_overlap_secs.unwrap_or(24 * 3600);
    if overlap > 30 * 24 * 3600 {
        errors.push("RWA_WEBHOOK_SECRET_OVERLAP_SECS: must be at most 2592000 (30 days)".into());
    }
    WebhookConfig {
        allow_private: w.allow_private.unwrap_or(false),
        timeout: std::time::Duration::from_millis(timeout_ms),
        disable_after: std::time::Duration::from_secs(disable_after),
        secret_overlap: std::time::Duration::from_secs(overlap),
    }
}

/// `[smtp]` / `RWA_SMTP_URL` and `RWA_SMTP_FROM`: both or neither.
fn smtp(
    s: &super::file::SmtpSection,
    prod: bool,
    errors: &mut Vec<String>,
) -> Option<rwa_notify::mail::SmtpSettings> {
    match (&s.url, &s.from) {
        (None, None) => None,
        (Some(_), None) => {
            errors.push("RWA_SMTP_FROM: required with RWA_SMTP_URL (the sender's address)".into());
            None
        }
        (None, Some(_)) => {
            errors.push("RWA_SMTP_URL: required with RWA_SMTP_FROM".into());
            None
        }
        (Some(url), Some(from)) => {
            match rwa_notify::mail::SmtpSettings::parse(url.expose(), from, prod) {
                Ok(settings) => Some(settings),
                Err(problems) => {
                    errors.extend(problems.lines().map(str::to_owned));
                    None
                }
            }
        }
    }
}

/// `[amqp]` / `RWA_AMQP_URL`, `RWA_AMQP_EXCHANGE`: the exchange only with
/// a URL.
fn amqp(
    a: &super::file::AmqpSection,
    prod: bool,
    errors: &mut Vec<String>,
) -> Option<rwa_notify::stream::AmqpSettings> {
    let Some(url) = &a.url else {
        if a.exchange.is_some() {
            errors.push("RWA_AMQP_EXCHANGE: set without RWA_AMQP_URL".into());
        }
        return None;
    };
    match rwa_notify::stream::AmqpSettings::parse(url.expose(), a.exchange.as_deref(), prod) {
        Ok(settings) => Some(settings),
        Err(problem) => {
            let name = if problem.starts_with("exchange") {
                "RWA_AMQP_EXCHANGE"
            } else {
                "RWA_AMQP_URL"
            };
            errors.push(format!("{name}: {problem}"));
            None
        }
    }
}

/// `[whatsapp]` / `RWA_WHATSAPP_*`: all three or none.
fn whatsapp(
    w: &super::file::WhatsAppSection,
    prod: bool,
    errors: &mut Vec<String>,
) -> Option<rwa_notify::whatsapp::WhatsAppSettings> {
    match (&w.url, &w.token, &w.phone_id) {
        (None, None, None) => None,
        (Some(url), Some(token), Some(phone_id)) => {
            match rwa_notify::whatsapp::WhatsAppSettings::parse(url, token.expose(), phone_id, prod)
            {
                Ok(settings) => Some(settings),
                Err(problems) => {
                    errors.extend(problems);
                    None
                }
            }
        }
        _ => {
            errors.push(
                "RWA_WHATSAPP_URL, RWA_WHATSAPP_TOKEN, RWA_WHATSAPP_PHONE_ID: all three or none"
                    .into(),
            );
            None
        }
    }
}
