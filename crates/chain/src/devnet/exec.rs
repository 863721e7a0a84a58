//! Free helpers of block production: the revm transaction environment,
//! intrinsic gas, header conversion, and the per-block state changes (record
//! while executing, replay when restoring or rewinding).

use alloy::consensus::{Header, Transaction, TxEnvelope};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use revm::context::TxEnv;
use revm::state::EvmState;
use rwa_domain::chain::BlockHeader;

use super::state::{Db, Pooled};
use super::storage::StateDiff;

pub(crate) fn tx_env(p: &Pooled, chain_id: u64) -> TxEnv {
    let tx = &p.tx;
    TxEnv {
        tx_type: tx.tx_type() as u8,
        caller: p.sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: Some(chain_id),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        ..TxEnv::default()
    }
}

/// Intrinsic gas of a transaction under Prague: calldata, creation and
/// init-code words, access list, EIP-7702 authorizations, and never below the
/// EIP-7623 calldata floor.
pub(crate) fn intrinsic_gas(tx: &TxEnvelope) -> u64 {
    let data = tx.input();
    let zeros = data.iter().filter(|b| **b == 0).count() as u64;
    let mut gas = 21_000 + zeros * 4 + (data.len() as u64 - zeros) * 16;
    if tx.kind().is_create() {
        gas += 32_000 + (data.len() as u64).div_ceil(32) * 2;
    }
    if let Some(list) = tx.access_list() {
        for item in list.iter() {
            gas += 2_400 + item.storage_keys.len() as u64 * 1_900;
        }
    }
    if let Some(authorizations) = tx.authorization_list() {
        gas += 25_000 * authorizations.len() as u64;
    }
    let tokens = zeros + (data.len() as u64 - zeros) * 4;
    gas.max(21_000 + tokens * 10)
}

pub(crate) fn domain_header(h: &Header) -> BlockHeader {
    BlockHeader {
        hash: h.hash_slow(),
        parent_hash: h.parent_hash,
        number: h.number,
        timestamp: h.timestamp,
        base_fee_per_gas: h.base_fee_per_gas.map(u128::from),
        gas_limit: h.gas_limit,
        gas_used: h.gas_used,
        logs_bloom: h.logs_bloom,
    }
}

/// Folds one transaction's state changes into its block's diff.
pub(crate) fn record_changes(diff: &mut StateDiff, state: &EvmState) {
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        let entry = diff.entry(*address).or_default();
        entry.balance = account.info.balance;
        entry.nonce = account.info.nonce;
        if account.is_created()
            && let Some(code) = &account.info.code
            && !code.is_empty()
        {
            entry.code = Some(code.original_bytes());
        }
        for (slot, value) in &account.storage {
            if value.is_changed() {
                match entry.storage.iter_mut().find(|(s, _)| s == slot) {
                    Some(existing) => existing.1 = value.present_value,
                    None => entry.storage.push((*slot, value.present_value)),
                }
            }
        }
    }
}

/// Applies one block's diff to a state.
pub(crate) fn apply_diff(db: &mut Db, diff: &StateDiff) {
    for (address, change) in diff {
        let mut info = db.basic_ref(*address).ok().flatten().unwrap_or_default();
        info.balance = change.balance;
        info.nonce = change.nonce;
        if let Some(code) = &change.code {
            let code = Bytecode::new_raw(code.clone());
            info.code_hash = code.hash_slow();
            info.code = Some(code);
        }
        db.insert_account_info(*address, info);
        for (slot, value) in &change.storage {
            db.insert_account_storage(*address, *slot, *value)
                .expect("an in-memory state accepts storage");
        }
    }
}
