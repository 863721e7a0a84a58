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

pub mod deployment;
