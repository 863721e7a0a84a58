//! Implementations of the domain's [`ChainPort`](rwa_domain::chain::ChainPort).
//!
//! - [`devnet`]: the embedded default, a real EVM (revm) in-process with its own
//!   blocks, mempool, fee market and persistence in `DATA_DIR/devnet.db`
//!   (development only).
//! - [`rpc`]: an alloy JSON-RPC adapter to any EVM node, with timeouts, retries,
//!   a circuit breaker and classified node errors.
//!
//! Both also implement [`ChainControl`], the test and operator hooks (snapshots,
//! reorgs, mining, time), so one conformance suite (`tests/conformance.rs`) runs
//! unchanged against the devnet and against anvil.

pub mod control;
pub mod devnet;
pub mod rpc;
pub mod signer;
pub mod txm;

pub use control::ChainControl;
