//! `investor-expiry-sweep` jobs (every minute, from the scheduler): KYC
//! approvals and accreditations that ended become `expired` and not
//! accredited, each with its event and audit entry, and expired investors'
//! wallets are planned for removal from the identity registry.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_domain::identity::IdentityRepository;
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

/// When the sweep runs (cron with seconds, UTC): every minute.
pub(super) const SCHEDULE: &str = "0 * * * * *";

/// Runs the sweep.
pub(super) struct ExpirySweepHandler {
    pub(super) identities: Arc<dyn IdentityRepository>,
}

#[async_trait]
impl Handler for ExpirySweepHandler {
    async fn run(&self, _job: &Job) -> Outcome {
        match self.identities.system_sweep_expiries().await {
            Ok(report) => {
                if report.kyc_expired + report.accreditation_lapsed > 0 {
                    tracing::info!(
                        kyc_expired = report.kyc_expired,
                        accreditation_lapsed = report.accreditation_lapsed,
                        "expiry sweep"
                    );
                }
                Outcome::Completed
            }
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}
