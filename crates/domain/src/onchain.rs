//! What the indexer reads from the chain: every log of a followed contract,
//! decoded into an [`OnchainEvent`] (token standards' transfers, the
//! platform's token and registry events), or kept as
//! [`EventKind::Undecodable`] with the reason, so no log is silently
//! skipped. An event is identified by where it is, `(chain_id, block_hash,
//! log_index)`, which a reorg changes.

use alloy_primitives::{Address, B256, U256};
use serde::Serialize;

/// The token standard of a followed contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Standard {
    /// Fungible balances.
    Erc20,
    /// One owner per token id.
    Erc721,
    /// Balances per token id.
    Erc1155,
}

impl Standard {
    /// The stored and displayed name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Standard::Erc20 => "erc20",
            Standard::Erc721 => "erc721",
            Standard::Erc1155 => "erc1155",
        }
    }
}

/// A decoded log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// ERC-20 `Transfer` (mint from zero, burn to zero).
    Erc20Transfer {
        /// Sender (zero for a mint).
        from: Address,
        /// Receiver (zero for a burn).
        to: Address,
        /// Base units.
        value: U256,
    },
    /// ERC-721 `Transfer` (the id is indexed: four topics).
    Erc721Transfer {
        /// Previous owner (zero for a mint).
        from: Address,
        /// New owner (zero for a burn).
        to: Address,
        /// The token id.
        token_id: U256,
    },
    /// ERC-1155 `TransferSingle`, or one pair of a `TransferBatch`.
    Erc1155Transfer {
        /// Who moved them.
        operator: Address,
        /// Sender (zero for a mint).
        from: Address,
        /// Receiver (zero for a burn).
        to: Address,
        /// Token ids and values, pairwise.
        ids: Vec<U256>,
        /// Values, one per id.
        values: Vec<U256>,
    },
    /// A whole wallet frozen or unfrozen.
    AddressFrozen {
        /// The wallet.
        wallet: Address,
        /// Frozen or not.
        frozen: bool,
    },
    /// Part of a wallet's balance frozen.
    TokensFrozen {
        /// The wallet.
        wallet: Address,
        /// Base units.
        amount: U256,
    },
    /// Part of a wallet's frozen balance released.
    TokensUnfrozen {
        /// The wallet.
        wallet: Address,
        /// Base units.
        amount: U256,
    },
    /// Transfers stopped.
    Paused,
    /// Transfers resumed.
    Unpaused,
    /// The issuer moved tokens (the balances move with the `Transfer` it
    /// emits too).
    ForcedTransfer {
        /// Sender.
        from: Address,
        /// Receiver.
        to: Address,
        /// Base units.
        amount: U256,
    },
    /// A lost wallet's holding moved to a new wallet of the same investor.
    Recovery {
        /// The lost wallet.
        lost: Address,
        /// The new wallet.
        new: Address,
        /// The investor's registry id.
        investor: B256,
    },
    /// A wallet registered (or updated) in an identity registry.
    IdentityRegistered {
        /// The wallet.
        wallet: Address,
        /// The investor's registry id.
        investor: B256,
        /// ISO 3166 numeric country.
        country: u16,
        /// Verified until (unix seconds).
        expires_at: u64,
        /// An update of an existing entry.
        update: bool,
    },
    /// A wallet removed from an identity registry.
    IdentityRemoved {
        /// The wallet.
        wallet: Address,
        /// The investor's registry id.
        investor: B256,
    },
    /// A compliance rule changed or a wallet's lockup was set; the name of
    /// the event and its decoded fields, for the record.
    ComplianceChanged {
        /// The event's name (`LockupSet`, `MaxHoldersSet`, ...).
        name: String,
        /// Its fields.
        fields: Vec<(String, String)>,
    },
    /// An event the platform does not act on (role grants, approvals,
    /// ownership), named for the record.
    Ignored {
        /// The event's name.
        name: String,
    },
    /// A log that could not be decoded, with why.
    Undecodable {
        /// What was wrong.
        reason: String,
    },
}

/// A log where it was found, decoded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OnchainEvent {
    /// The chain.
    pub chain_id: u64,
    /// The block's height.
    pub block_number: u64,
    /// The block's hash (a reorg changes it).
    pub block_hash: B256,
    /// The transaction.
    pub tx_hash: B256,
    /// The log's index in its block.
    pub log_index: u64,
    /// The emitting contract.
    pub contract: Address,
    /// What it says.
    pub kind: EventKind,
}
