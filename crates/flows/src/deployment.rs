//! Token deployment (`token-deployment` jobs), one step at a time: the
//! organization's identity registry (first token only), the token's compliance
//! contract, the token, the compliance binding and the platform lanes' roles —
//! each a managed transaction on the deploy lane with an idempotency key
//! derived from the token (or the organization, for the registry), so a step
//! that runs twice, or after a crash, submits nothing new.
//!
//! Every transaction is submitted in the first step: contract addresses follow
//! from the deploy lane's address and the nonce the transaction manager
//! allocated before broadcast (CREATE), so the token can name its compliance
//! contract before either is mined, and the whole suite lands in one or two
//! blocks instead of one round of confirmations per contract. The predicted
//! addresses are checked against the receipts before the token is marked
//! deployed. Calls to contracts that do not exist yet cannot be estimated, so
//! they carry fixed gas limits, measured with a wide margin
//! (`crates/chain/examples/contract_gas.rs`, `docs/benchmarks.md`; the margin
//! is checked by `bin/rwa/tests/token_deployment.rs`).
//!
//! The token is `deployed` only when every transaction is `settled`; any
//! failed transaction fails the token with its decoded reason.

use std::sync::Arc;

use rwa_chain::contracts::{self, Compliance, ComplianceParams, roles};
use rwa_chain::txm::{TxManager, TxmError};
use rwa_domain::chain::{ChainPort, U256};
use rwa_domain::token::{ComplianceRules, Token, TokenDeployment, TokenRepository, TokenStatus};
use rwa_domain::tx::{Lane, TxState, TxStore};
use rwa_domain::{RepoError, TokenId};

use crate::registry;
use crate::submit::{Step, Submitter};

pub use crate::submit::GRANT_ROLE_GAS;
/// Gas limit of `bindToken` (about 47k measured).
pub const BIND_TOKEN_GAS: u64 = 120_000;

/// The roles the platform's lanes receive on every token.
pub const TOKEN_ROLES: [(&str, Lane); 5] = [
    (roles::SUPPLY, Lane::Mint),
    (roles::TRANSFER_MANAGER, Lane::Settlement),
    (roles::FREEZE, Lane::Admin),
    (roles::PAUSER, Lane::Admin),
    (roles::RECOVERY, Lane::Admin),
];

