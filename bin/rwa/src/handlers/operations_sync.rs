//! `operations-sync` jobs: glue around the operations flow
//! ([`rwa_flows::operations`]), one [`OperationsFlow::step`] per run for the
//! job's organization. While batches are on their way the job snoozes (no
//! attempt used), which is also the window in which new operations gather
//! into the next batches; it completes when the organization has nothing
//! pending (a later operation enqueues a new job). A failure to reach the
//! chain or the database is retried with backoff; a job that runs out of
//! attempts is revived by the operations maintenance.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rwa_domain::OrgId;
use rwa_flows::operations::{OperationsFlow, Progress};
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// How often a flow with batches on their way looks again.
const POLL: Duration = Duration::from_millis(250);

/// Runs operations steps.
pub(super) struct OperationsSyncHandler {
    pub(super) flow: Arc<OperationsFlow>,
}

fn org_id(job: &Job) -> Option<OrgId> {
    job.args.get("org_id")?.as_str()?.parse().ok()
}

#[async_trait]
impl Handler for OperationsSyncHandler {
    async fn run(&self, job: &Job) -> Outcome {
        let Some(org) = org_id(job) else {
            return Outcome::Discard(format!("args carry no org_id: {}", job.args));
        };
        match self.flow.step(org).await {
            Ok(Progress::Idle) => Outcome::Completed,
            Ok(Progress::Waiting { .. }) => Outcome::Snooze(POLL),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
