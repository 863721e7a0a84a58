//! Settlement of approved transfers (`transfers-settlement` jobs, on the
//! `settlement` queue): an organization's approved transfers of one token
//! go out together as one `batchAgentTransfer` (one alone as
//! `agentTransfer`) on the settlement lane.
//!
//! A step follows the open batches (mirroring each transaction onto its
//! transfers), then has the store re-check the approved transfers against
//! the current state (a transfer that became invalid is rejected with the
//! new verdicts) and group the rest into batches. Before a new batch is
//! submitted, each transfer is asked of the token itself (`canTransfer` at
//! the latest block); one it refuses is rejected with the contract's reason
//! and leaves the batch. A batch the token still refuses as a whole (its
//! gas estimate reverts) is split so each transfer goes alone, and alone
//! the one that reverts is `failed` with its decoded reason. A batch is
//! stored before its transaction is submitted, under a key derived from the
//! batch, so a crash in between sends nothing twice.

use std::sync::Arc;

use rwa_chain::contracts::{self, ReasonCode, SecurityToken};
use rwa_chain::txm::TxmError;
use rwa_domain::chain::{Address, BlockTag, Bytes, ChainError, ChainPort};
use rwa_domain::settlement::{SettlementRepository, TransferBatch};
use rwa_domain::token::{TokenRepository, TokenStatus};
use rwa_domain::transfer::Transfer;
use rwa_domain::tx::{Lane, TxState};
use rwa_domain::{OrgId, RepoError};

use crate::submit::{Estimated, Submitter, observed};

/// Transfers per transaction. An agent transfer to a new holder costs
/// about 115k gas inside a batch; with the 10 % margin a batch of 100
/// reserves about 12.7M, so two share a 30M block.
pub const MAX_BATCH: usize = 100;

/// Margin over a batch's gas estimate, in percent (batches of the same
/// token sent just before may change which transfers create a holder).
const BATCH_ESTIMATE_MARGIN_PERCENT: u64 = 10;

/// Why a step could not run; every variant is worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum SettlementError {
    /// The transaction manager (chain, store or signer) failed.
    #[error(transparent)]
    Txm(#[from] TxmError),
    /// The chain could not be read.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The database failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where an organization's settlement stands after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// `open` batches are on their way.
    Waiting {
        /// Batches not finished.
        open: usize,
    },
    /// Nothing approved and nothing open.
    Idle,
}

/// Carries approved transfers to the chain.
pub struct SettlementFlow {
    sub: Submitter,
    chain: Arc<dyn ChainPort>,
    tokens: Arc<dyn TokenRepository>,
    settlement: Arc<dyn SettlementRepository>,
}

impl SettlementFlow {
    /// A flow submitting through `sub` and asking the token through `chain`.
    pub fn new(
        sub: Submitter,
        chain: Arc<dyn ChainPort>,
        tokens: Arc<dyn TokenRepository>,
        settlement: Arc<dyn SettlementRepository>,
    ) -> Self {
        Self {
            sub,
            chain,
            tokens,
            settlement,
        }
    }

    /// One step for `org`.
    pub async fn step(&self, org: OrgId) -> Result<Progress, SettlementError> {
        let mut open = 0;
        for batch in self.settlement.system_open_batches(org).await? {
            open += usize::from(self.advance(batch).await?);
        }
        for batch in self.settlement.system_form_batches(org, MAX_BATCH).await? {
            open += usize::from(self.advance(batch).await?);
        }
        if open == 0 && self.settlement.system_finish_sync(org).await? {
            return Ok(Progress::Idle);
        }
        Ok(Progress::Waiting { open })
    }

