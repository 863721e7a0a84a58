//! The transaction manager: gets logical transactions mined and settled exactly
//! once, over any [`ChainPort`].
//!
//! - **One process per signer**: a sender steps only while its process holds
//!   the signer's lock in the database ([`TxStore::hold_sender`]); the other
//!   workers stand by and one takes over as soon as the holder dies, so two
//!   processes never bump the same transaction's fees against each other.
//! - **Lanes**: each operation class ([`Lane`]) names a signer. Lanes that share
//!   a signer share its nonce sequence and its one sender task (`sender::Sender`), so
//!   nonces are broadcast in order; lanes with their own signer are independent,
//!   and a transaction stuck on one cannot delay another.
//! - **Before broadcast**: the request and its nonce ([`TxStore::create`]), then
//!   each signed attempt ([`TxStore::add_attempt`]), are committed before the
//!   bytes leave the process. A crash at any instant can only re-send a stored
//!   attempt; all attempts share one nonce, so at most one is ever mined.
//! - **Fees**: EIP-1559 from the chain's fee history, bumped on replacement and
//!   held under a cap ([`fees`]); a lane that hits the cap says so in its status.
//! - **Gaps**: a nonce below the lowest open transaction that the chain does
//!   not have and no open transaction holds would stop the lane for good; it
//!   is filled with a no-op self-transfer, itself a managed transaction.
//! - **Confirmations**: `confirmed` when a receipt with status 1 sits in the
//!   canonical block at its height, `settled` at depth ≥ N (the block itself is
//!   depth 1). A confirmed transaction whose block is no longer canonical goes
//!   back to `submitted` and its attempt is broadcast again.
//!
//! Each sender works in single steps ([`TxManager::tick`]) so tests drive it
//! deterministically; [`TxManager::spawn`] runs one loop per sender.

pub mod fees;
pub mod health;
mod sender;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rwa_domain::chain::{Address, ChainError, ChainPort, U256};
use rwa_domain::tx::{Lane, ManagedTx, Signer, TxId, TxRequest, TxStore};
use rwa_domain::{RepoError, chain::BlockTag};
use serde::Serialize;
use tokio::sync::Notify;

pub use fees::{FeeDecision, FeePolicy};
pub use health::LanesHealth;
use sender::Sender;
pub use sender::TickReport;

/// Why the manager could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum TxmError {
    /// The chain refused or could not be reached.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The database refused or could not be reached.
    #[error(transparent)]
    Store(#[from] RepoError),
    /// No signer is configured for the lane.
    #[error("no signer for lane {0}")]
    NoSigner(Lane),
    /// The signer failed.
    #[error(transparent)]
    Signer(#[from] rwa_domain::tx::SignerError),
}

/// Result alias of the manager.
pub type TxmResult<T> = Result<T, TxmError>;

/// Tuning of the manager.
#[derive(Clone, Debug)]
pub struct TxManagerConfig {
    /// Depth at which a transaction is settled (`RWA_CHAIN_CONFIRMATIONS`).
    pub confirmations: u64,
    /// Pause between steps of a sender loop when nothing wakes it.
    pub poll_interval: Duration,
    /// How long an attempt may stay unmined before it is replaced.
    pub replace_after: Duration,
    /// Fee policy.
    pub fees: FeePolicy,
    /// Below this balance a lane reports itself degraded.
    pub low_balance: U256,
}

impl Default for TxManagerConfig {
    fn default() -> Self {
        Self {
            confirmations: 2,
            poll_interval: Duration::from_millis(500),
            replace_after: Duration::from_secs(30),
            fees: FeePolicy::default(),
            // 0.05 ether.
            low_balance: U256::from(50_000_000_000_000_000u64),
        }
    }
}

/// What a sender reports for health and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SenderStatus {
    /// The signer's address.
    pub address: Address,
    /// Lanes it serves.
    pub lanes: Vec<Lane>,
    /// Balance at the last step, wei.
    pub balance: U256,
    /// Transactions not yet settled or failed.
    pub open: usize,
    /// The fee cap stopped a replacement (the lane may be stuck).
    pub fee_cap_reached: bool,
    /// A nonce was consumed by a transaction rwa did not send.
    pub external_use: Option<String>,
    /// The last error of a step, if the last step failed.
    pub last_error: Option<String>,
    /// The node's latest refusal of a broadcast, until a broadcast succeeds
    /// (insufficient funds, fee cap under the base fee, ...): the lane is stuck.
    pub refused: Option<String>,
    /// The balance is under the warning threshold.
    pub low_balance: bool,
    /// Nonce gaps this process filled with no-op self-transfers.
    pub gaps_filled: u64,
    /// Another process holds this signer's sender lock: this one stands by.
    pub standby: bool,
}

