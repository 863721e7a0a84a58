//! Issuer operations (`operations-sync` jobs): carries an organization's
//! accepted operations to the chain, mints and burns of one token many per
//! transaction (`batchMint`, `batchBurn`), everything else alone, each on
//! its kind's signer lane (a rule-set change to the token's compliance
//! contract, `setRules`, on the deploy lane that owns it).
//!
//! A step follows the open batches (mirroring each transaction's state onto
//! its operations: submitted, confirmed, back to submitted after a reorg,
//! settled or failed), then forms new batches from what is pending and
//! submits them. A batch is stored before its transaction is submitted,
//! under a key derived from the batch, so a crash between the two submits
//! nothing twice. A batch the token refuses as it stands (its gas estimate
//! reverts) is split so each operation goes alone; alone, it fails with the
//! decoded reason, and the others go on.

use std::sync::Arc;

use rwa_chain::contracts::{self, Compliance, SecurityToken};
use rwa_chain::txm::TxmError;
use rwa_domain::chain::{Address, Bytes, U256};
use rwa_domain::country::Country;
use rwa_domain::operation::{Operation, OperationBatch, OperationKind, OperationRepository};
use rwa_domain::rule_set::RuleChange;
use rwa_domain::token::{TokenRepository, TokenStatus};
use rwa_domain::tx::TxState;
use rwa_domain::{OrgId, RepoError};

use crate::submit::{Estimated, Submitter, observed};

/// Mints or burns per transaction. A mint to a new holder costs about 220k
/// gas (`docs/benchmarks.md`); with the 10 % margin a batch of 40 reserves
/// about 9.7M, so three share a 30M block (97 % of it reserved), where 50
/// (12.1M) fit only twice.
pub const MAX_BATCH: usize = 40;

/// Margin over a batch's gas estimate, in percent: the estimate is taken
/// against the latest block, and batches of the same token sent before it
/// may change which mints create a holder (a few thousand gas each).
const BATCH_ESTIMATE_MARGIN_PERCENT: u64 = 10;

/// Why a step could not run; every variant is worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum OperationsError {
    /// The transaction manager (chain, store or signer) failed.
    #[error(transparent)]
    Txm(#[from] TxmError),
    /// The database failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Where an organization's operations stand after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Work remains: `open` batches are on their way, or operations wait
    /// for something (a recovery's new wallet registration).
    Waiting {
        /// Batches not finished.
        open: usize,
    },
    /// Nothing pending and nothing open.
    Idle,
}

/// Carries operations to the chain.
pub struct OperationsFlow {
    sub: Submitter,
    tokens: Arc<dyn TokenRepository>,
    operations: Arc<dyn OperationRepository>,
}

impl OperationsFlow {
    /// A flow submitting through `sub`.
    pub fn new(
        sub: Submitter,
        tokens: Arc<dyn TokenRepository>,
        operations: Arc<dyn OperationRepository>,
    ) -> Self {
        Self {
            sub,
            tokens,
            operations,
        }
    }

    /// One step for `org`.
    pub async fn step(&self, org: OrgId) -> Result<Progress, OperationsError> {
        let mut open = 0;
        for batch in self.operations.system_open_batches(org).await? {
            open += usize::from(self.advance(&batch).await?);
        }
        for batch in self.operations.system_form_batches(org, MAX_BATCH).await? {
            open += usize::from(self.advance(&batch).await?);
        }
        if open == 0 && self.operations.system_finish_sync(org).await? {
            return Ok(Progress::Idle);
        }
        Ok(Progress::Waiting { open })
    }

