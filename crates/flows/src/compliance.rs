//! The compliance check of a transfer: one step, run by the
//! `compliance-check` job. The rules ([`rwa_domain::compliance::evaluate`])
//! are evaluated over a snapshot first; when they all pass and an external
//! risk engine is configured, it is asked (outside any transaction: it may
//! take seconds). The decision is then written by the store, which takes
//! the snapshot again under the token's lock and evaluates the rules again
//! in the transaction that records it, so an approval reserves its amount
//! against what is true at that moment; an engine that cannot answer sends
//! the transfer to manual review, never to an approval. A repeated step
//! after a crash finds the transfer decided and does nothing.

use std::sync::Arc;

use rwa_domain::RepoResult;
use rwa_domain::compliance::{RiskEngine, RiskRequest, all_passed};
use rwa_domain::transfer::{Transfer, TransferId, TransferRepository};

/// Checks transfers.
pub struct ComplianceFlow {
    transfers: Arc<dyn TransferRepository>,
    engine: Option<Arc<dyn RiskEngine>>,
}

impl ComplianceFlow {
    /// A flow over `transfers`, asking `engine` (if any) after the rules.
    pub fn new(
        transfers: Arc<dyn TransferRepository>,
        engine: Option<Arc<dyn RiskEngine>>,
    ) -> Self {
        Self { transfers, engine }
    }

    /// Checks the transfer if it is still `pending_compliance`; answers it
    /// as it stands afterwards.
    pub async fn step(&self, id: TransferId) -> RepoResult<Transfer> {
        let Some(engine) = &self.engine else {
            return self.transfers.system_check(id, None).await;
        };
        let Some((t, record)) = self.transfers.system_precheck(id).await? else {
            return self.transfers.system_check(id, None).await;
        };
        if !all_passed(&record.verdicts) {
            return self.transfers.system_check(id, None).await;
        }
        let request = RiskRequest {
            transfer_id: t.id,
            org_id: t.org_id,
            token_id: t.token_id,
            from_wallet: t.from_wallet,
            to_wallet: t.to_wallet,
            from_investor_id: t.from_investor_id,
            to_investor_id: t.to_investor_id,
            from_country: record.snapshot.from.country,
            to_country: record.snapshot.to.country,
            amount: t.amount,
        };
        let outcome = engine.assess(&request).await;
        self.transfers.system_check(id, Some(outcome)).await
    }
}
