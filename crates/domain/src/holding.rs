//! Holdings as the indexer derives them from on-chain events: what each
//! event does to a wallet's balance, its frozen part and its frozen flag.
//! Pure: the store loads the holdings an event batch touches, applies the
//! effects in chain order and writes the results, in the batch's
//! transaction.
//!
//! Balances move with transfers only (a forced transfer and a recovery
//! emit the `Transfer` that moves them); ERC-721 ids are balances of 0 or 1
//! per id, ERC-1155 balances are per id; freezes are the platform token's.

use alloy_primitives::{Address, U256};

use crate::onchain::EventKind;

/// Whose holding, of what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HoldingKey {
    /// The contract.
    pub contract: Address,
    /// The token id (`None` for a fungible token).
    pub token_id: Option<U256>,
    /// The wallet.
    pub wallet: Address,
}

/// A wallet's holding of one contract (and id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// Balance, base units.
    pub balance: U256,
    /// Part of the balance frozen.
    pub frozen: U256,
    /// The whole wallet frozen.
    pub wallet_frozen: bool,
}

/// One change an event makes to one holding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Received.
    Credit(U256),
    /// Sent.
    Debit(U256),
    /// Part frozen.
    Freeze(U256),
    /// Part released.
    Unfreeze(U256),
    /// The wallet frozen or released.
    WalletFrozen(bool),
}

impl Holding {
    /// Applies `effect`; `false` when it took more than there was (a debit
    /// beyond the balance, a release beyond the frozen part), in which case
    /// the amount is clamped at zero and the caller counts it.
    pub fn apply(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Credit(v) => {
                self.balance = self.balance.saturating_add(v);
                true
            }
            Effect::Debit(v) => take(&mut self.balance, v),
            Effect::Freeze(v) => {
                self.frozen = self.frozen.saturating_add(v);
                true
            }
            Effect::Unfreeze(v) => take(&mut self.frozen, v),
            Effect::WalletFrozen(f) => {
                self.wallet_frozen = f;
                true
            }
        }
    }

    /// Nothing held, nothing frozen: the holding need not be listed.
    pub fn is_empty(&self) -> bool {
        self.balance.is_zero() && self.frozen.is_zero() && !self.wallet_frozen
    }
}

fn take(from: &mut U256, v: U256) -> bool {
    match from.checked_sub(v) {
        Some(left) => {
            *from = left;
            true
        }
        None => {
            *from = U256::ZERO;
            false
        }
    }
}

/// What an event of `contract` does to holdings, in order.
pub fn effects(contract: Address, kind: &EventKind) -> Vec<(HoldingKey, Effect)> {
    let key = |token_id, wallet| HoldingKey {
        contract,
        token_id,
        wallet,
    };
    let mut out = Vec::new();
    let mut moved = |token_id: Option<U256>, from: Address, to: Address, v: U256| {
        if from != Address::ZERO {
            out.push((key(token_id, from), Effect::Debit(v)));
        }
        if to != Address::ZERO {
            out.push((key(token_id, to), Effect::Credit(v)));
        }
    };
    match kind {
        EventKind::Erc20Transfer { from, to, value } => moved(None, *from, *to, *value),
        EventKind::Erc721Transfer { from, to, token_id } => {
            moved(Some(*token_id), *from, *to, U256::from(1u8))
        }
        EventKind::Erc1155Transfer {
            from,
            to,
            ids,
            values,
            ..
        } => {
            for (id, v) in ids.iter().zip(values) {
                moved(Some(*id), *from, *to, *v);
            }
        }
        EventKind::AddressFrozen { wallet, frozen } => {
            out.push((key(None, *wallet), Effect::WalletFrozen(*frozen)));
        }
        EventKind::TokensFrozen { wallet, amount } => {
            out.push((key(None, *wallet), Effect::Freeze(*amount)));
        }
        EventKind::TokensUnfrozen { wallet, amount } => {
            out.push((key(None, *wallet), Effect::Unfreeze(*amount)));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(n: u8) -> Address {
        Address::repeat_byte(n)
    }

    #[test]
    fn a_transfer_debits_the_sender_and_credits_the_receiver_mints_and_burns_one_side() {
        let c = a(9);
        let t = |from, to| EventKind::Erc20Transfer {
            from,
            to,
            value: U256::from(5u8),
        };
        assert_eq!(effects(c, &t(a(1), a(2))).len(), 2);
        let mint = effects(c, &t(Address::ZERO, a(2)));
        assert_eq!(mint.len(), 1);
        assert_eq!(mint[0].1, Effect::Credit(U256::from(5u8)));
        let burn = effects(c, &t(a(1), Address::ZERO));
        assert_eq!(burn[0].1, Effect::Debit(U256::from(5u8)));
    }

    #[test]
    fn an_erc1155_batch_moves_each_id_by_its_value() {
        let e = EventKind::Erc1155Transfer {
            operator: a(7),
            from: a(1),
            to: a(2),
            ids: vec![U256::from(3u8), U256::from(4u8)],
            values: vec![U256::from(10u8), U256::from(20u8)],
        };
        let fx = effects(a(9), &e);
        assert_eq!(fx.len(), 4);
        assert_eq!(fx[3].0.token_id, Some(U256::from(4u8)));
        assert_eq!(fx[3].1, Effect::Credit(U256::from(20u8)));
    }

    #[test]
    fn an_overdraft_is_clamped_and_reported() {
        let mut h = Holding::default();
        assert!(h.apply(Effect::Credit(U256::from(3u8))));
        assert!(!h.apply(Effect::Debit(U256::from(4u8))));
        assert_eq!(h.balance, U256::ZERO);
        assert!(h.apply(Effect::WalletFrozen(true)));
        assert!(!h.is_empty());
    }
}
