//! Chain IO: everything rwa needs to talk to an EVM chain, above the domain's
//! [`ChainPort`](rwa_domain::chain::ChainPort). Business flows that use it
//! (token deployment, …) live in `rwa-flows`, not here.
//!
//! - [`rpc`]: the JSON-RPC adapter to any EVM node over HTTP(S) or WebSocket:
//!   per-call timeouts, retries on transient failures only, a circuit breaker,
//!   node errors classified into the domain's `ChainError`, log queries that
//!   halve refused ranges.
//! - [`contracts`]: bindings to the platform's contracts, generated from the
//!   committed artifacts, with their init code, roles, reason codes and a
//!   typed view call ([`contracts::view`]).
//! - [`control`]: [`ChainControl`], the development hooks (snapshots, reorgs,
//!   mining, time) that let one conformance suite (`tests/conformance.rs`) drive
//!   any chain; the RPC adapter maps them to anvil's methods.
//! - [`devnet`]: the embedded revm devnet (Prague), the default chain in
//!   development, persisted in its own SQLite file; the conformance suite's
//!   second implementation.
//! - [`health`]: `checks.chain` (chain id, head, finalized, breaker).
//! - [`signer`]: local keys (hex, encrypted keystore, the generated
//!   development key) behind the domain's `Signer` port.
//! - [`txm`]: the transaction manager (lanes, nonces and attempts stored before
//!   broadcast, fee bumps under a cap, confirmations, reorgs).

pub mod contracts;
pub mod control;
pub mod devnet;
pub mod health;
pub mod rpc;
pub mod signer;
pub mod txm;

pub use control::ChainControl;
