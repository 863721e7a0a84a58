//! `token-deployment` jobs: glue around the deployment flow
//! ([`rwa_flows::deployment`]), one [`TokenDeployer::step`] per run. While the
//! deployment's transactions are on their way the job snoozes (no attempt
//! used); a failure to reach the chain or the database is retried with
//! backoff; when the attempts run out the token is marked `failed` with the
//! last error, so an issuer never waits on a token nobody works on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rwa_domain::TokenId;
use rwa_flows::deployment::{Progress, TokenDeployer};
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// How often a waiting deployment looks at its transactions again.
const POLL: Duration = Duration::from_millis(500);

/// Runs deployment steps.
pub struct TokenDeploymentHandler {
    deployer: Arc<TokenDeployer>,
}

impl TokenDeploymentHandler {
    /// A handler over `deployer`.
    pub fn new(deployer: Arc<TokenDeployer>) -> Self {
        Self { deployer }
    }
}

fn token_id(job: &Job) -> Option<TokenId> {
    job.args.get("token_id")?.as_str()?.parse().ok()
}

#[async_trait]
impl Handler for TokenDeploymentHandler {
    async fn run(&self, job: &Job) -> Outcome {
        let Some(id) = token_id(job) else {
            return Outcome::Discard(format!("args carry no token_id: {}", job.args));
        };
        match self.deployer.step(id).await {
            Ok(Progress::Waiting { .. }) => Outcome::Snooze(POLL),
            Ok(Progress::Deployed(_) | Progress::Failed(_) | Progress::Finished(_)) => {
                Outcome::Completed
            }
            Err(e) if job.attempt >= job.max_attempts => {
                let reason = format!("gave up after {} attempts: {e}", job.attempt);
                match self.deployer.give_up(id, &reason).await {
                    Ok(_) => Outcome::Discard(reason),
                    // The token cannot even be marked: keep the job retryable
                    // by an operator rather than lose the failure.
                    Err(mark) => Outcome::Discard(format!("{reason}; marking failed: {mark}")),
                }
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