    /// Submits the batch's transaction if it has none, and mirrors the
    /// transaction's state; answers whether the batch is still open.
    async fn advance(&self, mut batch: TransferBatch) -> Result<bool, SettlementError> {
        let key = batch.tx_key();
        let tx = match self.sub.existing(&key).await? {
            Some(tx) => tx,
            None => {
                let token = self.tokens.system_get(batch.token_id).await?;
                let Some(deployment) = token
                    .deployment
                    .filter(|_| token.status == TokenStatus::Deployed)
                else {
                    let why = format!("token {} is not deployed", batch.token_id);
                    self.fail(&batch, &why).await?;
                    return Ok(false);
                };
                // Asked of the token itself before anything is sent: what it
                // refuses now leaves the batch, rejected with its reason.
                let mut kept = Vec::with_capacity(batch.items.len());
                for t in std::mem::take(&mut batch.items) {
                    match self.can_transfer(deployment.address, &t).await? {
                        None => kept.push(t),
                        Some(reason) => {
                            self.settlement
                                .system_refuse_item(batch.id, t.id, &reason)
                                .await?;
                        }
                    }
                }
                batch.items = kept;
                if batch.items.is_empty() {
                    self.fail(&batch, "every transfer was refused by canTransfer")
                        .await?;
                    return Ok(false);
                }
                let input = call_input(&batch.items);
                let sent = self.sub.submit_estimated(
                    key,
                    Lane::Settlement,
                    deployment.address,
                    input,
                    BATCH_ESTIMATE_MARGIN_PERCENT,
                );
                match sent.await? {
                    Estimated::Sent(tx) => *tx,
                    Estimated::Refused { reason, data } => {
                        let why = contracts::token_error(&data).unwrap_or(reason);
                        tracing::warn!(batch = %batch.id, items = batch.items.len(), reason = %why, "transfer batch refused");
                        self.fail(&batch, &why).await?;
                        return Ok(false);
                    }
                }
            }
        };
        if batch.tx_id.is_none() {
            self.settlement
                .system_record_batch_tx(batch.id, tx.id)
                .await?;
        }
        let (state, hash, block) = observed(&tx);
        let unchanged = batch.tx_id.is_some()
            && (batch.tx_state, batch.tx_hash, batch.block_number) == (state, hash, block);
        if !unchanged {
            self.settlement
                .system_follow_batch(batch.id, tx.state, hash, block, tx.error.as_deref())
                .await?;
        }
        if tx.state.is_terminal() {
            metrics::counter!("rwa_transfers_settled_total", "state" => tx.state.as_str())
                .increment(batch.items.len() as u64);
        }
        Ok(!tx.state.is_terminal())
    }

    /// The token's refusal of `t` at the latest block, named, if it refuses.
    async fn can_transfer(
        &self,
        token: Address,
        t: &Transfer,
    ) -> Result<Option<String>, SettlementError> {
        let call = SecurityToken::canTransferCall {
            from: t.from_wallet,
            to: t.to_wallet,
            amount: t.amount.get(),
        };
        let answer = contracts::view(&*self.chain, token, &call, BlockTag::Latest).await?;
        if answer.ok {
            return Ok(None);
        }
        Ok(Some(match ReasonCode::from_u8(answer.reason) {
            Some(code) => format!("canTransfer refused it: {code}"),
            None => format!("canTransfer refused it: reason {}", answer.reason),
        }))
    }

    /// Fails a batch that cannot be sent (split when it has several items).
    async fn fail(&self, batch: &TransferBatch, why: &str) -> Result<(), SettlementError> {
        Ok(self
            .settlement
            .system_follow_batch(batch.id, TxState::Failed, None, None, Some(why))
            .await?)
    }
}

/// The token call carrying a batch's transfers.
pub fn call_input(items: &[Transfer]) -> Bytes {
    if let [t] = items {
        return contracts::input(&SecurityToken::agentTransferCall {
            from: t.from_wallet,
            to: t.to_wallet,
            amount: t.amount.get(),
        });
    }
    contracts::input(&SecurityToken::batchAgentTransferCall {
        froms: items.iter().map(|t| t.from_wallet).collect(),
        tos: items.iter().map(|t| t.to_wallet).collect(),
        amounts: items.iter().map(|t| t.amount.get()).collect(),
    })
}