/// Why a step could not run; every variant is worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The transaction manager (chain, store or signer) failed.
    #[error(transparent)]
    Txm(#[from] TxmError),
    /// The database failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where a deployment stands after a step.
#[derive(Debug)]
pub enum Progress {
    /// Transactions are on their way; `open` of them are not settled yet.
    Waiting {
        /// Transactions not yet settled.
        open: usize,
    },
    /// The token was already deployed or failed (a repeated job).
    Finished(Token),
    /// Every transaction settled: the token is now `deployed`.
    Deployed(Token),
    /// A transaction failed: the token is now `failed`.
    Failed(Token),
}

/// Deploys tokens through the transaction manager.
pub struct TokenDeployer {
    sub: Submitter,
    tokens: Arc<dyn TokenRepository>,
}

impl TokenDeployer {
    /// A deployer submitting through `txm`; `txs` is the manager's store, read
    /// to skip estimating transactions that already exist.
    pub fn new(
        txm: Arc<TxManager>,
        txs: Arc<dyn TxStore>,
        chain: Arc<dyn ChainPort>,
        tokens: Arc<dyn TokenRepository>,
    ) -> Self {
        Self {
            sub: Submitter { txm, txs, chain },
            tokens,
        }
    }

    /// Submits whatever is missing, then reports progress; marks the token
    /// deployed or failed once every transaction is final.
    pub async fn step(&self, id: TokenId) -> Result<Progress, DeployError> {
        let token = self.tokens.system_get(id).await?;
        if token.status != TokenStatus::PendingDeployment {
            return Ok(Progress::Finished(token));
        }
        let chain_id = self.sub.txm.chain_id();
        let steps = self.submit_all(&token, chain_id).await?;
        if let Some(failed) = steps.iter().find(|s| s.tx.state == TxState::Failed) {
            let reason = format!(
                "{} transaction {} failed: {}",
                failed.name,
                failed.tx.id,
                failed.tx.error.as_deref().unwrap_or("reverted")
            );
            tracing::warn!(token = %id, %reason, "token deployment failed");
            return Ok(Progress::Failed(
                self.tokens.system_mark_failed(id, &reason).await?,
            ));
        }
        let open = steps
            .iter()
            .filter(|s| s.tx.state != TxState::Settled)
            .count();
        if open > 0 {
            return Ok(Progress::Waiting { open });
        }
        for s in &steps {
            let created = s.tx.inclusion.as_ref().and_then(|i| i.contract_address);
            if s.creates.is_some() && created != s.creates {
                let reason = format!(
                    "{} transaction {} created {created:?}, expected {:?}",
                    s.name, s.tx.id, s.creates
                );
                return Ok(Progress::Failed(
                    self.tokens.system_mark_failed(id, &reason).await?,
                ));
            }
        }
        let registry = steps
            .iter()
            .find(|s| s.name == "identity registry")
            .and_then(|s| Some((s.creates?, s.tx.inclusion.as_ref()?.block_number)));
        let registry = match registry {
            Some((address, block)) => {
                self.tokens
                    .system_record_identity_registry(token.org_id, chain_id, address, block)
                    .await?
            }
            None => self
                .tokens
                .system_identity_registry(token.org_id, chain_id)
                .await?
                .ok_or_else(|| RepoError::Internal("identity registry vanished".into()))?,
        };
        let created = |name: &str| {
            steps
                .iter()
                .find(|s| s.name == name)
                .expect("every deployment has its steps")
        };
        let token_step = created("token");
        let inclusion = token_step
            .tx
            .inclusion
            .as_ref()
            .expect("a settled transaction has its inclusion");
        let deployment = TokenDeployment {
            chain_id,
            address: token_step.creates.expect("the token step creates"),
            deploy_tx_hash: inclusion.hash,
            identity_registry: registry,
            compliance: created("compliance").creates.expect("creates"),
            block_number: inclusion.block_number,
        };
        let token = self.tokens.system_mark_deployed(id, &deployment).await?;
        metrics::counter!("rwa_tokens_deployed_total").increment(1);
        tracing::info!(token = %id, address = %deployment.address, "token deployed");
        Ok(Progress::Deployed(token))
    }

    /// Marks the token failed (the job ran out of attempts).
    pub async fn give_up(&self, id: TokenId, reason: &str) -> Result<Token, DeployError> {
        Ok(self.tokens.system_mark_failed(id, reason).await?)
    }

    async fn submit_all(&self, token: &Token, chain_id: u64) -> Result<Vec<Step>, DeployError> {
        let sub = &self.sub;
        let deployer = sub.txm.address(Lane::Deploy)?;
        let mut steps = Vec::new();
        let registry = match self
            .tokens
            .system_identity_registry(token.org_id, chain_id)
            .await?
        {
            Some(address) => address,
            None => {
                steps = registry::submit(sub, token.org_id).await?;
                steps[0].creates.expect("deployments create")
            }
        };
        let compliance = sub
            .deploy(
                "compliance",
                format!("token:{}:deploy-compliance", token.id),
                contracts::compliance_init_code(deployer, registry, &params(&token.compliance)),
            )
            .await?;
        let compliance_address = compliance.creates.expect("deployments create");
        steps.push(compliance);
        let token_step = sub
            .deploy(
                "token",
                format!("token:{}:deploy-token", token.id),
                contracts::security_token_init_code(
                    &token.name,
                    &token.symbol,
                    token.decimals,
                    registry,
                    compliance_address,
                    deployer,
                ),
            )
            .await?;
        let token_address = token_step.creates.expect("deployments create");
        steps.push(token_step);
        steps.push(
            sub.call(
                "compliance binding",
                format!("token:{}:bind-compliance", token.id),
                Lane::Deploy,
                compliance_address,
                contracts::input(&Compliance::bindTokenCall {
                    token_: token_address,
                }),
                BIND_TOKEN_GAS,
            )
            .await?,
        );
        for (role, lane) in TOKEN_ROLES {
            let account = sub.txm.address(lane)?;
            steps.push(
                sub.grant(
                    "role grant",
                    format!("token:{}:grant:{role}:{account:#x}", token.id),
                    token_address,
                    role,
                    account,
                )
                .await?,
            );
        }
        Ok(steps)
    }
}

/// Constructor arguments of a token's compliance contract; "no limit" is 0 on-chain.
pub fn params(rules: &ComplianceRules) -> ComplianceParams {
    ComplianceParams {
        allow_countries: rules.country_allow.iter().map(|c| c.numeric()).collect(),
        block_countries: rules.country_block.iter().map(|c| c.numeric()).collect(),
        max_balance_per_investor: rules
            .max_balance_per_investor
            .map(|a| a.get())
            .unwrap_or_default(),
        max_holders: U256::from(rules.max_holders.unwrap_or_default()),
        lockup_seconds: rules.lockup_seconds,
    }
}
