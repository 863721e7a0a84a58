//! What handlers share: the ports they call and the settings they obey.

use std::sync::Arc;
use std::time::Duration;

use rwa_domain::health::HealthCheck;
use rwa_domain::jobs::JobAdmin;
use rwa_domain::ports::{ApiKeyRepository, AuditTrail, OrgRepository};
use rwa_domain::token::TokenRepository;

/// HTTP behaviour that operators configure.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// Largest accepted request body (413 above it).
    pub body_limit_bytes: usize,
    /// Deepest accepted JSON nesting (400 above it).
    pub json_max_depth: usize,
    /// Longest a request may take (504 after it).
    pub request_timeout: Duration,
    /// How long each health probe may take before it counts as failed.
    pub health_timeout: Duration,
    /// Production mode: HSTS on.
    pub production: bool,
    /// Origins allowed by CORS; empty means no cross-origin access.
    pub cors_origins: Vec<String>,
    /// Peers whose `X-Forwarded-For` names the client (`RWA_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long a rotated webhook secret keeps signing beside the new one
    /// (`RWA_WEBHOOK_SECRET_OVERLAP_SECS`).
    pub webhook_secret_overlap: Duration,
    /// Whether the server sends e-mail (`RWA_SMTP_URL`): e-mail
    /// preferences are refused without it.
    pub email_configured: bool,
    /// Whether the server sends WhatsApp messages (`RWA_WHATSAPP_URL`).
    pub whatsapp_configured: bool,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            body_limit_bytes: 1024 * 1024,
            json_max_depth: 32,
            request_timeout: Duration::from_secs(30),
            health_timeout: Duration::from_secs(2),
            production: false,
            cors_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            webhook_secret_overlap: Duration::from_secs(24 * 3600),
            email_configured: false,
            whatsapp_configured: false,
        }
    }
}

/// Renders the Prometheus exposition text (refreshing pool and process gauges first).
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Shared state of every handler: the ports, behind one `Arc`. axum clones
/// the state for every middleware layer of every request; one reference
/// count is what that should cost (a profile of `/health/live` showed 5 % of
/// the server's CPU in dropping a struct of eight `Arc`s).
#[derive(Clone)]
pub struct ApiState(Arc<ApiPorts>);

impl ApiState {
    /// The state handlers share.
    pub fn new(ports: ApiPorts) -> Self {
        Self(Arc::new(ports))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiPorts;

    fn deref(&self) -> &ApiPorts {
        &self.0
    }
}

/// What handlers call, and the settings they obey.
pub struct ApiPorts {
    /// Organizations.
    pub orgs: Arc<dyn OrgRepository>,
    /// API keys.
    pub keys: Arc<dyn ApiKeyRepository>,
    /// Users.
    pub users: Arc<dyn rwa_domain::user::UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn rwa_domain::session::SessionRepository>,
    /// Access tokens: issued at login and refresh, verified at each request.
    pub access: Arc<crate::access_token::AccessTokens>,
    /// Audit trail.
    pub audit: Arc<dyn AuditTrail>,
    /// The organization's background jobs.
    pub jobs: Arc<dyn JobAdmin>,
    /// Security tokens.
    pub tokens: Arc<dyn TokenRepository>,
    /// The organization's domain events.
    pub events: Arc<dyn rwa_domain::ports::EventLog>,
    /// Investors.
    pub investors: Arc<dyn rwa_domain::investor::InvestorRepository>,
    /// Issuer operations.
    pub operations: Arc<dyn rwa_domain::operation::OperationRepository>,
    /// Transfers.
    pub transfers: Arc<dyn rwa_domain::transfer::TransferRepository>,
    /// Tokens' rule-set versions and the organization's defaults.
    pub rule_sets: Arc<dyn rwa_domain::rule_set::RuleSetRepository>,
    /// Idempotency keys of the POSTs that take one.
    pub idempotency: Arc<dyn rwa_domain::idempotency::IdempotencyStore>,
    /// The indexer's holdings and history.
    pub index: Arc<dyn rwa_domain::onchain::IndexStore>,
    /// Watched contracts.
    pub watched: Arc<dyn rwa_domain::onchain::WatchedContracts>,
    /// Notification preferences.
    pub notifications: Arc<dyn rwa_domain::notification::NotificationSettingsRepository>,
    /// Webhook endpoints and their deliveries.
    pub webhooks: Arc<dyn rwa_domain::webhook::WebhookRepository>,
    /// Reconciles the index with the chain.
    pub verifier: Arc<dyn rwa_domain::onchain::IndexVerifier>,
    /// The chain this server follows.
    pub chain_id: u64,
    /// What tokens' compliance contracts count (the mint check's limits).
    pub holdings: Arc<dyn rwa_domain::operation::HoldingsView>,
    /// The secret KYC providers sign callbacks with
    /// (`RWA_KYC_CALLBACK_SECRET`); callbacks are refused without one.
    pub kyc_callback_secret: Option<Arc<[u8]>>,
    /// Rate limits per address and per credential.
    pub limits: Arc<crate::rate_limit::RateLimiter>,
    /// Dependencies reported by `/health/*`.
    pub health: Arc<[Arc<dyn HealthCheck>]>,
    /// `/metrics` body.
    pub metrics: MetricsRenderer,
    /// HTTP settings.
    pub settings: Arc<ApiSettings>,
}
