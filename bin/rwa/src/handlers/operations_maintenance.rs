//! `operations-maintenance` jobs (every minute, from the scheduler):
//! idempotency keys past their 24 hours are deleted, and an organization
//! whose operations or settlement job ran out of attempts while work
//! remained gets a new one.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_domain::idempotency::IdempotencyStore;
use rwa_domain::operation::OperationRepository;
use rwa_domain::settlement::SettlementRepository;
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// When it runs (cron with seconds, UTC): every minute, at second 30.
pub(super) const SCHEDULE: &str = "30 * * * * *";

/// Runs the maintenance.
pub(super) struct OperationsMaintenanceHandler {
    pub(super) operations: Arc<dyn OperationRepository>,
    pub(super) idempotency: Arc<dyn IdempotencyStore>,
    pub(super) settlement: Arc<dyn SettlementRepository>,
}

#[async_trait]
impl Handler for OperationsMaintenanceHandler {
    async fn run(&self, _job: &Job) -> Outcome {
        let pruned = match self.idempotency.system_prune().await {
            Ok(n) => n,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let revived = match self.operations.system_revive().await {
            Ok(n) => n,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let revived = match self.settlement.system_revive().await {
            Ok(n) => revived + n,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        if pruned + revived > 0 {
            tracing::info!(pruned, revived, "operations maintenance");
        }
        Outcome::Completed
    }
}
