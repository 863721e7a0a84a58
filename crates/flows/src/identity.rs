//! On-chain identity (`identity-sync` jobs): carries an organization's
//! pending registry changes (recorded by the investor changes that caused
//! them, see `rwa_domain::identity`) to its identity registry, many wallets
//! per transaction on the admin lane.
//!
//! A step: make sure the registry exists (deploying it if this is the
//! organization's first need of it), follow the open batches (a settled
//! batch's wallets become `registered` or `removed`; a failed one's are
//! carried again alone, or marked `failed` when they were alone), then form
//! new batches from what is pending and submit them. A batch is stored before
//! its transaction is submitted, under a key derived from the batch, so a
//! crash between the two submits nothing twice. The step reports whether
//! work remains; the sync ends only when nothing is pending and no batch is
//! open.

use std::sync::Arc;

use rwa_chain::contracts::{self, IdentityRegistry};
use rwa_chain::txm::TxmError;
use rwa_domain::chain::{Address, Bytes};
use rwa_domain::identity::{IdentityAction, IdentityBatch, IdentityRepository, investor_hash};
use rwa_domain::token::TokenRepository;
use rwa_domain::tx::{Lane, TxState};
use rwa_domain::{OrgId, RepoError};

use crate::registry::{self, Registry};
use crate::submit::{Estimated, Submitter};

/// Wallets per batch transaction. Blocks are packed by gas limit: at 48.8k
/// gas a wallet (`docs/benchmarks.md`, contract gas) and a 10 % margin, a
/// batch of 110 reserves about 5.9M, so five share a 30M block (98 % of it
/// reserved, 89 % used) where batches of 200 (10.8M) fit only twice (72 %).
/// Smaller batches pay the 21k transaction base cost more often.
pub const MAX_BATCH: usize = 110;

/// Margin over a batch's gas estimate, in percent. A registry call's cost
/// does not depend on other pending transactions (each wallet's slots are
/// its own), so the margin only absorbs estimator rounding; blocks are
/// packed by gas limit, so every point of margin is block space lost.
const BATCH_ESTIMATE_MARGIN_PERCENT: u64 = 10;

/// Why a step could not run; every variant is worth retrying later.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The transaction manager (chain, store or signer) failed.
    #[error(transparent)]
    Txm(#[from] TxmError),
    /// The database failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
    /// The organization's registry could not be deployed.
    #[error("identity registry: {0}")]
    Registry(String),
}

/// Where an organization's sync stands after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncProgress {
    /// Work remains: `open` batches are on their way (or the registry is).
    Waiting {
        /// Batches not finished.
        open: usize,
    },
    /// Nothing pending and nothing open: the sync is over.
    Idle,
}

/// Carries registry changes to the chain.
pub struct IdentitySync {
    sub: Submitter,
    tokens: Arc<dyn TokenRepository>,
    identities: Arc<dyn IdentityRepository>,
}

impl IdentitySync {
    /// A sync submitting through `sub`.
    pub fn new(
        sub: Submitter,
        tokens: Arc<dyn TokenRepository>,
        identities: Arc<dyn IdentityRepository>,
    ) -> Self {
        Self {
            sub,
            tokens,
            identities,
        }
    }

    /// One step for `org`.
    pub async fn step(&self, org: OrgId) -> Result<SyncProgress, IdentityError> {
        let registry = match registry::ensure(&self.sub, &*self.tokens, org).await? {
            Registry::Ready(address) => address,
            Registry::Deploying => return Ok(SyncProgress::Waiting { open: 1 }),
            Registry::Failed(reason) => return Err(IdentityError::Registry(reason)),
        };
        let mut open = 0;
        for batch in self.identities.system_open_batches(org).await? {
            open += usize::from(self.advance(&batch, registry).await?);
        }
        for batch in self.identities.system_form_batches(org, MAX_BATCH).await? {
            open += usize::from(self.advance(&batch, registry).await?);
        }
        if open == 0 && self.identities.system_finish_sync(org).await? {
            return Ok(SyncProgress::Idle);
        }
        Ok(SyncProgress::Waiting { open })
    }

    /// Submits the batch's transaction if it has none, and settles or fails
    /// the batch when the transaction is final; answers whether it is open.
    async fn advance(
        &self,
        batch: &IdentityBatch,
        registry: Address,
    ) -> Result<bool, IdentityError> {
        let key = batch.tx_key();
        let tx = match self.sub.existing(&key).await? {
            Some(tx) => tx,
            None => {
                let input = call_input(batch);
                let sent = self.sub.submit_estimated(
                    key,
                    Lane::Admin,
                    registry,
                    input,
                    BATCH_ESTIMATE_MARGIN_PERCENT,
                );
                match sent.await? {
                    Estimated::Sent(tx) => *tx,
                    // The registry refuses it as it stands: no transaction
                    // would do better.
                    Estimated::Refused { reason, data } => {
                        let why = describe_revert(&reason, &data);
                        tracing::warn!(batch = %batch.id, reason = %why, "identity batch refused");
                        self.identities.system_fail_batch(batch.id, &why).await?;
                        return Ok(false);
                    }
                }
            }
        };
        if batch.tx_id.is_none() {
            self.identities
                .system_record_batch_tx(batch.id, tx.id)
                .await?;
        }
        match tx.state {
            TxState::Settled => {
                self.identities.system_settle_batch(batch.id).await?;
                metrics::counter!("rwa_identity_wallets_total", "action" => batch.action.as_str())
                    .increment(batch.items.len() as u64);
                Ok(false)
            }
            TxState::Failed => {
                let why = tx.error.as_deref().unwrap_or("reverted");
                tracing::warn!(batch = %batch.id, tx = %tx.id, reason = %why, "identity batch failed");
                self.identities.system_fail_batch(batch.id, why).await?;
                Ok(false)
            }
            _ => Ok(true),
        }
    }
}

/// A revert's reason, with the registry's own errors decoded.
fn describe_revert(reason: &str, data: &Bytes) -> String {
    contracts::registry_error(data).unwrap_or_else(|| reason.to_owned())
}

/// The registry call carrying a batch.
pub fn call_input(batch: &IdentityBatch) -> Bytes {
    let wallets: Vec<Address> = batch.items.iter().map(|i| i.address).collect();
    match batch.action {
        IdentityAction::Register => {
            contracts::input(&IdentityRegistry::batchRegisterIdentityCall {
                wallets,
                investorIds: batch
                    .items
                    .iter()
                    .map(|i| investor_hash(i.entry.investor_id))
                    .collect(),
                countries: batch.items.iter().map(|i| i.entry.country).collect(),
                expiries: batch.items.iter().map(|i| i.entry.expires_at).collect(),
            })
        }
        IdentityAction::Update => contracts::input(&IdentityRegistry::batchUpdateIdentityCall {
            wallets,
            countries: batch.items.iter().map(|i| i.entry.country).collect(),
            expiries: batch.items.iter().map(|i| i.entry.expires_at).collect(),
        }),
        IdentityAction::Remove => {
            contracts::input(&IdentityRegistry::batchRemoveIdentityCall { wallets })
        }
    }
}
