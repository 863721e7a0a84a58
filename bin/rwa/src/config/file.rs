//! The layered sources: defaults, then an optional TOML file, then `RWA_*`
//! variables, each mapped explicitly to its field (a generic split on `_` would
//! turn `RWA_CHAIN_RPC_URL` into `chain.rpc.url`). Parse errors are collected,
//! not returned at the first, so one run reports every problem.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::secret::{Secret, SecretUrl};

/// Every setting, optional at this stage; [`super::Config::resolve`] applies
/// defaults and validates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Layered {
    pub(crate) env: Option<String>,
    pub(crate) addr: Option<String>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) secret_key: Option<Secret>,
    pub(crate) cors_origins: Option<Vec<String>>,
    pub(crate) log_format: Option<String>,
    pub(crate) otlp_endpoint: Option<String>,
    pub(crate) trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) rate_limits: RateLimitsSection,
    #[serde(default)]
    pub(crate) redis: RedisSection,
    #[serde(default)]
    pub(crate) tls: TlsSection,
    #[serde(default)]
    pub(crate) database: DatabaseSection,
    #[serde(default)]
    pub(crate) http: HttpSection,
    #[serde(default)]
    pub(crate) auth: AuthSection,
    #[serde(default)]
    pub(crate) jobs: JobsSection,
    #[serde(default)]
    pub(crate) chain: ChainSection,
    #[serde(default)]
    pub(crate) signer: SignerSection,
    #[serde(default)]
    pub(crate) webhooks: WebhooksSection,
    #[serde(default)]
    pub(crate) smtp: SmtpSection,
    #[serde(default)]
    pub(crate) whatsapp: WhatsAppSection,
    #[serde(default)]
    pub(crate) amqp: AmqpSection,
    #[serde(default)]
    pub(crate) compliance: ComplianceSection,
    #[serde(default)]
    pub(crate) kyc: KycSection,
}

/// `[amqp]`: the RabbitMQ event stream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AmqpSection {
    pub(crate) url: Option<SecretUrl>,
    pub(crate) exchange: Option<String>,
}

/// `[smtp]`: the server that sends the organizations' e-mail.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SmtpSection {
    pub(crate) url: Option<SecretUrl>,
    pub(crate) from: Option<String>,
}

/// `[whatsapp]`: the WhatsApp Business Cloud API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WhatsAppSection {
    pub(crate) url: Option<String>,
    pub(crate) token: Option<Secret>,
    pub(crate) phone_id: Option<String>,
}

/// `[webhooks]`: deliveries to the organizations' endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhooksSection {
    pub(crate) allow_private: Option<bool>,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) disable_after_secs: Option<u64>,
    pub(crate) secret_overlap_secs: Option<u64>,
}

/// `[rate_limits]`: per address, on `/v1/auth/*`, and per credential by
/// the organization's tier.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitsSection {
    pub(crate) enabled: Option<bool>,
    pub(crate) default_tier: Option<String>,
    #[serde(default)]
    pub(crate) per_address: QuotaSection,
    #[serde(default)]
    pub(crate) auth: QuotaSection,
    #[serde(default)]
    pub(crate) tiers: std::collections::BTreeMap<String, QuotaSection>,
}

/// A bucket: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuotaSection {
    pub(crate) per_minute: Option<u32>,
    pub(crate) burst: Option<u32>,
}

/// `[tls]`: TLS termination by `rwa serve`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) client_ca: Option<PathBuf>,
}

/// `[redis]`: shared rate limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedisSection {
    pub(crate) url: Option<SecretUrl>,
    pub(crate) timeout_ms: Option<u64>,
}

/// `[compliance]`: the external risk engine asked after the rules pass.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceSection {
    /// Its URL (`POST` of each transfer); unset: rules only.
    pub(crate) engine_url: Option<String>,
    /// Each attempt's timeout, milliseconds.
    pub(crate) engine_timeout_ms: Option<u64>,
}

