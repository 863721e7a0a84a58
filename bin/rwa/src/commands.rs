//! One function per command. Each returns the process exit code; configuration
//! problems are reported by the caller with exit code 2 before any of these run.

use anyhow::Context;
use rwa_domain::api_key::{NewApiKey, parse_label};
use rwa_domain::org::OrgName;
use rwa_domain::ports::{ApiKeyRepository, AuditTrail, OrgRepository};
use rwa_domain::{Actor, OrgId, Role};
use serde_json::json;

use crate::app::{App, open_store, open_store_rotating};
use crate::config::Config;

/// Exit code for invalid input (configuration, arguments).
pub const EXIT_USAGE: i32 = 2;

/// `rwa serve`: runs until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<i32> {
    let app = App::build(config).await?;
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run_until(async {
        tokio::select! {
            () = shutdown_signal() => {}
            () = test_parent_gone() => {}
        }
    })
    .await?;
    Ok(0)
}

/// Test builds only: with `RWA_TEST_EXIT_ON_STDIN_EOF` set, the server stops
/// when its stdin closes, i.e. when the test process that spawned it exits, so a
/// server shared by a whole test binary never outlives it.
async fn test_parent_gone() {
    if !(rwa_api::TEST_HOOKS && std::env::var_os("RWA_TEST_EXIT_ON_STDIN_EOF").is_some()) {
        return std::future::pending().await;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 64];
    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stdin, &mut buf).await {
        if n == 0 {
            break;
        }
    }
    tracing::info!("test parent went away");
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
    }
}

/// `rwa migrate`.
pub async fn migrate(config: Config) -> anyhow::Result<i32> {
    let store = open_store(&config).await?;
    store.close().await;
    tracing::info!(database = %config.database.url.redacted(), "migrations applied");
    Ok(0)
}

/// `rwa config check`: prints the effective configuration, secrets redacted.
pub fn config_check(config: &Config) -> i32 {
    let summary = json!({
        "status": "ok",
        "env": format!("{:?}", config.env).to_lowercase(),
        "addr": config.addr.to_string(),
        "data_dir": config.data_dir.display().to_string(),
        "database": config.database.url.redacted(),
        "secret_key": if config.secret_key.is_some() { "set" } else { "generated in the data dir" },
        "cors_origins": config.cors_origins,
        "chain": config.chain.rpc_url.as_ref().map_or("embedded devnet".into(), |u| u.redacted()),
        "confirmations": config.chain.confirmations,
        "signers": crate::signers::describe(&config.signer, &config.data_dir),
        "log_format": format!("{:?}", config.log_format).to_lowercase(),
        "queues": config.jobs.queues.iter().map(|q| json!({
            "name": q.name,
            "concurrency": q.concurrency,
            "rate_limit": q.rate_limit.map(|r| json!({ "jobs": r.jobs, "per_seconds": r.per.as_secs() })),
        })).collect::<Vec<_>>(),
        "rate_limits": rate_limits_summary(&config.limits),
        "trusted_proxies": config.limits.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "redis": config.limits.redis_url.as_ref().map(|u| u.redacted()),
        "tls": config.limits.tls.as_ref().map(|t| json!({
            "cert": t.cert.display().to_string(),
            "key": t.key.display().to_string(),
            "client_ca": t.client_ca.as_ref().map(|p| p.display().to_string()),
        })),
        "webhooks": {
            "allow_private": config.webhooks.allow_private,
            "timeout_ms": config.webhooks.timeout.as_millis() as u64,
            "disable_after_secs": config.webhooks.disable_after.as_secs(),
            "secret_overlap_secs": config.webhooks.secret_overlap.as_secs(),
        },
        "smtp": config.smtp.as_ref().map(ToString::to_string),
        "whatsapp": config.whatsapp.as_ref().map(|w| format!("{w:?}")),
        "amqp": config.amqp.as_ref().map(|a| serde_json::json!({
            "url": a.redacted_url(),
            "exchange": a.exchange,
        })),
    });
    println!("{summary}");
    0
}

fn rate_limits_summary(limits: &crate::config::LimitsConfig) -> serde_json::Value {
    let r = &limits.rate;
    let quota =
        |q: &rwa_api::rate_limit::Quota| json!({ "per_minute": q.per_minute, "burst": q.burst });
    json!({
        "enabled": r.enabled,
        "per_address": quota(&r.per_address),
        "auth": quota(&r.auth),
        "default_tier": r.default_tier,
        "tiers": r.tiers.iter().map(|(k, q)| (k.clone(), quota(q))).collect::<serde_json::Map<_, _>>(),
    })
}

/// `rwa org create`: one JSON line `{"org_id","api_key"}`.
pub async fn org_create(config: Config, name: &str) -> anyhow::Result<i32> {
    let name = match OrgName::parse(name) {
        Ok(n) => n,
        Err(e) => return Ok(usage(&format!("--{e}"))),
    };
    let store = open_store(&config).await?;
    let (key, secret) =
        NewApiKey::generate(Role::Admin, Some("created with the organization".into()));
    let org = store
        .system_create_with_key(&name, &key, &Actor::CLI)
        .await
        .context("creating the organization")?;
    store.close().await;
    println!(
        "{}",
        json!({ "org_id": org.id, "api_key": secret.expose() })
    );
    Ok(0)
}

