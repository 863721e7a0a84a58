//! The devnet's chain: accounts in a revm `CacheDB`, the canonical blocks with
//! the state after each (so any block can be the head again: reorgs,
//! rollbacks, snapshots), a mempool that validates like a node (and knows
//! which of its transactions the database already holds), and block
//! production with EIP-1559 base fees, receipts and block-wide log indexes.

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy::consensus::transaction::SignerRecoverable;
use alloy::consensus::{
    Eip658Value, Header, Receipt as ConsensusReceipt, ReceiptEnvelope, ReceiptWithBloom,
    Transaction, TxEnvelope,
};
use alloy::eips::eip1559::{BaseFeeParams, calc_next_block_base_fee};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bloom, Bytes, TxKind, U256, keccak256};
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::state::AccountInfo;
use revm::{Context, DatabaseCommit, DatabaseRef, ExecuteEvm, MainBuilder, MainContext};
use rwa_domain::chain::{BlockHeader, CallRequest, ChainError, ChainResult, Log, Receipt};

use super::DevnetConfig;
use super::exec::{apply_diff, domain_header, intrinsic_gas, record_changes, tx_env};
use super::storage::{AccountDiff, PoolChanges, PooledRow, StateDiff, StoredBlock};
use super::trie::StateTrie;

/// The pinned EVM version (solc `evmVersion`, anvil `--hardfork`).
pub(crate) const SPEC: SpecId = SpecId::PRAGUE;

pub(crate) type Db = CacheDB<EmptyDB>;

/// How many recent blocks keep their whole state in memory (a call at an
/// older block winds the oldest kept state back over the stored diffs;
/// rewinding the chain below them replays the diffs from genesis).
pub(crate) const KEPT_STATES: usize = 256;

/// A pooled, validated transaction.
#[derive(Clone, Debug)]
pub(crate) struct Pooled {
    pub(crate) hash: B256,
    pub(crate) sender: Address,
    pub(crate) tx: TxEnvelope,
    /// The bytes as sent, which is what the database keeps.
    pub(crate) raw: Bytes,
}

impl Pooled {
    /// Decodes a raw transaction and recovers its sender.
    pub(crate) fn decode(raw: &[u8]) -> ChainResult<Pooled> {
        let tx = TxEnvelope::decode_2718(&mut &raw[..])
            .map_err(|e| ChainError::InvalidTransaction(format!("undecodable: {e}")))?;
        let sender = tx
            .recover_signer()
            .map_err(|_| ChainError::InvalidTransaction("invalid signature".into()))?;
        Ok(Pooled {
            hash: *tx.tx_hash(),
            sender,
            tx,
            raw: Bytes::copy_from_slice(raw),
        })
    }
}

/// A mined block with what the port serves from it.
#[derive(Clone, Debug)]
pub(crate) struct Mined {
    pub(crate) header: BlockHeader,
    /// The header's state root (the domain header does not carry it).
    pub(crate) state_root: B256,
    pub(crate) receipts: Vec<Receipt>,
    /// State after this block, kept for the last [`KEPT_STATES`] blocks.
    pub(crate) state: Option<Db>,
    /// What this block changed (what the database keeps).
    pub(crate) diff: StateDiff,
}

