//! One signer's sender: the single step that moves its open transactions along.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rwa_domain::chain::{Address, BlockTag, CallRequest, ChainError, Eip1559Fees, Receipt};
use rwa_domain::tx::{Lane, ManagedTx, Signer, TxAttempt, TxId, TxInclusion, TxState, UnsignedTx};
use serde::Serialize;
use tokio::sync::Notify;

use super::fees::FeeDecision;
use super::{SenderStatus, StatusCell, TxManager, TxmResult};

/// Ticks after which a nonce consumed by no attempt of ours counts as external
/// use (receipts can lag the nonce by a moment on some nodes).
const EXTERNAL_USE_TICKS: u32 = 3;

/// Steps a nonce gap must persist before it is filled (a broadcast can take a
/// moment to show in the node's pending nonce).
const GAP_TICKS: u32 = 3;

/// What one step did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// The sender.
    pub address: Address,
    /// First attempts broadcast.
    pub broadcast: usize,
    /// Replacements broadcast.
    pub replaced: usize,
    /// Transactions newly confirmed.
    pub confirmed: usize,
    /// Transactions settled.
    pub settled: usize,
    /// Transactions failed (reverted, or nonce taken outside rwa).
    pub failed: usize,
    /// Confirmed transactions whose block was reorged out.
    pub reorged: usize,
    /// Nonce gaps filled with no-op self-transfers this step.
    pub gaps_filled: usize,
    /// Another process sends for this signer; this step did nothing.
    pub standby: bool,
    /// Transactions still open after the step.
    pub open: usize,
    /// Broadcasts the node refused this step (the attempts stay stored and
    /// are retried): insufficient funds, fee cap under the base fee, ...
    pub refused: Vec<String>,
    /// Why the step stopped early, if it did.
    pub error: Option<String>,
}

/// A signer's sender: one per address, whatever lanes it serves.
#[derive(Debug)]
pub(super) struct Sender {
    signer: Arc<dyn Signer>,
    lanes: Mutex<Vec<Lane>>,
    wake: Notify,
    status: StatusCell,
    /// When each attempt was last broadcast by this process; an attempt absent
    /// here (after a restart) is broadcast again at once.
    last_broadcast: Mutex<HashMap<TxId, Instant>>,
    /// Consecutive steps in which a transaction's nonce was consumed without a
    /// receipt of ours.
    nonce_gone: Mutex<HashMap<TxId, u32>>,
    /// The gap seen at the last steps (its first nonce) and for how many steps.
    gap_seen: Mutex<Option<(u64, u32)>>,
    /// One step at a time, whoever calls.
    stepping: tokio::sync::Mutex<()>,
}

