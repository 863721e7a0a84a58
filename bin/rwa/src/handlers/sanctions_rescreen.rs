//! `sanctions-rescreen` jobs (enqueued by every new list version, in the
//! load's transaction): every approved investor is screened again against
//! the current lists; a new hit raises `investor.sanctions_hit`.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_domain::sanctions::SanctionsRepository;
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// Runs the rescreen.
pub(super) struct SanctionsRescreenHandler {
    pub(super) sanctions: Arc<dyn SanctionsRepository>,
}

#[async_trait]
impl Handler for SanctionsRescreenHandler {
    async fn run(&self, job: &Job) -> Outcome {
        match self.sanctions.system_rescreen_approved().await {
            Ok(report) => {
                tracing::info!(
                    list = %job.args["list"],
                    screened = report.screened,
                    new_hits = report.hits,
                    "approved investors screened again"
                );
                Outcome::Completed
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
