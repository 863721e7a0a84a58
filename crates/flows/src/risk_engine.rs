//! The external risk engine's HTTP connector (`RWA_COMPLIANCE_ENGINE_URL`;
//! request and answer in docs/compliance-engine.md): `POST` of the
//! transfer as JSON, each attempt bounded by a timeout, transient failures
//! (unreachable, timeout, 429, 5xx) retried with backoff, and a circuit
//! breaker that stops asking a dead engine. Whatever goes wrong is
//! [`RiskOutcome::Unavailable`], which sends the transfer to manual review:
//! never an approval. Its state is `checks.compliance_engine`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rwa_chain::rpc::{Breaker, BreakerState};
use rwa_domain::compliance::{RiskAssessment, RiskEngine, RiskOutcome, RiskRequest};
use rwa_domain::health::{CheckReport, HealthCheck, HealthStatus};

/// Attempts per transfer (the first and two retries).
const ATTEMPTS: u32 = 3;
/// Wait before the first retry; doubled before the next.
const BACKOFF: Duration = Duration::from_millis(200);
/// Consecutive failed transfers that open the breaker.
const BREAKER_THRESHOLD: u32 = 3;
/// How long an open breaker refuses before one probe.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(5);

/// The connector.
pub struct HttpRiskEngine {
    url: String,
    client: reqwest::Client,
    breaker: Breaker,
    last_error: Mutex<Option<String>>,
}

impl HttpRiskEngine {
    /// A connector to `url`, each attempt bounded by `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("risk engine client: {e}"))?;
        Ok(Self {
            url: url.to_owned(),
            client,
            breaker: Breaker::named(
                "compliance_engine",
                "rwa_compliance_engine_breaker_transitions_total",
                BREAKER_THRESHOLD,
                BREAKER_COOL_DOWN,
            ),
            last_error: Mutex::new(None),
        })
    }

    /// One attempt: an answer, or whether the failure is worth a retry.
    async fn attempt(&self, request: &RiskRequest) -> Result<RiskAssessment, (bool, String)> {
        let response = self
            .client
            .post(&self.url)
            .json(request)
            .send()
            .await
            .map_err(|e| (true, format!("unreachable: {e}")))?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() {
            return Err((true, format!("answered {status}")));
        }
        if !status.is_success() {
            return Err((false, format!("answered {status}")));
        }
        response
            .json::<RiskAssessment>()
            .await
            .map_err(|e| (false, format!("malformed answer: {e}")))
    }

    fn remember(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

#[async_trait]
impl RiskEngine for HttpRiskEngine {
    async fn assess(&self, request: &RiskRequest) -> RiskOutcome {
        if !self.breaker.allow() {
            return RiskOutcome::Unavailable("circuit breaker open".into());
        }
        let mut wait = BACKOFF;
        let mut why = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.attempt(request).await {
                Ok(assessment) => {
                    self.breaker.success();
                    self.remember(None);
                    metrics::counter!("rwa_compliance_engine_calls_total", "outcome" => "answered")
                        .increment(1);
                    return RiskOutcome::Assessed(assessment);
                }
                Err((retry, e)) => {
                    why = e;
                    if !retry || attempt == ATTEMPTS {
                        break;
                    }
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        tracing::warn!(transfer = %request.transfer_id, error = %why, "risk engine unavailable; manual review");
        metrics::counter!("rwa_compliance_engine_calls_total", "outcome" => "unavailable")
            .increment(1);
        self.breaker.failure();
        self.remember(Some(why.clone()));
        RiskOutcome::Unavailable(why)
    }
}

#[async_trait]
impl HealthCheck for HttpRiskEngine {
    fn name(&self) -> &'static str {
        "compliance_engine"
    }

    fn critical(&self) -> bool {
        false
    }

    /// The breaker and the last call's outcome (no probe: the engine is
    /// asked about transfers only).
    async fn check(&self) -> CheckReport {
        let started = Instant::now();
        let breaker = self.breaker.state();
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let status = if breaker == BreakerState::Closed && last_error.is_none() {
            HealthStatus::Healthy
        } else {
            HealthStatus::Degraded
        };
        let mut details = serde_json::Map::new();
        details.insert("breaker".into(), breaker.as_str().into());
        details.insert("last_error".into(), last_error.into());
        CheckReport {
            status,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            details,
        }
    }
}