/// Everything the devnet knows.
#[derive(Debug)]
pub(crate) struct ChainState {
    pub(crate) config: DevnetConfig,
    pub(crate) blocks: Vec<Mined>,
    /// Pending transactions by sender, then nonce.
    pub(crate) pool: BTreeMap<Address, BTreeMap<u64, Pooled>>,
    /// Where each canonical transaction is: (block number, index).
    pub(crate) index: HashMap<B256, (u64, usize)>,
    pub(crate) next_timestamp: Option<u64>,
    pub(crate) automine: bool,
    pub(crate) snapshots: HashMap<u64, u64>,
    pub(crate) next_snapshot: u64,
    /// Mixed into every header so a re-mined height never repeats a hash.
    pub(crate) generation: u64,
    /// Lowest block number changed since the database was last written.
    pub(crate) dirty_from: Option<u64>,
    /// The pending transactions the database holds.
    pub(crate) stored_pool: HashSet<B256>,
    /// The head's state in trie form, for the next block's state root.
    pub(crate) trie: StateTrie,
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl ChainState {
    pub(crate) fn genesis(config: DevnetConfig) -> Self {
        let mut db = Db::new(EmptyDB::default());
        let mut diff = StateDiff::new();
        for (address, balance) in &config.genesis_accounts {
            db.insert_account_info(
                *address,
                AccountInfo {
                    balance: *balance,
                    ..AccountInfo::default()
                },
            );
            diff.insert(
                *address,
                AccountDiff {
                    balance: *balance,
                    ..AccountDiff::default()
                },
            );
        }
        let timestamp = config.genesis_timestamp.unwrap_or_else(now_seconds);
        let mut trie = StateTrie::build(&db, B256::ZERO);
        let state_root = trie.root();
        let header = Header {
            number: 0,
            state_root,
            timestamp,
            gas_limit: config.block_gas_limit,
            base_fee_per_gas: Some(u64::try_from(config.initial_base_fee).unwrap_or(u64::MAX)),
            extra_data: Bytes::from_static(b"rwa devnet"),
            ..Header::default()
        };
        let header = domain_header(&header);
        trie.follow(header.hash);
        let genesis = Mined {
            header,
            state_root,
            receipts: Vec::new(),
            state: Some(db),
            diff,
        };
        let automine = config.automine;
        Self {
            config,
            blocks: vec![genesis],
            pool: BTreeMap::new(),
            index: HashMap::new(),
            next_timestamp: None,
            automine,
            snapshots: HashMap::new(),
            next_snapshot: 1,
            generation: 0,
            dirty_from: Some(0),
            stored_pool: HashSet::new(),
            trie,
        }
    }

    /// Rebuilds the chain from the database, replaying each block's changes,
    /// and pools the stored pending transactions again (they were validated
    /// when accepted; those the chain can no longer run leave the pool when a
    /// block is built, as any stale transaction does).
    pub(crate) fn restore(
        config: DevnetConfig,
        stored: Vec<StoredBlock>,
        generation: u64,
        pending: Vec<Bytes>,
    ) -> ChainResult<Self> {
        let mut db = Db::new(EmptyDB::default());
        let mut blocks = Vec::with_capacity(stored.len());
        let mut index = HashMap::new();
        let keep_from = stored.len().saturating_sub(KEPT_STATES);
        for (i, b) in stored.into_iter().enumerate() {
            apply_diff(&mut db, &b.diff);
            for r in &b.receipts {
                index.insert(
                    r.transaction_hash,
                    (b.header.number, r.transaction_index as usize),
                );
            }
            blocks.push(Mined {
                header: b.header,
                state_root: b.state_root,
                receipts: b.receipts,
                state: (i >= keep_from).then(|| db.clone()),
                diff: b.diff,
            });
        }
        let mut pool: BTreeMap<Address, BTreeMap<u64, Pooled>> = BTreeMap::new();
        let mut stored_pool = HashSet::new();
        for raw in pending {
            let pooled = Pooled::decode(&raw).map_err(|e| {
                ChainError::Other(format!(
                    "devnet database: a stored pending transaction: {e}"
                ))
            })?;
            stored_pool.insert(pooled.hash);
            pool.entry(pooled.sender)
                .or_default()
                .insert(pooled.tx.nonce(), pooled);
        }
        let automine = config.automine;
        Ok(Self {
            config,
            blocks,
            pool,
            index,
            next_timestamp: None,
            automine,
            snapshots: HashMap::new(),
            next_snapshot: 1,
            generation,
            dirty_from: None,
            stored_pool,
            // Built from the head's state when the next block is mined.
            trie: StateTrie::default(),
        })
    }

    /// The pool's changes since the database last took them.
    pub(crate) fn pool_changes(&self) -> PoolChanges<'_> {
        let mut changes = PoolChanges::default();
        let mut present = HashSet::with_capacity(self.stored_pool.len());
        for p in self.pool.values().flat_map(BTreeMap::values) {
            if self.stored_pool.contains(&p.hash) {
                present.insert(p.hash);
            } else {
                changes.added.push(PooledRow {
                    hash: p.hash,
                    sender: p.sender,
                    nonce: p.tx.nonce(),
                    raw: &p.raw,
                });
            }
        }
        changes.removed = self
            .stored_pool
            .iter()
            .filter(|h| !present.contains(*h))
            .copied()
            .collect();
        changes
    }

