//! The indexer: follows the chain and keeps holders and balances true to it
//! through reorgs (DESIGN.md, "Indexer").
//!
//! Built so far, both pure and tested: [`decode`], every log of a followed
//! contract turned into an [`rwa_domain::onchain::OnchainEvent`] — ERC-20,
//! ERC-721 and ERC-1155 transfers, the platform's token, registry and
//! compliance events — or kept as undecodable with the reason; and
//! [`window`], the unfinalized window of blocks with the reorg, ancestor,
//! finality and lagging-node decisions. The follower that fetches blocks
//! and logs (backfill, live mode), its storage and the projections are the
//! rest of the open indexer issue; nothing runs this crate yet.

pub mod decode;
pub mod window;