/// `rwa org set-tier`: one JSON line with the organization's tier.
pub async fn org_set_tier(config: Config, org: &str, tier: &str) -> anyhow::Result<i32> {
    let Ok(org) = org.parse::<OrgId>() else {
        return Ok(usage("--org: must be an organization id (UUID)"));
    };
    let tiers = &config.limits.rate.tiers;
    let tier = match tier {
        "default" => None,
        t if tiers.contains_key(t) => Some(t),
        t => {
            let known: Vec<&str> = tiers.keys().map(String::as_str).collect();
            return Ok(usage(&format!(
                "--tier: {t:?} is not a configured tier (configured: {}, or default)",
                known.join(", ")
            )));
        }
    };
    let store = open_store(&config).await?;
    let result = store.system_set_rate_tier(org, tier, &Actor::CLI).await;
    store.close().await;
    match result {
        Ok(o) => {
            println!("{}", json!({ "org_id": o.id, "rate_tier": o.rate_tier }));
            Ok(0)
        }
        Err(rwa_domain::RepoError::NotFound) => Ok(usage("--org: no such organization")),
        Err(e) => Err(e).context("setting the tier"),
    }
}

/// `rwa keys create`: one JSON line with the new key.
pub async fn keys_create(
    config: Config,
    org: &str,
    role: &str,
    label: Option<&str>,
) -> anyhow::Result<i32> {
    let Ok(org) = org.parse::<OrgId>() else {
        return Ok(usage("--org: must be an organization id (UUID)"));
    };
    let role = match role.parse::<Role>() {
        Ok(r) => r,
        Err(e) => return Ok(usage(&format!("--{e}"))),
    };
    let label = match parse_label(label) {
        Ok(l) => l,
        Err(e) => return Ok(usage(&format!("--{e}"))),
    };
    let store = open_store(&config).await?;
    let (record, secret) = NewApiKey::generate(role, label);
    let created = store.create(org, &record, &Actor::CLI).await;
    store.close().await;
    match created {
        Ok(key) => {
            let line =
                json!({ "id": key.id, "org_id": org, "role": role, "api_key": secret.expose() });
            println!("{line}");
            Ok(0)
        }
        Err(rwa_domain::RepoError::NotFound) => Ok(usage("--org: no such organization")),
        Err(e) => Err(e).context("creating the key"),
    }
}

/// `rwa audit verify`: exit 0 when the chain is intact, 1 otherwise.
pub async fn audit_verify(config: Config) -> anyhow::Result<i32> {
    let store = open_store(&config).await?;
    let result = store
        .system_verify()
        .await
        .context("reading the audit trail")?;
    store.close().await;
    let ok = result.first_broken.is_none();
    println!(
        "{}",
        json!({ "ok": ok, "entries": result.entries, "first_broken": result.first_broken })
    );
    Ok(if ok { 0 } else { 1 })
}

/// `rwa auth rotate-key`: a new signing key for access tokens, at once.
pub async fn auth_rotate_key(config: Config) -> anyhow::Result<i32> {
    use rwa_domain::session::SessionRepository as _;
    let store = open_store(&config).await?;
    let key = store
        .system_rotate_signing_key(None)
        .await
        .context("rotating the signing key")?;
    store.close().await;
    println!(
        "{}",
        json!({ "kid": key.kid, "created_at": key.created_at })
    );
    Ok(0)
}

/// `rwa jobs list`: one JSON line per job.
pub async fn jobs_list(
    config: Config,
    queue: Option<&str>,
    state: Option<&str>,
    limit: u32,
) -> anyhow::Result<i32> {
    let state = match state.map(|s| (s, rwa_jobs::JobState::parse(s))) {
        None => None,
        Some((_, Some(st))) => Some(st),
        Some((s, None)) => return Ok(usage(&format!("--state: unknown state {s:?}"))),
    };
    let store = open_store(&config).await?;
    let queue_db = rwa_jobs::Queue::new(store.job_db());
    let jobs = queue_db
        .list(None, queue, state, None, limit.clamp(1, 10_000))
        .await
        .context("listing jobs")?;
    for job in jobs {
        println!("{}", serde_json::to_string(&job)?);
    }
    store.close().await;
    Ok(0)
}

/// What `rwa jobs retry|cancel` does.
#[derive(Clone, Copy, Debug)]
pub enum Steer {
    /// Runnable now.
    Retry,
    /// Cancelled.
    Cancel,
}

