//! Settlement of approved transfers: batches of one token's transfers, each
//! carried by one `batchAgentTransfer` (or `agentTransfer` alone) on the
//! settlement lane, and the repository port the settlement flow drives.
//!
//! A batch is stored before its transaction is submitted, under a key
//! derived from the batch, so a crash in between sends nothing twice; the
//! transaction's state is mirrored onto every transfer it carries
//! (`submitted → confirmed → settled`, back to `submitted` when its block is
//! reorged out). A batch that reverts, or that the token refuses at
//! estimation, releases its transfers to `approved`, each to go alone; alone,
//! a transfer that reverts is `failed` with the decoded reason.

use alloy_primitives::B256;
use async_trait::async_trait;
use uuid::Uuid;

use crate::transfer::{Transfer, TransferId};
use crate::tx::{TxId, TxState};
use crate::{OrgId, RepoResult, TokenId};

/// The job kind carrying an organization's approved transfers to the chain
/// (on the operations' `settlement` queue).
pub const SETTLEMENT_KIND: &str = "transfers-settlement";

/// A group of approved transfers of one token carried by one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferBatch {
    /// Id.
    pub id: Uuid,
    /// Organization.
    pub org_id: OrgId,
    /// The token.
    pub token_id: TokenId,
    /// The transfers carried, in call order.
    pub items: Vec<Transfer>,
    /// Its transaction, once submitted.
    pub tx_id: Option<TxId>,
    /// The transaction's state as last mirrored onto the batch.
    pub tx_state: TxState,
    /// Its hash as last mirrored.
    pub tx_hash: Option<B256>,
    /// Its block as last mirrored.
    pub block_number: Option<u64>,
}

impl TransferBatch {
    /// The idempotency key of the batch's transaction.
    pub fn tx_key(&self) -> String {
        format!("transfer-batch:{}", self.id)
    }
}

/// What the settlement flow reads and writes (system paths only: the
/// settlement job).
#[async_trait]
pub trait SettlementRepository: Send + Sync {
    /// Batches of `org` whose transaction is not final.
    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<TransferBatch>>;

    /// Re-checks `org`'s approved transfers not yet in a batch against the
    /// current state (under each token's lock, as the compliance check
    /// does): one that fails a rule now is `rejected` with the new verdicts
    /// and its reservation released; the others are grouped per token into
    /// new batches of up to `max_items` (those released from a failed batch
    /// alone), stored, and answered.
    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<TransferBatch>>;

    /// Takes a transfer out of a batch not yet submitted and rejects it:
    /// the token's `canTransfer` refused it with `reason`.
    async fn system_refuse_item(
        &self,
        batch: Uuid,
        transfer: TransferId,
        reason: &str,
    ) -> RepoResult<()>;

    /// Records the transaction carrying a batch.
    async fn system_record_batch_tx(&self, batch: Uuid, tx: TxId) -> RepoResult<()>;

    /// Mirrors the batch's transaction onto the batch and its transfers
    /// (each status change with its event); a final state closes the batch.
    /// A failed batch of several releases its transfers to `approved`, each
    /// to go alone; alone, a transfer fails with `error`.
    async fn system_follow_batch(
        &self,
        batch: Uuid,
        state: TxState,
        tx_hash: Option<B256>,
        block_number: Option<u64>,
        error: Option<&str>,
    ) -> RepoResult<()>;

    /// Ends the organization's settlement job if nothing is left to do.
    async fn system_finish_sync(&self, org: OrgId) -> RepoResult<bool>;

    /// Enqueues a settlement job for every organization with work and no
    /// job left; answers how many.
    async fn system_revive(&self) -> RepoResult<u64>;
}