/// The transaction manager.
pub struct TxManager {
    chain: Arc<dyn ChainPort>,
    store: Arc<dyn TxStore>,
    chain_id: u64,
    lanes: BTreeMap<Lane, Arc<Sender>>,
    config: TxManagerConfig,
}

impl std::fmt::Debug for TxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxManager")
            .field("chain_id", &self.chain_id)
            .field("lanes", &self.lanes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TxManager {
    /// Builds the manager. `signers` maps each lane to its signer; lanes whose
    /// signers share an address share one sender.
    pub async fn new(
        chain: Arc<dyn ChainPort>,
        store: Arc<dyn TxStore>,
        signers: Vec<(Lane, Arc<dyn Signer>)>,
        config: TxManagerConfig,
    ) -> TxmResult<Self> {
        let chain_id = chain.chain_id().await?;
        let mut by_address: BTreeMap<Address, Arc<Sender>> = BTreeMap::new();
        let mut lanes = BTreeMap::new();
        for (lane, signer) in signers {
            let sender = by_address
                .entry(signer.address())
                .or_insert_with(|| Arc::new(Sender::new(signer.clone())))
                .clone();
            sender.serve(lane);
            lanes.insert(lane, sender);
        }
        Ok(Self {
            chain,
            store,
            chain_id,
            lanes,
            config,
        })
    }

    /// The chain id transactions are signed for.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The address that sends `lane`'s transactions.
    pub fn address(&self, lane: Lane) -> TxmResult<Address> {
        Ok(self.sender(lane)?.address())
    }

    fn sender(&self, lane: Lane) -> TxmResult<&Arc<Sender>> {
        self.lanes.get(&lane).ok_or(TxmError::NoSigner(lane))
    }

    /// Stores a request (idempotent by its key) with the next nonce of its
    /// lane's signer and wakes the sender. Nothing is broadcast here.
    pub async fn submit(&self, request: &TxRequest) -> TxmResult<ManagedTx> {
        let sender = self.sender(request.lane)?;
        if let Some(existing) = self.store.find_by_key(&request.key).await? {
            return Ok(existing);
        }
        let floor = self
            .chain
            .nonce(sender.address(), BlockTag::Pending)
            .await?;
        let tx = self
            .store
            .create(request, self.chain_id, sender.address(), floor)
            .await?;
        sender.wake();
        Ok(tx)
    }

    /// A transaction as stored.
    pub async fn get(&self, id: TxId) -> TxmResult<ManagedTx> {
        Ok(self.store.get(id).await?)
    }

    /// One step of every sender: broadcast, poll receipts, replace, confirm,
    /// settle. Returns what each sender did.
    pub async fn tick(&self) -> Vec<TickReport> {
        let mut reports = Vec::new();
        for sender in self.senders() {
            reports.push(sender.tick(self).await);
        }
        reports
    }

    /// One step of the sender serving `lane`.
    pub async fn tick_lane(&self, lane: Lane) -> TxmResult<TickReport> {
        Ok(self.sender(lane)?.tick(self).await)
    }

    fn senders(&self) -> Vec<Arc<Sender>> {
        let mut seen = Vec::<Arc<Sender>>::new();
        for sender in self.lanes.values() {
            if !seen.iter().any(|s| Arc::ptr_eq(s, sender)) {
                seen.push(sender.clone());
            }
        }
        seen
    }

    /// Status of every sender, for `/health/detailed` and metrics.
    pub fn status(&self) -> Vec<SenderStatus> {
        self.senders().iter().map(|s| s.status()).collect()
    }

    /// Runs one loop per sender until `shutdown` resolves. A sender steps when
    /// woken by a submission or after the poll interval.
    pub fn spawn(self: &Arc<Self>, shutdown: Arc<Notify>) -> Vec<tokio::task::JoinHandle<()>> {
        self.senders()
            .into_iter()
            .map(|sender| {
                let manager = Arc::clone(self);
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    loop {
                        let report = sender.tick(&manager).await;
                        if let Some(e) = &report.error {
                            tracing::warn!(sender = %sender.address(), error = %e, "transaction sender step failed");
                        }
                        tokio::select! {
                            _ = shutdown.notified() => break,
                            _ = sender.woken() => {}
                            _ = tokio::time::sleep(manager.config.poll_interval) => {}
                        }
                    }
                })
            })
            .collect()
    }
}

/// Shared status cell of a sender.
#[derive(Debug, Default)]
struct StatusCell(Mutex<SenderStatus>);

impl StatusCell {
    fn update(&self, f: impl FnOnce(&mut SenderStatus)) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard);
    }

    fn get(&self) -> SenderStatus {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
