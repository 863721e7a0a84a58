//! `transfers-settlement` jobs: glue around the settlement flow
//! ([`rwa_flows::settlement`]), one [`SettlementFlow::step`] per run for the
//! job's organization. While batches are on their way the job snoozes (no
//! attempt used), which is also the window in which approved transfers
//! gather into the next batches; it completes when the organization has
//! nothing approved and nothing open (the next approval enqueues a new
//! job). A failure to reach the chain or the database is retried with
//! backoff; a job that runs out of attempts is revived by the operations
//! maintenance.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rwa_domain::OrgId;
use rwa_flows::settlement::{Progress, SettlementFlow};
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// How often a flow with batches on their way looks again.
const POLL: Duration = Duration::from_millis(250);

/// Runs settlement steps.
pub(super) struct TransfersSettlementHandler {
    pub(super) flow: Arc<SettlementFlow>,
}

#[async_trait]
impl Handler for TransfersSettlementHandler {
    async fn run(&self, job: &Job) -> Outcome {
        let Some(org) = job
            .args
            .get("org_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<OrgId>().ok())
        else {
            return Outcome::Discard(format!("args carry no org_id: {}", job.args));
        };
        match self.flow.step(org).await {
            Ok(Progress::Idle) => Outcome::Completed,
            Ok(Progress::Waiting { .. }) => Outcome::Snooze(POLL),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
