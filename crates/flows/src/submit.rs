//! Submitting a flow's transactions through the transaction manager, each
//! under an idempotency key: a step that runs again finds the transaction it
//! submitted before instead of sending another.

use std::sync::Arc;

use rwa_chain::contracts;
use rwa_chain::txm::{TxManager, TxmError};
use rwa_domain::chain::{Address, B256, Bytes, CallRequest, ChainError, ChainPort, U256};
use rwa_domain::tx::{Lane, ManagedTx, TxRequest, TxState, TxStore};

/// Margin over a gas estimate, in percent.
pub const ESTIMATE_MARGIN_PERCENT: u64 = 20;

/// Gas limit of `grantRole` (about 52k measured; the margin absorbs a cold
/// access list and future OpenZeppelin changes).
pub const GRANT_ROLE_GAS: u64 = 120_000;

/// One transaction of a flow, with the contract it creates, if any.
pub struct Step {
    /// What it is, for people.
    pub name: &'static str,
    /// The managed transaction.
    pub tx: ManagedTx,
    /// The contract it creates (a deployment's address follows from its
    /// sender and nonce).
    pub creates: Option<Address>,
}

/// What [`Submitter::submit_estimated`] came to.
pub enum Estimated {
    /// Submitted.
    Sent(Box<ManagedTx>),
    /// The contract refuses the call as it stands (its gas estimate
    /// reverts): no transaction would do better. The revert's reason and
    /// data, for the flow to decode and split its batch.
    Refused {
        /// The node's reason.
        reason: String,
        /// The revert data.
        data: Bytes,
    },
}

/// A batch's transaction as the batch mirrors it: its state, its hash (the
/// included attempt's, else the last one's) and its block.
pub fn observed(tx: &ManagedTx) -> (TxState, Option<B256>, Option<u64>) {
    let hash = tx
        .inclusion
        .as_ref()
        .map(|i| i.hash)
        .or(tx.attempts.last().map(|a| a.hash));
    (
        tx.state,
        hash,
        tx.inclusion.as_ref().map(|i| i.block_number),
    )
}

/// Submits (or finds) managed transactions.
#[derive(Clone)]
pub struct Submitter {
    /// The transaction manager.
    pub txm: Arc<TxManager>,
    /// Its store, read to find transactions submitted before.
    pub txs: Arc<dyn TxStore>,
    /// The chain, for estimates.
    pub chain: Arc<dyn ChainPort>,
}

impl Submitter {
    /// The transaction submitted under `key`, if any.
    pub async fn existing(&self, key: &str) -> Result<Option<ManagedTx>, TxmError> {
        Ok(self.txs.find_by_key(key).await?)
    }

    /// The gas `input` takes from `lane`'s address to `to` (a deployment
    /// when `None`), with [`ESTIMATE_MARGIN_PERCENT`] on top.
    pub async fn estimate(
        &self,
        lane: Lane,
        to: Option<Address>,
        input: &Bytes,
    ) -> Result<u64, TxmError> {
        self.estimate_with_margin(lane, to, input, ESTIMATE_MARGIN_PERCENT)
            .await
    }

    /// Submits `input` to `to` from `lane` under `key`, its gas limit the
    /// estimate with `margin_percent` on top; a call the contract refuses
    /// as it stands is answered [`Estimated::Refused`], not sent.
    pub async fn submit_estimated(
        &self,
        key: String,
        lane: Lane,
        to: Address,
        input: Bytes,
        margin_percent: u64,
    ) -> Result<Estimated, TxmError> {
        let estimate = self.estimate_with_margin(lane, Some(to), &input, margin_percent);
        let gas_limit = match estimate.await {
            Ok(gas) => gas,
            Err(TxmError::Chain(ChainError::Reverted { reason, data })) => {
                return Ok(Estimated::Refused { reason, data });
            }
            Err(e) => return Err(e),
        };
        let request = TxRequest {
            key,
            lane,
            to: Some(to),
            value: U256::ZERO,
            input,
            gas_limit,
        };
        Ok(Estimated::Sent(Box::new(self.txm.submit(&request).await?)))
    }

    /// [`Self::estimate`] with `margin_percent` on top instead.
    pub async fn estimate_with_margin(
        &self,
        lane: Lane,
        to: Option<Address>,
        input: &Bytes,
        margin_percent: u64,
    ) -> Result<u64, TxmError> {
        let from = self.txm.address(lane)?;
        let estimate = self
            .chain
            .estimate_gas(&CallRequest {
                from: Some(from),
                to,
                input: input.clone(),
                value: U256::ZERO,
                gas: None,
            })
            .await?;
        Ok(estimate + estimate * margin_percent / 100)
    }

    /// Submits (or finds) a deployment on the deploy lane; its address
    /// follows from its nonce.
    pub async fn deploy(
        &self,
        name: &'static str,
        key: String,
        init_code: Bytes,
    ) -> Result<Step, TxmError> {
        let tx = match self.existing(&key).await? {
            Some(tx) => tx,
            None => {
                let gas_limit = self.estimate(Lane::Deploy, None, &init_code).await?;
                self.txm
                    .submit(&TxRequest {
                        key,
                        lane: Lane::Deploy,
                        to: None,
                        value: U256::ZERO,
                        input: init_code,
                        gas_limit,
                    })
                    .await?
            }
        };
        let creates = Some(contracts::create_address(tx.from, tx.nonce));
        Ok(Step { name, tx, creates })
    }

    /// Submits (or finds) a `grantRole` on the deploy lane.
    pub async fn grant(
        &self,
        name: &'static str,
        key: String,
        contract: Address,
        role: &str,
        account: Address,
    ) -> Result<Step, TxmError> {
        let input = contracts::grant_role_input(contracts::role(role), account);
        self.call(name, key, Lane::Deploy, contract, input, GRANT_ROLE_GAS)
            .await
    }

    /// Submits (or finds) a call with a fixed gas limit.
    pub async fn call(
        &self,
        name: &'static str,
        key: String,
        lane: Lane,
        to: Address,
        input: Bytes,
        gas_limit: u64,
    ) -> Result<Step, TxmError> {
        let tx = match self.existing(&key).await? {
            Some(tx) => tx,
            None => {
                self.txm
                    .submit(&TxRequest {
                        key,
                        lane,
                        to: Some(to),
                        value: U256::ZERO,
                        input,
                        gas_limit,
                    })
                    .await?
            }
        };
        Ok(Step {
            name,
            tx,
            creates: None,
        })
    }
}
