//! The compliance check of a transfer: one step, run by the
//! `compliance-check` job. The store takes the snapshot under the token's
//! lock, the domain's rules ([`rwa_domain::compliance::evaluate`]) give
//! every verdict, and the decision (`approved`, reserving the amount, or
//! `rejected` with every failing rule) is written in the same transaction,
//! so a repeated step after a crash finds the transfer decided and does
//! nothing.

use std::sync::Arc;

use rwa_domain::RepoResult;
use rwa_domain::transfer::{Transfer, TransferId, TransferRepository};

/// Checks transfers.
pub struct ComplianceFlow {
    transfers: Arc<dyn TransferRepository>,
}

impl ComplianceFlow {
    /// A flow over `transfers`.
    pub fn new(transfers: Arc<dyn TransferRepository>) -> Self {
        Self { transfers }
    }

    /// Checks the transfer if it is still `pending_compliance`; answers it
    /// as it stands afterwards.
    pub async fn step(&self, id: TransferId) -> RepoResult<Transfer> {
        self.transfers.system_check(id).await
    }
}
