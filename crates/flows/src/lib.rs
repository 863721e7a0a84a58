//! Business flows, one module per flow: each is a resumable `step()` that a
//! job handler in the binary calls, coordinating the store (through the
//! domain's ports), the chain (the transaction manager and the contract
//! bindings of `rwa-chain`) and the domain's rules.
//!
//! A step reads the flow's state, does at most one irreversible thing through
//! an idempotent port (a managed transaction with an idempotency key, a row
//! with a unique key), records it and returns where the flow stands, so a
//! crash between two steps repeats nothing.
//!
//! - [`deployment`]: token deployment (identity registry once per
//!   organization, compliance, token, binding, the lanes' roles).
//! - [`identity`]: investors' wallets carried to the organization's
//!   identity registry in batches.
//! - [`registry`]: the organization's identity registry, deployed by
//!   whichever of the two needs it first.
//! - [`operations`]: issuer operations (mint, burn, freeze, forced
//!   transfer, pause, recovery) carried to the token in batches.
//! - [`compliance`]: a transfer's compliance check (the rules over a
//!   snapshot of the database and the index, decided in one transaction).
//! - [`risk_engine`]: the external risk engine's HTTP connector (timeout,
//!   retries, circuit breaker, `checks.compliance_engine`).
//! - [`settlement`]: approved transfers carried to the token in batches
//!   (`batchAgentTransfer`), each asked of the token (`canTransfer`) first.
//! - [`submit`]: transactions submitted under idempotency keys.

pub mod compliance;
pub mod deployment;
pub mod identity;
pub mod operations;
pub mod registry;
pub mod risk_engine;
pub mod settlement;
pub mod submit;
