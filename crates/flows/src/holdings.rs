//! What a token's compliance contract counts (an investor's balance over
//! all their wallets, the number of holders), read from the chain at the
//! latest block: the limits a mint is checked against until the indexer
//! keeps balances in the database.

use std::sync::Arc;

use async_trait::async_trait;
use rwa_chain::contracts::{self, Compliance};
use rwa_domain::chain::{BlockTag, ChainPort};
use rwa_domain::identity::investor_hash;
use rwa_domain::operation::{Holding, HoldingsView};
use rwa_domain::token::TokenDeployment;
use rwa_domain::{InvestorId, RepoError, RepoResult};

/// [`HoldingsView`] over the chain port.
pub struct ChainHoldings {
    chain: Arc<dyn ChainPort>,
}

impl ChainHoldings {
    /// Reads through `chain`.
    pub fn new(chain: Arc<dyn ChainPort>) -> Self {
        Self { chain }
    }
}

#[async_trait]
impl HoldingsView for ChainHoldings {
    async fn holding(
        &self,
        deployment: &TokenDeployment,
        investor: InvestorId,
    ) -> RepoResult<Holding> {
        let unavailable = |e: rwa_domain::chain::ChainError| RepoError::Unavailable(e.to_string());
        let balance = Compliance::investorBalanceCall(investor_hash(investor));
        let (balance, holders) = tokio::try_join!(
            contracts::view(
                &*self.chain,
                deployment.compliance,
                &balance,
                BlockTag::Latest
            ),
            contracts::view(
                &*self.chain,
                deployment.compliance,
                &Compliance::holderCountCall {},
                BlockTag::Latest
            ),
        )
        .map_err(unavailable)?;
        Ok(Holding {
            investor_balance: balance,
            holder_count: u64::try_from(holders).unwrap_or(u64::MAX),
        })
    }
}
