//! `compliance-check` jobs: glue around the compliance flow
//! ([`rwa_flows::compliance`]), one step per job for the transfer it names.
//! The step only reads and writes the database, so a failure is an outage:
//! retried with backoff.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_domain::RepoError;
use rwa_flows::compliance::ComplianceFlow;
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// Runs compliance checks.
pub(super) struct ComplianceCheckHandler {
    pub(super) flow: Arc<ComplianceFlow>,
}

#[async_trait]
impl Handler for ComplianceCheckHandler {
    async fn run(&self, job: &Job) -> Outcome {
        let Some(id) = job
            .args
            .get("transfer_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
        else {
            return Outcome::Discard(format!("args carry no transfer_id: {}", job.args));
        };
        match self.flow.step(id).await {
            Ok(_) => Outcome::Completed,
            Err(RepoError::NotFound) => Outcome::Discard(format!("no transfer {id}")),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
