//! Job handlers of the platform, one module per job kind, each thin glue
//! between a job and its flow's step in `rwa-flows`; [`Platform`] holds what
//! they share and registers them with a worker.

mod test_mint;
mod token_deployment;

use std::sync::Arc;

use rwa_chain::txm::TxManager;
use rwa_domain::token::{DEPLOYMENT_KIND, TokenRepository};
use rwa_flows::deployment::TokenDeployer;
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
}

impl Platform {
    /// Registers every handler with `worker`.
    pub fn register(&self, worker: &mut Worker) {
        worker.register(
            DEPLOYMENT_KIND,
            Arc::new(TokenDeploymentHandler::new(self.deployer.clone())),
        );
        if rwa_jobs::testing::ENABLED {
            worker.register(
                "test.mint",
                Arc::new(test_mint::TestMint {
                    txm: self.txm.clone(),
                    tokens: self.tokens.clone(),
                }),
            );
        }
    }
}
