//! Job handlers of the platform, one module per job kind, each thin glue
//! between a job and its flow's step in `rwa-flows`; [`Platform`] holds what
//! they share and registers them with a worker.

mod compliance_check;
mod expiry_sweep;
mod identity_sync;
mod operations_maintenance;
mod operations_sync;
mod sanctions_rescreen;
mod token_deployment;
mod transfers_settlement;

use std::sync::Arc;

use rwa_chain::txm::TxManager;
use rwa_domain::idempotency::IdempotencyStore;
use rwa_domain::identity::{EXPIRY_SWEEP_KIND, IdentityRepository, SYNC_KIND};
use rwa_domain::operation::{self, OperationRepository};
use rwa_domain::sanctions::{RESCREEN_KIND, SanctionsRepository};
use rwa_domain::settlement::{SETTLEMENT_KIND, SettlementRepository};
use rwa_domain::token::{DEPLOYMENT_KIND, TokenRepository};
use rwa_domain::transfer::CHECK_KIND;
use rwa_flows::compliance::ComplianceFlow;
use rwa_flows::deployment::TokenDeployer;
use rwa_flows::identity::IdentitySync;
use rwa_flows::operations::OperationsFlow;
use rwa_flows::settlement::SettlementFlow;
use rwa_jobs::scheduler::Periodic;
use rwa_jobs::worker::Worker;

pub use token_deployment::TokenDeploymentHandler;

/// The flows and chain-facing parts the handlers use.
#[derive(Clone)]
pub struct Platform {
    /// The token deployment flow.
    pub deployer: Arc<TokenDeployer>,
    /// The transaction manager.
    pub txm: Arc<TxManager>,
    /// Tokens.
    pub tokens: Arc<dyn TokenRepository>,
    /// The identity registration flow.
    pub identity: Arc<IdentitySync>,
    /// Identity registrations and expiries.
    pub identities: Arc<dyn IdentityRepository>,
    /// Sanctions lists and rescreening.
    pub sanctions: Arc<dyn SanctionsRepository>,
    /// The issuer operations flow.
    pub operations: Arc<OperationsFlow>,
    /// Issuer operations.
    pub operation_store: Arc<dyn OperationRepository>,
    /// Idempotency keys.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// The transfers' compliance check.
    pub compliance: Arc<ComplianceFlow>,
    /// The transfers' settlement flow.
    pub settlement: Arc<SettlementFlow>,
    /// Settlement batches.
    pub settlement_store: Arc<dyn SettlementRepository>,
}

impl Platform {
    /// Registers every handler with `worker`.
    pub fn register(&self, worker: &mut Worker) {
        worker.register(
            DEPLOYMENT_KIND,
            Arc::new(TokenDeploymentHandler::new(self.deployer.clone())),
        );
        worker.register(
            SYNC_KIND,
            Arc::new(identity_sync::IdentitySyncHandler {
                sync: self.identity.clone(),
            }),
        );
        worker.register(
            EXPIRY_SWEEP_KIND,
            Arc::new(expiry_sweep::ExpirySweepHandler {
                identities: self.identities.clone(),
            }),
        );
        worker.register(
            RESCREEN_KIND,
            Arc::new(sanctions_rescreen::SanctionsRescreenHandler {
                sanctions: self.sanctions.clone(),
            }),
        );
        worker.register(
            operation::SYNC_KIND,
            Arc::new(operations_sync::OperationsSyncHandler {
                flow: self.operations.clone(),
            }),
        );
        worker.register(
            SETTLEMENT_KIND,
            Arc::new(transfers_settlement::TransfersSettlementHandler {
                flow: self.settlement.clone(),
            }),
        );
        worker.register(
            CHECK_KIND,
            Arc::new(compliance_check::ComplianceCheckHandler {
                flow: self.compliance.clone(),
            }),
        );
        worker.register(
            operation::MAINTENANCE_KIND,
            Arc::new(operations_maintenance::OperationsMaintenanceHandler {
                operations: self.operation_store.clone(),
                idempotency: self.idempotency.clone(),
                settlement: self.settlement_store.clone(),
            }),
        );
    }
}

/// The platform's periodic jobs.
pub fn periodic() -> Vec<Periodic> {
    vec![
        Periodic::new(
            EXPIRY_SWEEP_KIND,
            expiry_sweep::SCHEDULE,
            rwa_store::expiry_sweep_job(),
        )
        .expect("the sweep's schedule parses"),
        Periodic::new(
            operation::MAINTENANCE_KIND,
            operations_maintenance::SCHEDULE,
            rwa_store::maintenance_job(),
        )
        .expect("the maintenance schedule parses"),
    ]
}
