//! `test.mint` (registered only in test builds, `rwa_jobs::testing::ENABLED`):
//! registers a wallet in the token's identity registry and mints to it, each a
//! managed transaction with a key from the job, waiting for each to settle.
//! It lets the crash tests drive hundreds of mints through a real `rwa serve`
//! before the operations API (`POST /v1/tokens/{id}/mints`) exists; it is not
//! that API and no release build registers it.
//!
//! Args: `{token_id, wallet, investor_id (bytes32 hex), amount, key}`.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use async_trait::async_trait;
use rwa_chain::contracts::{self, IdentityRegistry, SecurityToken};
use rwa_domain::TokenId;
use rwa_domain::token::{TokenRepository, TokenStatus};
use rwa_domain::tx::{Lane, TxRequest, TxState};
use rwa_jobs::worker::Handler;
use rwa_jobs::{Job, Outcome};

use rwa_chain::txm::TxManager;

const POLL: Duration = Duration::from_millis(300);
const REGISTER_GAS: u64 = 250_000;
const MINT_GAS: u64 = 300_000;

pub(super) struct TestMint {
    pub(super) txm: Arc<TxManager>,
    pub(super) tokens: Arc<dyn TokenRepository>,
}

struct Args {
    token: TokenId,
    wallet: Address,
    investor: B256,
    amount: U256,
    key: String,
}

fn args(job: &Job) -> Option<Args> {
    let a = &job.args;
    Some(Args {
        token: a["token_id"].as_str()?.parse().ok()?,
        wallet: a["wallet"].as_str()?.parse().ok()?,
        investor: a["investor_id"].as_str()?.parse().ok()?,
        amount: U256::from_str_radix(a["amount"].as_str()?, 10).ok()?,
        key: a["key"].as_str()?.to_owned(),
    })
}

impl TestMint {
    /// Submits (or finds) a transaction and reports whether it settled;
    /// `Err` carries the outcome to return now.
    async fn settled(&self, request: TxRequest) -> Result<bool, Outcome> {
        let tx = self
            .txm
            .submit(&request)
            .await
            .map_err(|e| Outcome::Retry(e.to_string()))?;
        match tx.state {
            TxState::Settled => Ok(true),
            TxState::Failed => Err(Outcome::Discard(format!(
                "{} failed: {:?}",
                request.key, tx.error
            ))),
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl Handler for TestMint {
    async fn run(&self, job: &Job) -> Outcome {
        let Some(a) = args(job) else {
            return Outcome::Discard(format!("bad args {}", job.args));
        };
        let token = match self.tokens.system_get(a.token).await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(e.to_string()),
        };
        let Some(d) = token
            .deployment
            .filter(|_| token.status == TokenStatus::Deployed)
        else {
            return Outcome::Snooze(POLL);
        };
        let register = TxRequest {
            key: format!("test:{:#x}:register:{:#x}", d.identity_registry, a.wallet),
            lane: Lane::Admin,
            to: Some(d.identity_registry),
            value: U256::ZERO,
            input: contracts::input(&IdentityRegistry::registerIdentityCall {
                wallet: a.wallet,
                investorId: a.investor,
                country: 250,
                expiresAt: u64::MAX / 2,
            }),
            gas_limit: REGISTER_GAS,
        };
        match self.settled(register).await {
            Ok(true) => {}
            Ok(false) => return Outcome::Snooze(POLL),
            Err(outcome) => return outcome,
        }
        let mint = TxRequest {
            key: a.key,
            lane: Lane::Mint,
            to: Some(d.address),
            value: U256::ZERO,
            input: contracts::input(&SecurityToken::mintCall {
                to: a.wallet,
                amount: a.amount,
            }),
            gas_limit: MINT_GAS,
        };
        match self.settled(mint).await {
            Ok(true) => Outcome::Completed,
            Ok(false) => Outcome::Snooze(POLL),
            Err(outcome) => outcome,
        }
    }
}
