//! The indexer: follows the chain and keeps holders and balances true to it
//! through reorgs (DESIGN.md, "Indexer").
//!
//! - [`decode`]: every log of a followed contract turned into an
//!   [`rwa_domain::onchain::OnchainEvent`] (ERC-20, ERC-721 and ERC-1155
//!   transfers, the platform's token, registry and compliance events), or
//!   kept as undecodable with the reason.
//! - [`window`]: the unfinalized window of blocks with the reorg, ancestor,
//!   finality and lagging-node decisions (pure).
//! - [`fetch`]: ranged, pipelined, adaptive `eth_getLogs` for backfill.
//! - [`follower`]: the resumable step (backfill, catch-up of newly known
//!   contracts, live blocks, rewinds, halting below finality); the store
//!   writes each batch's events, derived holdings and position in one
//!   transaction (`rwa_store`'s `onchain.rs` and `holdings.rs`).
//! - [`service`]: the loop under the chain's lease (one process per chain
//!   on PostgreSQL, a standby takes over) and `checks.indexer`.
//! - [`reconcile`]: settled operations checked against the indexed events.
//! - [`verify`]: every indexed holding compared with the chain's own
//!   answer at the same block.

pub mod decode;
pub mod fetch;
pub mod follower;
pub mod reconcile;
pub mod service;
pub mod verify;
pub mod window;
