//! The Ethereum state root of the devnet's head: the Merkle-Patricia root over
//! every non-empty account (EIP-161), keyed by the hash of its address, each
//! with the root of its own storage trie.
//!
//! Hashing every address and slot and rebuilding every storage trie at every
//! block would cost more than executing it, so [`StateTrie`] mirrors the head
//! with the keys already hashed and in trie order, and per account its storage
//! root; a block updates only the accounts it changed and recomputes only the
//! storage roots of accounts whose storage it wrote. The account trie itself
//! is rehashed from the sorted leaves each block. When the head is not the
//! block the mirror follows (a rewind, a restart) it is rebuilt from the
//! head's state.

use std::collections::{BTreeMap, HashMap};

use alloy::consensus::TrieAccount;
use alloy::consensus::constants::{EMPTY_ROOT_HASH, KECCAK_EMPTY};
use alloy::consensus::proofs::{state_root, storage_root};
use alloy::primitives::{Address, B256, U256, keccak256};
use revm::DatabaseRef;
use revm::database::AccountState;

use super::state::Db;
use super::storage::StateDiff;

/// The head's accounts and storage in trie form.
#[derive(Clone, Debug, Default)]
pub(crate) struct StateTrie {
    /// Hash of the block whose state this mirrors.
    block: B256,
    /// Non-empty accounts by hashed address.
    accounts: BTreeMap<B256, TrieAccount>,
    /// Non-zero storage by account, then hashed slot.
    storage: HashMap<Address, BTreeMap<B256, U256>>,
}

fn hashed_slot(slot: &U256) -> B256 {
    keccak256(slot.to_be_bytes::<32>())
}

/// Whether EIP-161 leaves the account out of the state.
fn is_empty(account: &TrieAccount) -> bool {
    account.nonce == 0 && account.balance.is_zero() && account.code_hash == KECCAK_EMPTY
}

impl StateTrie {
    /// The trie of a whole state, the state after block `block`.
    pub(crate) fn build(db: &Db, block: B256) -> StateTrie {
        let mut trie = StateTrie {
            block,
            ..StateTrie::default()
        };
        for (address, account) in &db.cache.accounts {
            if matches!(account.account_state, AccountState::NotExisting) {
                continue;
            }
            let slots: BTreeMap<B256, U256> = account
                .storage
                .iter()
                .filter(|(_, value)| !value.is_zero())
                .map(|(slot, value)| (hashed_slot(slot), *value))
                .collect();
            let entry = TrieAccount {
                nonce: account.info.nonce,
                balance: account.info.balance,
                storage_root: storage_root(slots.iter().map(|(k, v)| (*k, *v))),
                code_hash: account.info.code_hash,
            };
            if !slots.is_empty() {
                trie.storage.insert(*address, slots);
            }
            if !is_empty(&entry) {
                trie.accounts.insert(keccak256(address), entry);
            }
        }
        trie
    }

    /// The block whose state this mirrors.
    pub(crate) fn block(&self) -> B256 {
        self.block
    }

    /// Records that the trie now mirrors block `block` (known only once the
    /// header, which holds the root, is hashed).
    pub(crate) fn follow(&mut self, block: B256) {
        self.block = block;
    }

    /// Takes in what a block changed; `db` is the state after it. Until
    /// [`StateTrie::follow`] names that block the trie follows none.
    pub(crate) fn apply(&mut self, diff: &StateDiff, db: &Db) {
        self.block = B256::ZERO;
        for (address, change) in diff {
            let key = keccak256(address);
            let storage_root = if change.storage.is_empty() {
                self.accounts
                    .get(&key)
                    .map_or(EMPTY_ROOT_HASH, |a| a.storage_root)
            } else {
                let slots = self.storage.entry(*address).or_default();
                for (slot, value) in &change.storage {
                    if value.is_zero() {
                        slots.remove(&hashed_slot(slot));
                    } else {
                        slots.insert(hashed_slot(slot), *value);
                    }
                }
                let root = storage_root(slots.iter().map(|(k, v)| (*k, *v)));
                if slots.is_empty() {
                    self.storage.remove(address);
                }
                root
            };
            let code_hash = db
                .basic_ref(*address)
                .ok()
                .flatten()
                .map_or(KECCAK_EMPTY, |info| info.code_hash);
            let entry = TrieAccount {
                nonce: change.nonce,
                balance: change.balance,
                storage_root,
                code_hash,
            };
            if is_empty(&entry) {
                self.accounts.remove(&key);
            } else {
                self.accounts.insert(key, entry);
            }
        }
    }

    /// The state root.
    pub(crate) fn root(&self) -> B256 {
        state_root(self.accounts.iter().map(|(k, a)| (*k, *a)))
    }
}
