//! Reading the state after an older block. The devnet keeps the whole state
//! in memory for the last [`KEPT_STATES`](super::state::KEPT_STATES) blocks
//! only; for a block before those, the oldest kept state is wound back over
//! what the blocks in between changed, using the per-block diffs every block
//! stores anyway. This is what lets `eth_call` and the nonce reach every block
//! without keeping a copy of the state per block.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::{Address, Bytes, U256};
use revm::DatabaseRef;
use revm::bytecode::Bytecode;
use rwa_domain::chain::{ChainError, ChainResult};

use super::state::{ChainState, Db};

impl ChainState {
    /// The state after block `number`: kept in memory for the last
    /// [`KEPT_STATES`](super::state::KEPT_STATES) blocks; for an older block, the oldest kept state
    /// wound back over what the blocks in between changed.
    pub(crate) fn state_at(&self, number: u64) -> ChainResult<Cow<'_, Db>> {
        let at = usize::try_from(number).unwrap_or(usize::MAX);
        let block = self
            .blocks
            .get(at)
            .ok_or_else(|| ChainError::Other(format!("unknown block {number}")))?;
        if let Some(db) = &block.state {
            return Ok(Cow::Borrowed(db));
        }
        let (kept, base) = self.blocks[at + 1..]
            .iter()
            .enumerate()
            .find_map(|(i, b)| b.state.as_ref().map(|db| (at + 1 + i, db)))
            .expect("the head's state is always kept");
        // Everything blocks at+1..=kept changed, which must read as it was.
        let mut changed: BTreeMap<Address, (bool, BTreeSet<U256>)> = BTreeMap::new();
        for b in &self.blocks[at + 1..=kept] {
            for (address, change) in &b.diff {
                let (code, slots) = changed.entry(*address).or_default();
                *code |= change.code.is_some();
                slots.extend(change.storage.iter().map(|(slot, _)| *slot));
            }
        }
        let mut db = base.clone();
        for (address, (code_changed, slots)) in changed {
            self.wind_back(&mut db, address, code_changed, slots, at);
        }
        Ok(Cow::Owned(db))
    }

    /// Sets `address` in `db` to what it was after block `at`: balance and
    /// nonce from the last block up to `at` that changed them (no such block:
    /// the account did not exist), the code when a later block set it, and
    /// each of `slots` from the last block up to `at` that wrote it (else zero).
    fn wind_back(
        &self,
        db: &mut Db,
        address: Address,
        code_changed: bool,
        mut slots: BTreeSet<U256>,
        at: usize,
    ) {
        let mut account: Option<(U256, u64)> = None;
        let mut code: Option<Option<&Bytes>> = (!code_changed).then_some(None);
        let mut values: Vec<(U256, U256)> = Vec::with_capacity(slots.len());
        for b in self.blocks[..=at].iter().rev() {
            let Some(change) = b.diff.get(&address) else {
                continue;
            };
            account.get_or_insert((change.balance, change.nonce));
            if code.is_none() && change.code.is_some() {
                code = Some(change.code.as_ref());
            }
            for (slot, value) in &change.storage {
                if slots.remove(slot) {
                    values.push((*slot, *value));
                }
            }
            if code.is_some() && slots.is_empty() {
                break;
            }
        }
        let Some((balance, nonce)) = account else {
            db.cache.accounts.remove(&address);
            return;
        };
        let mut info = db.basic_ref(address).ok().flatten().unwrap_or_default();
        info.balance = balance;
        info.nonce = nonce;
        if code_changed {
            let code = code
                .flatten()
                .map_or_else(Bytecode::default, |c| Bytecode::new_raw(c.clone()));
            info.code_hash = code.hash_slow();
            info.code = Some(code);
        }
        db.insert_account_info(address, info);
        let never_written = slots.into_iter().map(|slot| (slot, U256::ZERO));
        for (slot, value) in values.into_iter().chain(never_written) {
            db.insert_account_storage(address, slot, value)
                .expect("an in-memory state accepts storage");
        }
    }
}