impl Sender {
    pub(super) fn new(signer: Arc<dyn Signer>) -> Self {
        let status = StatusCell::default();
        status.update(|s| s.address = signer.address());
        Self {
            signer,
            lanes: Mutex::new(Vec::new()),
            wake: Notify::new(),
            status,
            last_broadcast: Mutex::new(HashMap::new()),
            nonce_gone: Mutex::new(HashMap::new()),
            gap_seen: Mutex::new(None),
            stepping: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn address(&self) -> Address {
        self.signer.address()
    }

    pub(super) fn serve(&self, lane: Lane) {
        lock(&self.lanes).push(lane);
        self.status.update(|s| s.lanes.push(lane));
    }

    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(super) fn status(&self) -> SenderStatus {
        self.status.get()
    }

    pub(super) async fn tick(&self, m: &TxManager) -> TickReport {
        let _one_at_a_time = self.stepping.lock().await;
        let mut report = TickReport {
            address: self.address(),
            ..TickReport::default()
        };
        let outcome = self.step(m, &mut report).await;
        report.error = outcome.err().map(|e| e.to_string());
        self.status.update(|s| {
            s.last_error.clone_from(&report.error);
            s.open = report.open;
        });
        report
    }

    async fn step(&self, m: &TxManager, r: &mut TickReport) -> TxmResult<()> {
        let address = self.address();
        // Another process sending for this signer would race us on fee bumps:
        // one process sends, the others stand by until it dies.
        let holding = m.store.hold_sender(m.chain_id, address).await?;
        self.status.update(|s| s.standby = !holding);
        if !holding {
            r.standby = true;
            return Ok(());
        }
        let balance = m.chain.balance(address).await?;
        self.status.update(|s| {
            s.balance = balance;
            s.low_balance = balance < m.config.low_balance;
        });
        metrics::gauge!("rwa_chain_signer_balance_ether", "address" => format!("{address:#x}"))
            .set(wei_to_ether(balance));

        let head = m.chain.block_number(BlockTag::Latest).await?;
        let mined_nonce = m.chain.nonce(address, BlockTag::Latest).await?;
        self.notice_external_use(m, address, mined_nonce).await?;

        let mut open = m.store.open_for(m.chain_id, address).await?;
        if self.fill_gaps(m, address, &open, r).await? > 0 {
            open = m.store.open_for(m.chain_id, address).await?;
        }
        for tx in &open {
            match tx.state {
                TxState::Pending => self.broadcast_first(m, tx, r).await?,
                TxState::Submitted => self.follow_submitted(m, tx, head, mined_nonce, r).await?,
                TxState::Confirmed => self.follow_confirmed(m, tx, head, r).await?,
                TxState::Settled | TxState::Failed => {}
            }
        }
        r.open = m.store.open_for(m.chain_id, address).await?.len();
        Ok(())
    }

    /// A chain nonce ahead of every nonce rwa allocated means someone else sent
    /// with this key: report it and move our sequence past it, never fight it.
    async fn notice_external_use(
        &self,
        m: &TxManager,
        address: Address,
        mined_nonce: u64,
    ) -> TxmResult<()> {
        let ours = m.store.next_nonce(m.chain_id, address).await?;
        if ours > 0 && mined_nonce > ours {
            let note = format!(
                "the chain's nonce {mined_nonce} is ahead of rwa's next nonce {ours}: \
                 this key signs transactions outside rwa"
            );
            tracing::error!(sender = %address, "{note}");
            self.status.update(|s| s.external_use = Some(note));
            m.store
                .raise_next_nonce(m.chain_id, address, mined_nonce)
                .await?;
        }
        Ok(())
    }

    /// Nonces below our lowest open transaction that neither the chain nor its
    /// pool has, and no open transaction of ours holds, stop the lane for good
    /// (the node holds every later nonce back). Once such a gap has lasted a
    /// few steps, each missing nonce gets a no-op self-transfer, stored and
    /// sent like any other transaction. Returns how many were stored.
    async fn fill_gaps(
        &self,
        m: &TxManager,
        address: Address,
        open: &[ManagedTx],
        r: &mut TickReport,
    ) -> TxmResult<usize> {
        let Some(lowest) = open.iter().map(|t| t.nonce).min() else {
            *lock(&self.gap_seen) = None;
            return Ok(0);
        };
        let pending = m.chain.nonce(address, BlockTag::Pending).await?;
        if pending >= lowest {
            *lock(&self.gap_seen) = None;
            return Ok(0);
        }
        let seen = {
            let mut gap = lock(&self.gap_seen);
            let steps = match *gap {
                Some((first, steps)) if first == pending => steps + 1,
                _ => 1,
            };
            *gap = Some((pending, steps));
            steps
        };
        if seen < GAP_TICKS {
            return Ok(0);
        }
        let lane = lock(&self.lanes).first().copied().unwrap_or(Lane::Admin);
        let mut filled = 0;
        for nonce in pending..lowest {
            let request = rwa_domain::tx::TxRequest {
                key: format!("gap:{}:{address:#x}:{nonce}", m.chain_id),
                lane,
                to: Some(address),
                value: rwa_domain::chain::U256::ZERO,
                input: rwa_domain::chain::Bytes::new(),
                gas_limit: 21_000,
            };
            match m
                .store
                .create_filler(&request, m.chain_id, address, nonce)
                .await
            {
                Ok(_) => {
                    tracing::warn!(sender = %address, nonce, "nonce gap filled with a no-op self-transfer");
                    filled += 1;
                }
                // A finished transaction holds the nonce but the chain does
                // not have it (a reorg deeper than the confirmations): an
                // operator must look; filling it would hide that.
                Err(rwa_domain::RepoError::Conflict(reason)) => {
                    let note = format!("nonce {nonce} is missing on-chain: {reason}");
                    tracing::error!(sender = %address, "{note}");
                    self.status.update(|s| s.last_error = Some(note));
                }
                Err(e) => return Err(e.into()),
            }
        }
        *lock(&self.gap_seen) = None;
        r.gaps_filled += filled;
        self.status.update(|s| s.gaps_filled += filled as u64);
        Ok(filled)
    }

    fn unsigned(&self, m: &TxManager, tx: &ManagedTx, fees: Eip1559Fees) -> UnsignedTx {
        UnsignedTx {
            chain_id: m.chain_id,
            nonce: tx.nonce,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            gas_limit: tx.request.gas_limit,
            to: tx.request.to,
            value: tx.request.value,
            input: tx.request.input.clone(),
        }
    }

    /// Signs, stores, then broadcasts an attempt with `fees`.
    async fn send_attempt(
        &self,
        m: &TxManager,
        tx: &ManagedTx,
        fees: Eip1559Fees,
        r: &mut TickReport,
    ) -> TxmResult<()> {
        let signed = self.signer.sign(&self.unsigned(m, tx, fees)).await?;
        let attempt = TxAttempt {
            hash: signed.hash,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            raw: signed.raw,
            created_at: chrono::Utc::now(),
        };
        // Stored first: whatever happens next, this exact attempt is known.
        m.store.add_attempt(tx.id, &attempt).await?;
        self.broadcast(m, tx.id, &attempt, r).await
    }

    async fn broadcast(
        &self,
        m: &TxManager,
        id: TxId,
        attempt: &TxAttempt,
        r: &mut TickReport,
    ) -> TxmResult<()> {
        let outcome = m.chain.send_raw_transaction(attempt.raw.clone()).await;
        lock(&self.last_broadcast).insert(id, Instant::now());
        match outcome {
            Ok(_) | Err(ChainError::AlreadyKnown) => {
                self.status.update(|s| s.refused = None);
                Ok(())
            }
            // The nonce is used: by one of our attempts (its receipt will show)
            // or by someone else (noticed in `follow_submitted`).
            Err(ChainError::NonceTooLow(_)) => Ok(()),
            Err(e) if e.is_transient() => Err(e.into()),
            Err(e) => {
                // Deterministic refusals (funds, fee cap under the base fee, an
                // older attempt paying more) leave the attempt stored; a later
                // step replaces or re-broadcasts it. Say why in the status.
                tracing::warn!(tx = %id, error = %e, "broadcast refused");
                let note = format!("transaction {id}: {e}");
                self.status.update(|s| s.refused = Some(note.clone()));
                r.refused.push(note);
                Ok(())
            }
        }
    }

    async fn broadcast_first(
        &self,
        m: &TxManager,
        tx: &ManagedTx,
        r: &mut TickReport,
    ) -> TxmResult<()> {
        let suggested = m
            .chain
            .suggested_fees(m.config.fees.min_priority_fee)
            .await?;
        match m.config.fees.first(suggested) {
            FeeDecision::Offer(fees) => {
                self.send_attempt(m, tx, fees, r).await?;
                r.broadcast += 1;
            }
            FeeDecision::CapReached { wanted_max_fee } => self.cap_reached(tx, wanted_max_fee),
        }
        Ok(())
    }

    fn cap_reached(&self, tx: &ManagedTx, wanted: u128) {
        tracing::warn!(tx = %tx.id, nonce = tx.nonce, wanted_max_fee = wanted, "fee cap reached");
        self.status.update(|s| s.fee_cap_reached = true);
    }

    async fn follow_submitted(
        &self,
        m: &TxManager,
        tx: &ManagedTx,
        head: u64,
        mined_nonce: u64,
        r: &mut TickReport,
    ) -> TxmResult<()> {
        for attempt in tx.attempts.iter().rev() {
            let Some(receipt) = m.chain.receipt(attempt.hash).await? else {
                continue;
            };
            if !is_canonical(m, receipt.block_number, receipt.block_hash).await? {
                continue;
            }
            lock(&self.nonce_gone).remove(&tx.id);
            let inclusion = inclusion_of(&receipt);
            let mined = m.store.set_inclusion(tx.id, Some(&inclusion)).await?;
            if receipt.success {
                r.confirmed += 1;
                return self.follow_confirmed(m, &mined, head, r).await;
            }
            let reason = revert_reason(m, tx, &receipt).await;
            m.store
                .finish(tx.id, TxState::Failed, Some(&reason))
                .await?;
            r.failed += 1;
            return Ok(());
        }

        if mined_nonce > tx.nonce {
            let seen = {
                let mut gone = lock(&self.nonce_gone);
                let seen = gone.entry(tx.id).or_insert(0);
                *seen += 1;
                *seen
            };
            if seen >= EXTERNAL_USE_TICKS {
                let note = format!(
                    "nonce {} was consumed by a transaction rwa did not send",
                    tx.nonce
                );
                self.status.update(|s| s.external_use = Some(note.clone()));
                m.store.finish(tx.id, TxState::Failed, Some(&note)).await?;
                r.failed += 1;
            }
            return Ok(());
        }

        let Some(latest) = tx.attempts.last() else {
            return self.broadcast_first(m, tx, r).await;
        };
        let since = lock(&self.last_broadcast).get(&tx.id).map(Instant::elapsed);
        match since {
            // Not sent by this process yet (a restart): send the stored attempt.
            None => self.broadcast(m, tx.id, latest, r).await,
            Some(age) if age >= m.config.replace_after => {
                let previous = Eip1559Fees {
                    max_fee_per_gas: latest.max_fee_per_gas,
                    max_priority_fee_per_gas: latest.max_priority_fee_per_gas,
                };
                let suggested = m
                    .chain
                    .suggested_fees(m.config.fees.min_priority_fee)
                    .await?;
                match m.config.fees.replacement(previous, suggested) {
                    FeeDecision::Offer(fees) => {
                        self.send_attempt(m, tx, fees, r).await?;
                        r.replaced += 1;
                        Ok(())
                    }
                    FeeDecision::CapReached { wanted_max_fee } => {
                        self.cap_reached(tx, wanted_max_fee);
                        self.broadcast(m, tx.id, latest, r).await
                    }
                }
            }
            Some(_) => Ok(()),
        }
    }

    async fn follow_confirmed(
        &self,
        m: &TxManager,
        tx: &ManagedTx,
        head: u64,
        r: &mut TickReport,
    ) -> TxmResult<()> {
        let Some(inclusion) = &tx.inclusion else {
            return Ok(());
        };
        if !is_canonical(m, inclusion.block_number, inclusion.block_hash).await? {
            tracing::warn!(tx = %tx.id, block = inclusion.block_number, "block reorged out; re-broadcasting");
            m.store.set_inclusion(tx.id, None).await?;
            r.reorged += 1;
            if let Some(attempt) = tx.attempts.iter().find(|a| a.hash == inclusion.hash) {
                self.broadcast(m, tx.id, attempt, r).await?;
            }
            return Ok(());
        }
        let depth = head
            .saturating_add(1)
            .saturating_sub(inclusion.block_number);
        if depth >= m.config.confirmations {
            m.store.finish(tx.id, TxState::Settled, None).await?;
            lock(&self.last_broadcast).remove(&tx.id);
            r.settled += 1;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn is_canonical(
    m: &TxManager,
    number: u64,
    hash: rwa_domain::chain::B256,
) -> TxmResult<bool> {
    Ok(m.chain
        .header(BlockTag::Number(number))
        .await?
        .is_some_and(|h| h.hash == hash))
}

fn inclusion_of(receipt: &Receipt) -> TxInclusion {
    TxInclusion {
        hash: receipt.transaction_hash,
        block_number: receipt.block_number,
        block_hash: receipt.block_hash,
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        contract_address: receipt.contract_address,
    }
}

/// Replays a reverted transaction at its parent block to recover the reason
/// (the receipt carries none). Transactions earlier in the same block are not
/// replayed, so a revert that depended on them is reported as such.
async fn revert_reason(m: &TxManager, tx: &ManagedTx, receipt: &Receipt) -> String {
    let call = CallRequest {
        from: Some(tx.from),
        to: tx.request.to,
        input: tx.request.input.clone(),
        value: tx.request.value,
        gas: Some(tx.request.gas_limit),
    };
    let parent = BlockTag::Number(receipt.block_number.saturating_sub(1));
    match m.chain.call(&call, parent).await {
        Err(ChainError::Reverted { reason, data }) => format!(
            "reverted: {}",
            crate::contracts::describe_error(&data).unwrap_or(reason)
        ),
        Ok(_) => "reverted (the replay at the parent block succeeded: the revert depended on \
                  an earlier transaction in its block)"
            .to_owned(),
        Err(e) => format!("reverted (reason unavailable: {e})"),
    }
}

fn wei_to_ether(wei: rwa_domain::chain::U256) -> f64 {
    let gwei = wei / rwa_domain::chain::U256::from(1_000_000_000u64);
    u128::try_from(gwei).map_or(f64::MAX, |g| g as f64 / 1e9)
}