/// `[kyc]`: KYC provider callbacks.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KycSection {
    /// The secret providers sign `POST /callbacks/kyc/{org_id}` with.
    pub(crate) callback_secret: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseSection {
    pub(crate) url: Option<SecretUrl>,
    pub(crate) max_connections: Option<u32>,
    pub(crate) min_connections: Option<u32>,
    pub(crate) acquire_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpSection {
    pub(crate) body_limit_bytes: Option<usize>,
    pub(crate) json_max_depth: Option<usize>,
    pub(crate) request_timeout_ms: Option<u64>,
    pub(crate) shutdown_timeout_ms: Option<u64>,
}

/// `[auth]`: users' sessions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSection {
    pub(crate) access_ttl_secs: Option<u64>,
    pub(crate) session_ttl_secs: Option<u64>,
    pub(crate) key_max_age_secs: Option<u64>,
    pub(crate) lockout_after: Option<u64>,
    pub(crate) lockout_base_secs: Option<u64>,
    pub(crate) lockout_max_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobsSection {
    pub(crate) lease_ms: Option<u64>,
    pub(crate) maintenance_interval_ms: Option<u64>,
    #[serde(default)]
    pub(crate) queues: std::collections::BTreeMap<String, QueueSection>,
}

/// `[jobs.queues.<name>]`: a queue's concurrency per process and its rate limit
/// across processes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueSection {
    pub(crate) concurrency: Option<usize>,
    pub(crate) rate_limit: Option<u32>,
    pub(crate) rate_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainSection {
    pub(crate) rpc_url: Option<SecretUrl>,
    pub(crate) confirmations: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignerSection {
    pub(crate) key: Option<Secret>,
    pub(crate) keystore: Option<PathBuf>,
    pub(crate) password: Option<Secret>,
    pub(crate) deploy_key: Option<Secret>,
    pub(crate) mint_key: Option<Secret>,
    pub(crate) settlement_key: Option<Secret>,
    pub(crate) admin_key: Option<Secret>,
}

type Apply = fn(&mut Layered, &str) -> Result<(), String>;

fn number<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got {v:?}"))
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The environment variables and the field each one sets. The `RWA_DB_*` and
/// `RWA_HTTP_*` variables are ours beyond the documented contract, for pool and
/// limit tuning without a file.
// Each mapping is one assignment wrapped in `Ok`, which keeps the table one
// line per variable.
#[allow(clippy::unit_arg)]
pub(super) const ENV_VARS: &[(&str, Apply)] = &[
    ("RWA_ENV", |c, v| Ok(c.env = Some(v.to_owned()))),
    ("RWA_ADDR", |c, v| Ok(c.addr = Some(v.to_owned()))),
    ("RWA_DATA_DIR", |c, v| Ok(c.data_dir = Some(v.into()))),
    ("RWA_DATABASE_URL", |c, v| {
        Ok(c.database.url = Some(SecretUrl::new(v)))
    }),
    ("RWA_DB_MAX_CONNECTIONS", |c, v| {
        Ok(c.database.max_connections = Some(number(v)?))
    }),
    ("RWA_DB_MIN_CONNECTIONS", |c, v| {
        Ok(c.database.min_connections = Some(number(v)?))
    }),
    ("RWA_DB_ACQUIRE_TIMEOUT_MS", |c, v| {
        Ok(c.database.acquire_timeout_ms = Some(number(v)?))
    }),
    ("RWA_SECRET_KEY", |c, v| {
        Ok(c.secret_key = Some(Secret::new(v)))
    }),
    ("RWA_COMPLIANCE_ENGINE_URL", |c, v| {
        Ok(c.compliance.engine_url = Some(v.to_owned()))
    }),
    ("RWA_COMPLIANCE_ENGINE_TIMEOUT_MS", |c, v| {
        Ok(c.compliance.engine_timeout_ms = Some(number(v)?))
    }),
    ("RWA_KYC_CALLBACK_SECRET", |c, v| {
        Ok(c.kyc.callback_secret = Some(Secret::new(v)))
    }),
    (
        "RWA_CORS_ORIGINS",
        |c, v| Ok(c.cors_origins = Some(list(v))),
    ),
    ("RWA_CHAIN_RPC_URL", |c, v| {
        Ok(c.chain.rpc_url = Some(SecretUrl::new(v)))
    }),
    ("RWA_CHAIN_CONFIRMATIONS", |c, v| {
        Ok(c.chain.confirmations = Some(number(v)?))
    }),
    ("RWA_SIGNER_KEY", |c, v| {
        Ok(c.signer.key = Some(Secret::new(v)))
    }),
    ("RWA_SIGNER_KEYSTORE", |c, v| {
        Ok(c.signer.keystore = Some(v.into()))
    }),
    ("RWA_SIGNER_PASSWORD", |c, v| {
        Ok(c.signer.password = Some(Secret::new(v)))
    }),
    ("RWA_SIGNER_DEPLOY_KEY", |c, v| {
        Ok(c.signer.deploy_key = Some(Secret::new(v)))
    }),
    ("RWA_SIGNER_MINT_KEY", |c, v| {
        Ok(c.signer.mint_key = Some(Secret::new(v)))
    }),
    ("RWA_SIGNER_SETTLEMENT_KEY", |c, v| {
        Ok(c.signer.settlement_key = Some(Secret::new(v)))
    }),
    ("RWA_SIGNER_ADMIN_KEY", |c, v| {
        Ok(c.signer.admin_key = Some(Secret::new(v)))
    }),
    ("RWA_OTLP_ENDPOINT", |c, v| {
        Ok(c.otlp_endpoint = Some(v.to_owned()))
    }),
    ("RWA_LOG_FORMAT", |c, v| {
        Ok(c.log_format = Some(v.to_owned()))
    }),
    ("RWA_HTTP_BODY_LIMIT_BYTES", |c, v| {
        Ok(c.http.body_limit_bytes = Some(number(v)?))
    }),
    ("RWA_HTTP_JSON_MAX_DEPTH", |c, v| {
        Ok(c.http.json_max_depth = Some(number(v)?))
    }),
    ("RWA_HTTP_REQUEST_TIMEOUT_MS", |c, v| {
        Ok(c.http.request_timeout_ms = Some(number(v)?))
    }),
    ("RWA_HTTP_SHUTDOWN_TIMEOUT_MS", |c, v| {
        Ok(c.http.shutdown_timeout_ms = Some(number(v)?))
    }),
    ("RWA_AUTH_ACCESS_TTL_SECS", |c, v| {
        Ok(c.auth.access_ttl_secs = Some(number(v)?))
    }),
    ("RWA_AUTH_SESSION_TTL_SECS", |c, v| {
        Ok(c.auth.session_ttl_secs = Some(number(v)?))
    }),
    ("RWA_AUTH_KEY_MAX_AGE_SECS", |c, v| {
        Ok(c.auth.key_max_age_secs = Some(number(v)?))
    }),
    ("RWA_AUTH_LOCKOUT_AFTER", |c, v| {
        Ok(c.auth.lockout_after = Some(number(v)?))
    }),
    ("RWA_AUTH_LOCKOUT_BASE_SECS", |c, v| {
        Ok(c.auth.lockout_base_secs = Some(number(v)?))
    }),
    ("RWA_AUTH_LOCKOUT_MAX_SECS", |c, v| {
        Ok(c.auth.lockout_max_secs = Some(number(v)?))
    }),
    ("RWA_TRUSTED_PROXIES", |c, v| {
        Ok(c.trusted_proxies = Some(list(v)))
    }),
    ("RWA_TLS_CERT", |c, v| Ok(c.tls.cert = Some(v.into()))),
    ("RWA_TLS_KEY", |c, v| Ok(c.tls.key = Some(v.into()))),
    ("RWA_TLS_CLIENT_CA", |c, v| {
        Ok(c.tls.client_ca = Some(v.into()))
    }),
    ("RWA_REDIS_URL", |c, v| {
        Ok(c.redis.url = Some(SecretUrl::new(v)))
    }),
    ("RWA_REDIS_TIMEOUT_MS", |c, v| {
        Ok(c.redis.timeout_ms = Some(number(v)?))
    }),
    ("RWA_RATE_LIMITS", |c, v| {
        c.rate_limits.enabled = Some(match v.trim() {
            "on" | "true" => true,
            "off" | "false" => false,
            _ => return Err(format!("expected on or off, got {v:?}")),
        });
        Ok(())
    }),
    ("RWA_RATE_LIMIT_ADDRESS_PER_MINUTE", |c, v| {
        Ok(c.rate_limits.per_address.per_minute = Some(number(v)?))
    }),
    ("RWA_RATE_LIMIT_ADDRESS_BURST", |c, v| {
        Ok(c.rate_limits.per_address.burst = Some(number(v)?))
    }),
    ("RWA_RATE_LIMIT_AUTH_PER_MINUTE", |c, v| {
        Ok(c.rate_limits.auth.per_minute = Some(number(v)?))
    }),
    ("RWA_RATE_LIMIT_AUTH_BURST", |c, v| {
        Ok(c.rate_limits.auth.burst = Some(number(v)?))
    }),
    ("RWA_SMTP_URL", |c, v| {
        Ok(c.smtp.url = Some(SecretUrl::new(v)))
    }),
    ("RWA_SMTP_FROM", |c, v| Ok(c.smtp.from = Some(v.to_owned()))),
    ("RWA_AMQP_URL", |c, v| {
        Ok(c.amqp.url = Some(SecretUrl::new(v)))
    }),
    ("RWA_AMQP_EXCHANGE", |c, v| {
        Ok(c.amqp.exchange = Some(v.to_owned()))
    }),
    ("RWA_WHATSAPP_URL", |c, v| {
        Ok(c.whatsapp.url = Some(v.to_owned()))
    }),
    ("RWA_WHATSAPP_TOKEN", |c, v| {
        Ok(c.whatsapp.token = Some(Secret::new(v)))
    }),
    ("RWA_WHATSAPP_PHONE_ID", |c, v| {
        Ok(c.whatsapp.phone_id = Some(v.to_owned()))
    }),
    ("RWA_WEBHOOK_ALLOW_PRIVATE", |c, v| {
        c.webhooks.allow_private = Some(match v.trim() {
            "true" | "on" => true,
            "false" | "off" => false,
            _ => return Err(format!("expected true or false, got {v:?}")),
        });
        Ok(())
    }),
    ("RWA_WEBHOOK_TIMEOUT_MS", |c, v| {
        Ok(c.webhooks.timeout_ms = Some(number(v)?))
    }),
    ("RWA_WEBHOOK_DISABLE_AFTER_SECS", |c, v| {
        Ok(c.webhooks.disable_after_secs = Some(number(v)?))
    }),
    ("RWA_WEBHOOK_SECRET_OVERLAP_SECS", |c, v| {
        Ok(c.webhooks.secret_overlap_secs = Some(number(v)?))
    }),
    ("RWA_JOBS_LEASE_MS", |c, v| {
        Ok(c.jobs.lease_ms = Some(number(v)?))
    }),
    ("RWA_JOBS_MAINTENANCE_INTERVAL_MS", |c, v| {
        Ok(c.jobs.maintenance_interval_ms = Some(number(v)?))
    }),
];

/// Reads the TOML file, if any, then applies the environment. Problems are
/// appended to `errors`, one line each.
pub(crate) fn load(
    path: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Layered {
    let mut layered = match path {
        None => Layered::default(),
        Some(p) => match std::fs::read_to_string(p) {
            Err(e) => {
                errors.push(format!("--config {}: cannot read: {e}", p.display()));
                Layered::default()
            }
            Ok(text) => toml::from_str(&text).unwrap_or_else(|e: toml::de::Error| {
                let msg = e.message().trim().to_owned();
                errors.push(format!("--config {}: {msg}", p.display()));
                Layered::default()
            }),
        },
    };
    for (name, apply) in ENV_VARS {
        if let Some(value) = env(name)
            && let Err(problem) = apply(&mut layered, &value)
        {
            errors.push(format!("{name}: {problem}"));
        }
    }
    layered
}
