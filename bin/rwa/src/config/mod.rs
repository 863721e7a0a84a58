//! Configuration: defaults → optional TOML file (`--config`) → `RWA_*`
//! environment → command-line flags. Typed and validated before anything starts;
//! every problem is reported on its own line and the process exits with code 2.

mod file;
mod limits;
mod secret;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use limits::LimitsConfig;
pub use secret::{Secret, SecretUrl};

/// `development` or `production`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Environment {
    /// Local work: generated secrets and the embedded devnet are allowed.
    Development,
    /// Real money: every secret explicit, no embedded chain.
    Production,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Pretty,
}

/// Which parts of the service this process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeRole {
    /// Everything in one process (the default).
    All,
    /// HTTP only.
    Api,
    /// Background workers only.
    Worker,
    /// The chain indexer only.
    Indexer,
}

/// The database.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: SecretUrl,
    /// Pool size.
    pub max_connections: u32,
    /// Connections kept open.
    pub min_connections: u32,
    /// Wait for a free connection before failing.
    pub acquire_timeout: Duration,
}

/// HTTP limits.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Largest request body.
    pub body_limit_bytes: usize,
    /// Deepest JSON nesting.
    pub json_max_depth: usize,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_timeout: Duration,
}

/// The job workers.
#[derive(Clone, Debug)]
pub struct JobsConfig {
    /// Lease of a claimed job; heartbeats renew it every third.
    pub lease: Duration,
    /// Pause between maintenance rounds (rescue, prune, periodic jobs).
    pub maintenance_interval: Duration,
    /// The queues this process serves, with their limits.
    pub queues: Vec<rwa_jobs::worker::QueueConfig>,
}

/// The chain.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// JSON-RPC node; `None` means the embedded devnet (development only).
    pub rpc_url: Option<SecretUrl>,
    /// Blocks before a transaction counts as settled.
    pub confirmations: u64,
}

/// Signing keys.
#[derive(Clone, Debug, Default)]
pub struct SignerConfig {
    /// Default signer (hex private key).
    pub key: Option<Secret>,
    /// Encrypted keystore file, instead of `key`.
    pub keystore: Option<PathBuf>,
    /// Keystore password.
    pub password: Option<Secret>,
    /// Per-lane overrides.
    pub deploy_key: Option<Secret>,
    /// Mint lane.
    pub mint_key: Option<Secret>,
    /// Settlement lane.
    pub settlement_key: Option<Secret>,
    /// Admin lane.
    pub admin_key: Option<Secret>,
}

/// The external risk engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where each transfer is `POST`ed.
    pub url: String,
    /// Each attempt's timeout.
    pub timeout: std::time::Duration,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Development or production.
    pub env: Environment,
    /// Bind address (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Where SQLite, the generated secret and other local state live.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// Server secret; `None` in development until generated into the data dir.
    pub secret_key: Option<Secret>,
    /// What KYC providers sign callbacks with; callbacks are refused without it.
    pub kyc_callback_secret: Option<Secret>,
    /// The external risk engine (none: the rules alone decide).
    pub compliance_engine: Option<EngineConfig>,
    /// CORS origins.
    pub cors_origins: Vec<String>,
    /// Chain.
    pub chain: ChainConfig,
    /// Signers.
    pub signer: SignerConfig,
    /// OTLP/HTTP trace endpoint.
    pub otlp_endpoint: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// HTTP limits.
    pub http: HttpConfig,
    /// Users' sessions: access-token and session lifetimes, signing-key age.
    pub auth: rwa_api::access_token::AccessSettings,
    /// Rate limits, trusted proxies, Redis.
    pub limits: LimitsConfig,
    /// Job workers.
    pub jobs: JobsConfig,
    /// Roles this process runs.
    pub role: ServeRole,
    /// Webhook deliveries.
    pub webhooks: WebhookConfig,
    /// The SMTP server of the e-mail notifications (none: no e-mail).
    pub smtp: Option<rwa_notify::mail::SmtpSettings>,
    /// The WhatsApp Cloud API (none: no WhatsApp).
    pub whatsapp: Option<rwa_notify::whatsapp::WhatsAppSettings>,
    /// The RabbitMQ event stream (none: no stream).
    pub amqp: Option<rwa_notify::stream::AmqpSettings>,
}

/// Webhook deliveries (`[webhooks]`, `RWA_WEBHOOK_*`).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Loopback, private, link-local and metadata targets allowed
    /// (development and tests only).
    pub allow_private: bool,
    /// One attempt's limit.
    pub timeout: std::time::Duration,
    /// Failing for longer turns an endpoint off.
    pub disable_after: std::time::Duration,
    /// How long a rotated secret keeps signing beside the new one.
    pub secret_overlap: std::time::Duration,
}

/// Values given as command-line flags; they override every other source.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--addr`.
    pub addr: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--role`.
    pub role: Option<ServeRole>,
}

/// Every problem found, one line each.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Loads from the process environment.
    pub fn load(path: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigErrors> {
        Self::load_from(path, overrides, &|name| std::env::var(name).ok())
    }

    /// Loads with an explicit environment (tests).
    pub fn load_from(
        path: Option<&Path>,
        overrides: Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let mut layered = file::load(path, env, &mut errors);
        if let Some(addr) = overrides.addr {
            layered.addr = Some(addr);
        }
        if let Some(dir) = overrides.data_dir {
            layered.data_dir = Some(dir);
        }
        let config = validate::resolve(
            layered,
            overrides.role.unwrap_or(ServeRole::All),
            &mut errors,
        );
        match config {
            Some(c) if errors.is_empty() => Ok(c),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// The SQLite database path used when no URL is configured.
    pub fn default_database_url(data_dir: &Path) -> String {
        format!("sqlite://{}", data_dir.join("rwa.db").display())
    }

    /// Whether this runs on SQLite (single process).
    pub fn is_sqlite(&self) -> bool {
        self.database.url.expose().starts_with("sqlite:")
    }
}