/// `rwa jobs retry|cancel ID`: prints the job; exit 2 for an unknown id or a
/// job in the wrong state.
pub async fn jobs_steer(config: Config, id: &str, steer: Steer) -> anyhow::Result<i32> {
    let Ok(id) = id.parse::<uuid::Uuid>() else {
        return Ok(usage("ID: not a job id (UUID)"));
    };
    let store = open_store(&config).await?;
    let queue = rwa_jobs::Queue::new(store.job_db());
    let result = match steer {
        Steer::Retry => queue.retry_now(id).await,
        Steer::Cancel => queue.cancel_now(id).await,
    };
    store.close().await;
    match result {
        Ok(job) => {
            println!("{}", serde_json::to_string(&job)?);
            Ok(0)
        }
        Err(rwa_domain::RepoError::NotFound) => Ok(usage("ID: no such job")),
        Err(rwa_domain::RepoError::Conflict(why)) => Ok(usage(&why)),
        Err(e) => Err(e).context("updating the job"),
    }
}

fn usage(message: &str) -> i32 {
    eprintln!("{message}");
    EXIT_USAGE
}

/// `rwa secrets rotate`: re-seals personal data sealed under the previous
/// server secret (`RWA_PREVIOUS_SECRET_KEY`) under the current one (the
/// configured `RWA_SECRET_KEY`, or in development the data dir's generated
/// secret, as `serve` uses).
pub async fn secrets_rotate(mut config: Config) -> anyhow::Result<i32> {
    let previous = std::env::var("RWA_PREVIOUS_SECRET_KEY").map_err(|_| {
        anyhow::anyhow!(
            "RWA_PREVIOUS_SECRET_KEY: required: the secret the personal data is sealed under now"
        )
    })?;
    if config.secret_key.is_none() {
        config.secret_key = Some(crate::secrets::development_secret(&config.data_dir)?);
    }
    let store = open_store_rotating(&config, Some(previous.as_bytes())).await?;
    let resealed = store.reseal_personal_data().await.context(
        "re-sealing personal data (is RWA_PREVIOUS_SECRET_KEY the secret it was sealed under?)",
    );
    // Webhook signing secrets are sealed the same way.
    let webhooks = match &resealed {
        Ok(_) => store.reseal_webhook_secrets().await.context(
            "re-sealing webhook secrets (is RWA_PREVIOUS_SECRET_KEY the secret they were sealed under?)",
        ),
        Err(_) => Ok(0),
    };
    store.close().await;
    let current = config.secret_key.as_ref().expect("resolved above");
    let key_id = rwa_domain::pii::PiiKey::derive(current.expose().as_bytes())
        .id()
        .to_owned();
    println!(
        "{}",
        json!({ "resealed": resealed?, "webhook_secrets": webhooks?, "key_id": key_id })
    );
    Ok(0)
}

/// The files of a list to load.
pub struct ListFiles {
    /// The list (`sdn.csv`, or the generic CSV).
    pub file: std::path::PathBuf,
    /// `alt.csv`.
    pub alt: Option<std::path::PathBuf>,
    /// `sdn_comments.csv`.
    pub comments: Option<std::path::PathBuf>,
}

/// `rwa sanctions load`: parses every file first (a malformed one is exit 2
/// naming its line, and the database is not touched), then loads the version
/// in one transaction.
pub async fn sanctions_load(
    config: Config,
    list: &str,
    format: &str,
    files: &ListFiles,
) -> anyhow::Result<i32> {
    use rwa_domain::sanctions::{self, SanctionsRepository};
    let list = match sanctions::parse_list_name(list) {
        Ok(l) => l,
        Err(e) => return Ok(usage(&format!("--list: {e}"))),
    };
    let read =
        |p: &std::path::Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let main = read(&files.file)?;
    let alt = files.alt.as_deref().map(read).transpose()?;
    let comments = files.comments.as_deref().map(read).transpose()?;
    if format == "csv" && (alt.is_some() || comments.is_some()) {
        return Ok(usage("--alt and --comments belong to --format ofac-sdn"));
    }
    let parsed = match format {
        "ofac-sdn" => sanctions::parse_ofac_sdn(&main, alt.as_deref(), comments.as_deref()),
        _ => {
            let name = files
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "file".into());
            sanctions::parse_generic_csv(&main, &name)
        }
    };
    let entries = match parsed {
        Ok(e) => e,
        Err(e) => return Ok(usage(&format!("{e}; nothing was loaded"))),
    };
    let mut parts: Vec<&[u8]> = vec![&main];
    parts.extend(alt.as_deref());
    parts.extend(comments.as_deref());
    let hash = sanctions::content_hash(&parts);
    let store = open_store(&config).await?;
    let loaded = store.system_load_list(&list, format, &hash, &entries).await;
    store.close().await;
    let (version, new) = loaded.context("loading the list")?;
    let mut out = serde_json::to_value(&version)?;
    out["new"] = json!(new);
    println!("{out}");
    Ok(0)
}

/// `rwa sanctions list`: every list's current version, one JSON line each.
pub async fn sanctions_list(config: Config) -> anyhow::Result<i32> {
    use rwa_domain::sanctions::SanctionsRepository;
    let store = open_store(&config).await?;
    let lists = store.system_current_lists().await;
    store.close().await;
    for version in lists.context("reading the lists")? {
        println!("{}", serde_json::to_string(&version)?);
    }
    Ok(0)
}