    /// Submits the batch's transaction if it has none, and mirrors the
    /// transaction's state; answers whether the batch is still open.
    async fn advance(&self, batch: &OperationBatch) -> Result<bool, OperationsError> {
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
                    self.fail(batch, &why).await?;
                    return Ok(false);
                };
                let input = call_input(batch);
                // A rule-set change goes to the token's compliance contract.
                let to = match batch.kind {
                    OperationKind::RuleSetChange => deployment.compliance,
                    _ => deployment.address,
                };
                let sent = self.sub.submit_estimated(
                    key,
                    batch.kind.lane(),
                    to,
                    input,
                    BATCH_ESTIMATE_MARGIN_PERCENT,
                );
                match sent.await? {
                    Estimated::Sent(tx) => *tx,
                    Estimated::Refused { reason, data } => {
                        let why = describe_revert(&reason, &data);
                        tracing::warn!(batch = %batch.id, kind = %batch.kind, items = batch.items.len(), reason = %why, "operation batch refused");
                        self.fail(batch, &why).await?;
                        return Ok(false);
                    }
                }
            }
        };
        if batch.tx_id.is_none() {
            self.operations
                .system_record_batch_tx(batch.id, tx.id)
                .await?;
        }
        let (state, hash, block) = observed(&tx);
        // Mirrored only when something changed: a step looks at every open
        // batch, and most have not moved since the last one.
        let unchanged = batch.tx_id.is_some()
            && (batch.tx_state, batch.tx_hash, batch.block_number) == (state, hash, block);
        if !unchanged {
            self.operations
                .system_follow_batch(batch.id, tx.state, hash, block, tx.error.as_deref())
                .await?;
        }
        if tx.state.is_terminal() {
            metrics::counter!("rwa_operations_total", "kind" => batch.kind.as_str(), "state" => tx.state.as_str())
                .increment(batch.items.len() as u64);
        }
        Ok(!tx.state.is_terminal())
    }

    /// Fails a batch that cannot be sent (split when it has several items).
    async fn fail(&self, batch: &OperationBatch, why: &str) -> Result<(), OperationsError> {
        Ok(self
            .operations
            .system_follow_batch(batch.id, TxState::Failed, None, None, Some(why))
            .await?)
    }
}

/// A revert's reason, with the token's own errors decoded.
fn describe_revert(reason: &str, data: &Bytes) -> String {
    contracts::token_error(data).unwrap_or_else(|| reason.to_owned())
}

fn wallets(items: &[Operation]) -> Vec<Address> {
    items.iter().map(|o| o.wallet.unwrap_or_default()).collect()
}

fn amounts(items: &[Operation]) -> Vec<U256> {
    items
        .iter()
        .map(|o| o.amount.map(|a| a.get()).unwrap_or_default())
        .collect()
}

/// The token call carrying a batch.
pub fn call_input(batch: &OperationBatch) -> Bytes {
    let items = &batch.items;
    let first = &items[0];
    let wallet = first.wallet.unwrap_or_default();
    let amount = first.amount.map(|a| a.get());
    match batch.kind {
        OperationKind::Mint if items.len() == 1 => contracts::input(&SecurityToken::mintCall {
            to: wallet,
            amount: amount.unwrap_or_default(),
        }),
        OperationKind::Mint => contracts::input(&SecurityToken::batchMintCall {
            tos: wallets(items),
            amounts: amounts(items),
        }),
        OperationKind::Burn if items.len() == 1 => contracts::input(&SecurityToken::burnCall {
            from: wallet,
            amount: amount.unwrap_or_default(),
        }),
        OperationKind::Burn => contracts::input(&SecurityToken::batchBurnCall {
            froms: wallets(items),
            amounts: amounts(items),
        }),
        OperationKind::Freeze => match amount {
            Some(amount) => {
                contracts::input(&SecurityToken::freezePartialTokensCall { wallet, amount })
            }
            None => contracts::input(&SecurityToken::setAddressFrozenCall {
                wallet,
                frozen: true,
            }),
        },
        OperationKind::Unfreeze => match amount {
            Some(amount) => {
                contracts::input(&SecurityToken::unfreezePartialTokensCall { wallet, amount })
            }
            None => contracts::input(&SecurityToken::setAddressFrozenCall {
                wallet,
                frozen: false,
            }),
        },
        OperationKind::ForcedTransfer => contracts::input(&SecurityToken::forcedTransferCall {
            from: wallet,
            to: first.counterparty.unwrap_or_default(),
            amount: amount.unwrap_or_default(),
        }),
        OperationKind::Pause => contracts::input(&SecurityToken::pauseCall {}),
        OperationKind::Unpause => contracts::input(&SecurityToken::unpauseCall {}),
        OperationKind::Recovery => contracts::input(&SecurityToken::recoveryAddressCall {
            lostWallet: wallet,
            newWallet: first.counterparty.unwrap_or_default(),
        }),
        OperationKind::RuleSetChange => {
            let call = first
                .rule_change
                .as_ref()
                .map(RuleChange::call)
                .expect("a rule-set change carries its change");
            let codes = |cs: &[Country]| cs.iter().map(|c| c.numeric()).collect::<Vec<u16>>();
            contracts::input(&Compliance::setRulesCall {
                allowAdd: codes(&call.allow_add),
                allowRemove: codes(&call.allow_remove),
                blockAdd: codes(&call.block_add),
                blockRemove: codes(&call.block_remove),
                maxBalance: call.max_balance,
                maxHolders_: call.max_holders,
                lockup: call.lockup,
            })
        }
    }
}
