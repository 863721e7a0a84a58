//! Health checks: each dependency a process has (database, queues, chain,
//! signers) reports through this one port, and `/health/detailed` lists them
//! under `checks.<name>`; a part that does not exist has no entry.

use async_trait::async_trait;
use serde::Serialize;

/// How a dependency is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Working normally.
    Healthy,
    /// Working, but an operator should look (a breaker half-open, a low gas balance).
    Degraded,
    /// Not working.
    Unhealthy,
}

/// One check's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckReport {
    /// Verdict.
    pub status: HealthStatus,
    /// How long the probe took.
    pub latency_ms: f64,
    /// Check-specific fields (chain id, head, breaker state, ...), flattened into
    /// the check's JSON object.
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A dependency that can report its health.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Key under `checks` (`database`, `chain`, `queues`, ...).
    fn name(&self) -> &'static str;

    /// Whether readiness (`/health/ready`) depends on this check being healthy
    /// or degraded. The database is critical; most others only degrade.
    fn critical(&self) -> bool;

    /// Probes the dependency. Implementations bound their own duration.
    async fn check(&self) -> CheckReport;
}