    /// Records that the database now holds exactly the pool.
    pub(crate) fn pool_stored(&mut self) {
        self.stored_pool = self
            .pool
            .values()
            .flat_map(BTreeMap::values)
            .map(|p| p.hash)
            .collect();
    }

    fn mark_dirty(&mut self, from: u64) {
        self.dirty_from = Some(self.dirty_from.map_or(from, |d| d.min(from)));
    }

    pub(crate) fn head(&self) -> &Mined {
        self.blocks.last().expect("genesis always exists")
    }

    pub(crate) fn head_number(&self) -> u64 {
        self.head().header.number
    }

    fn head_state(&self) -> &Db {
        self.head()
            .state
            .as_ref()
            .expect("the head's state is always kept")
    }

    fn account(&self, address: Address) -> AccountInfo {
        self.head_state()
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub(crate) fn balance(&self, address: Address) -> U256 {
        self.account(address).balance
    }

    /// The account's nonce after block `number`.
    pub(crate) fn nonce_at(&self, address: Address, number: u64) -> ChainResult<u64> {
        Ok(self
            .state_at(number)?
            .basic_ref(address)
            .ok()
            .flatten()
            .unwrap_or_default()
            .nonce)
    }

    pub(crate) fn nonce(&self, address: Address, pending: bool) -> u64 {
        let mined = self.account(address).nonce;
        if !pending {
            return mined;
        }
        let mut next = mined;
        if let Some(queued) = self.pool.get(&address) {
            while queued.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// The base fee the next block will charge.
    pub(crate) fn next_base_fee(&self) -> u64 {
        let h = &self.head().header;
        calc_next_block_base_fee(
            h.gas_used,
            h.gas_limit,
            h.base_fee_per_gas.unwrap_or(0) as u64,
            BaseFeeParams::ethereum(),
        )
    }

    /// Validates a raw transaction like a node and pools it; returns the
    /// transaction it replaced (same sender and nonce), if any, so a caller
    /// that cannot store the pool can [`ChainState::unaccept`] it.
    pub(crate) fn accept(&mut self, raw: &[u8]) -> ChainResult<(B256, Option<Pooled>)> {
        let pooled = Pooled::decode(raw)?;
        let hash = pooled.hash;
        if self.index.contains_key(&hash)
            || self
                .pool
                .values()
                .any(|q| q.values().any(|p| p.hash == hash))
        {
            return Err(ChainError::AlreadyKnown);
        }
        let (sender, tx) = (pooled.sender, &pooled.tx);
        if tx.chain_id() != Some(self.config.chain_id) {
            return Err(ChainError::InvalidTransaction(format!(
                "invalid chain id {:?}, expected {}",
                tx.chain_id(),
                self.config.chain_id
            )));
        }
        let intrinsic = intrinsic_gas(tx);
        if tx.gas_limit() < intrinsic {
            return Err(ChainError::GasLimit(format!(
                "intrinsic gas too low: have {}, want {intrinsic}",
                tx.gas_limit()
            )));
        }
        if tx.gas_limit() > self.config.block_gas_limit {
            return Err(ChainError::GasLimit("exceeds block gas limit".into()));
        }
        let mined_nonce = self.nonce(sender, false);
        if tx.nonce() < mined_nonce {
            return Err(ChainError::NonceTooLow(format!(
                "nonce too low: next nonce {mined_nonce}, tx nonce {}",
                tx.nonce()
            )));
        }
        let base_fee = u128::from(self.next_base_fee());
        if tx.max_fee_per_gas() < base_fee {
            return Err(ChainError::FeeCapTooLow(format!(
                "max fee per gas less than block base fee: maxFeePerGas {}, baseFee {base_fee}",
                tx.max_fee_per_gas()
            )));
        }
        let cost = U256::from(tx.gas_limit()) * U256::from(tx.max_fee_per_gas()) + tx.value();
        if self.balance(sender) < cost {
            return Err(ChainError::InsufficientFunds(format!(
                "insufficient funds for gas * price + value: have {}, want {cost}",
                self.balance(sender)
            )));
        }
        let queue = self.pool.entry(sender).or_default();
        if let Some(existing) = queue.get(&tx.nonce()) {
            let bumped = |old: u128, new: u128| new * 10 >= old * 11;
            let old_tip = existing.tx.max_priority_fee_per_gas().unwrap_or(0);
            let new_tip = tx.max_priority_fee_per_gas().unwrap_or(0);
            if !bumped(existing.tx.max_fee_per_gas(), tx.max_fee_per_gas())
                || !bumped(old_tip, new_tip)
            {
                return Err(ChainError::ReplacementUnderpriced);
            }
        }
        let replaced = queue.insert(tx.nonce(), pooled);
        Ok((hash, replaced))
    }

    /// Takes back a transaction [`ChainState::accept`] just pooled, restoring
    /// the one it replaced.
    pub(crate) fn unaccept(&mut self, hash: B256, replaced: Option<Pooled>) {
        for queue in self.pool.values_mut() {
            queue.retain(|_, p| p.hash != hash);
        }
        if let Some(old) = replaced {
            self.pool
                .entry(old.sender)
                .or_default()
                .insert(old.tx.nonce(), old);
        }
        self.pool.retain(|_, q| !q.is_empty());
    }

    /// Mines one block from the pool (contiguous nonces per sender, highest tip first).
    pub(crate) fn mine_block(&mut self, forced: Vec<Pooled>) {
        let parent = self.head().header.clone();
        let number = parent.number + 1;
        let timestamp = self
            .next_timestamp
            .take()
            .unwrap_or_else(|| now_seconds().max(parent.timestamp + 1));
        let base_fee = self.next_base_fee();
        if self.trie.block() != parent.hash {
            self.trie = StateTrie::build(self.head_state(), parent.hash);
        }
        let mut db = self.head_state().clone();
        let mut diff = StateDiff::new();
        let block_env = BlockEnv {
            number: U256::from(number),
            timestamp: U256::from(timestamp),
            gas_limit: self.config.block_gas_limit,
            basefee: base_fee,
            beneficiary: Address::ZERO,
            prevrandao: Some(keccak256(number.to_be_bytes())),
            ..BlockEnv::default()
        };

        let mut candidates = forced;
        candidates.extend(self.take_executable(&db, base_fee));
        let mut receipts = Vec::new();
        let mut cumulative = 0u64;
        let mut bloom = Bloom::default();
        let mut log_index = 0u64;
        let mut included: Vec<TxEnvelope> = Vec::new();
        let mut consensus_receipts: Vec<ReceiptEnvelope> = Vec::new();
        // Senders whose run stopped in this block: their later nonces wait.
        let mut stopped = std::collections::HashSet::new();
        for pooled in candidates {
            if stopped.contains(&pooled.sender)
                || cumulative + pooled.tx.gas_limit() > self.config.block_gas_limit
            {
                // Back to the pool for the next block.
                stopped.insert(pooled.sender);
                self.pool
                    .entry(pooled.sender)
                    .or_default()
                    .insert(pooled.tx.nonce(), pooled);
                continue;
            }
            let env = tx_env(&pooled, self.config.chain_id);
            let outcome = {
                let mut evm = Context::mainnet()
                    .with_db(&mut db)
                    .with_block(block_env.clone())
                    .modify_cfg_chained(|c| {
                        c.chain_id = self.config.chain_id;
                        c.spec = SPEC;
                    })
                    .build_mainnet();
                evm.transact(env)
            };
            let Ok(outcome) = outcome else {
                // Invalid against this block's state (e.g. funds spent by an
                // earlier transaction): dropped, as a node would; the
                // sender's later nonces wait for the gap.
                stopped.insert(pooled.sender);
                continue;
            };
            record_changes(&mut diff, &outcome.state);
            db.commit(outcome.state);
            let result = outcome.result;
            let gas_used = result.tx_gas_used();
            cumulative += gas_used;
            let tip = pooled.tx.effective_tip_per_gas(base_fee).unwrap_or(0);
            let index = receipts.len() as u64;
            let logs: Vec<Log> = result
                .logs()
                .iter()
                .map(|l| {
                    bloom.accrue_log(l);
                    let log = Log {
                        address: l.address,
                        topics: l.data.topics().to_vec(),
                        data: l.data.data.clone(),
                        block_hash: B256::ZERO,
                        block_number: number,
                        transaction_hash: pooled.hash,
                        transaction_index: index,
                        log_index,
                        removed: false,
                    };
                    log_index += 1;
                    log
                })
                .collect();
            let mut receipt_bloom = Bloom::default();
            for l in result.logs() {
                receipt_bloom.accrue_log(l);
            }
            let contract_address = match &result {
                ExecutionResult::Success {
                    output: Output::Create(_, address),
                    ..
                } => *address,
                _ => None,
            };
            receipts.push(Receipt {
                transaction_hash: pooled.hash,
                transaction_index: index,
                block_hash: B256::ZERO,
                block_number: number,
                from: pooled.sender,
                to: pooled.tx.to(),
                contract_address,
                success: result.is_success(),
                gas_used,
                cumulative_gas_used: cumulative,
                effective_gas_price: u128::from(base_fee) + tip,
                logs,
                logs_bloom: receipt_bloom,
            });
            consensus_receipts.push(ReceiptEnvelope::from_typed(
                pooled.tx.tx_type(),
                ReceiptWithBloom {
                    receipt: ConsensusReceipt {
                        status: Eip658Value::Eip658(result.is_success()),
                        cumulative_gas_used: cumulative,
                        logs: result.logs().to_vec(),
                    },
                    logs_bloom: receipt_bloom,
                },
            ));
            included.push(pooled.tx);
        }
        self.generation += 1;
        self.trie.apply(&diff, &db);
        let state_root = self.trie.root();
        let header = Header {
            parent_hash: parent.hash,
            number,
            state_root,
            timestamp,
            gas_limit: self.config.block_gas_limit,
            gas_used: cumulative,
            base_fee_per_gas: Some(base_fee),
            logs_bloom: bloom,
            transactions_root: calculate_transaction_root(&included),
            receipts_root: calculate_receipt_root(&consensus_receipts),
            mix_hash: keccak256(self.generation.to_be_bytes()),
            ..Header::default()
        };
        let header = domain_header(&header);
        self.trie.follow(header.hash);
        for r in &mut receipts {
            r.block_hash = header.hash;
            for l in &mut r.logs {
                l.block_hash = header.hash;
            }
            self.index
                .insert(r.transaction_hash, (number, r.transaction_index as usize));
        }
        self.blocks.push(Mined {
            header,
            state_root,
            receipts,
            state: Some(db),
            diff,
        });
        if let Some(old) = self.blocks.len().checked_sub(KEPT_STATES + 1) {
            self.blocks[old].state = None;
        }
        self.mark_dirty(number);
        metrics::counter!("rwa_devnet_blocks_total").increment(1);
    }

    /// Whether the pool holds a transaction the next block could include.
    pub(crate) fn has_executable(&self) -> bool {
        let base_fee = u128::from(self.next_base_fee());
        self.pool.iter().any(|(sender, queue)| {
            queue
                .get(&self.nonce(*sender, false))
                .is_some_and(|p| p.tx.max_fee_per_gas() >= base_fee)
        })
    }

    /// Pool transactions runnable now: per sender the run of nonces from the
    /// account's, each paying at least the base fee; senders whose first
    /// transaction tips most go first, each sender's run in nonce order.
    fn take_executable(&mut self, db: &Db, base_fee: u64) -> Vec<Pooled> {
        let mut runs: Vec<Vec<Pooled>> = Vec::new();
        for (sender, queue) in &mut self.pool {
            let mut next = db
                .basic_ref(*sender)
                .ok()
                .flatten()
                .unwrap_or_default()
                .nonce;
            queue.retain(|nonce, _| *nonce >= next);
            let mut run = Vec::new();
            while let Some(p) = queue.get(&next) {
                if p.tx.max_fee_per_gas() < u128::from(base_fee) {
                    break;
                }
                run.push(queue.remove(&next).expect("present"));
                next += 1;
            }
            if !run.is_empty() {
                runs.push(run);
            }
        }
        self.pool.retain(|_, q| !q.is_empty());
        runs.sort_by_key(|run| {
            std::cmp::Reverse(run[0].tx.effective_tip_per_gas(base_fee).unwrap_or(0))
        });
        runs.into_iter().flatten().collect()
    }

    /// Drops blocks above `number` (their transactions are not re-pooled).
    pub(crate) fn truncate(&mut self, number: u64) {
        if self.head_number() > number {
            self.mark_dirty(number + 1);
        }
        while self.head_number() > number {
            let dropped = self.blocks.pop().expect("above genesis");
            for r in dropped.receipts {
                self.index.remove(&r.transaction_hash);
            }
        }
        if self.head().state.is_none() {
            let mut db = Db::new(EmptyDB::default());
            for b in &self.blocks {
                apply_diff(&mut db, &b.diff);
            }
            self.blocks.last_mut().expect("genesis always exists").state = Some(db);
        }
    }

    /// Executes a call against the state after block `number`.
    pub(crate) fn call(&self, request: &CallRequest, number: u64) -> ChainResult<(u64, Bytes)> {
        let block = self
            .blocks
            .get(usize::try_from(number).unwrap_or(usize::MAX))
            .ok_or_else(|| ChainError::Other(format!("unknown block {number}")))?;
        // A layer over the block's state takes what the call writes, so the
        // state is read in place instead of copied for every call.
        let state = self.state_at(number)?;
        let mut db = CacheDB::new(&*state);
        let from = request.from.unwrap_or(Address::ZERO);
        let nonce = db.basic_ref(from).ok().flatten().unwrap_or_default().nonce;
        let env = TxEnv {
            tx_type: 0,
            caller: from,
            gas_limit: request.gas.unwrap_or(self.config.block_gas_limit),
            gas_price: 0,
            kind: request.to.map_or(TxKind::Create, TxKind::Call),
            value: request.value,
            data: request.input.clone(),
            nonce,
            chain_id: Some(self.config.chain_id),
            ..TxEnv::default()
        };
        let block_env = BlockEnv {
            number: U256::from(block.header.number),
            timestamp: U256::from(block.header.timestamp),
            gas_limit: self.config.block_gas_limit,
            basefee: 0,
            prevrandao: Some(B256::ZERO),
            ..BlockEnv::default()
        };
        let mut evm = Context::mainnet()
            .with_db(&mut db)
            .with_block(block_env)
            .modify_cfg_chained(|c| {
                c.chain_id = self.config.chain_id;
                c.spec = SPEC;
            })
            .build_mainnet();
        let outcome = evm
            .transact(env)
            .map_err(|e| ChainError::Other(format!("call rejected: {e:?}")))?;
        let gas = outcome.result.tx_gas_used();
        match outcome.result {
            ExecutionResult::Success { output, .. } => Ok((gas, output.into_data())),
            ExecutionResult::Revert { output, .. } => Err(ChainError::Reverted {
                reason: crate::rpc::errors::decode_revert(&output),
                data: output,
            }),
            ExecutionResult::Halt { reason, .. } => {
                Err(ChainError::Other(format!("execution halted: {reason:?}")))
            }
        }
    }
}
