//! Storage for rwa on SQLite (the embedded default) or PostgreSQL.
//!
//! This crate owns the database: connection pools, versioned migrations (one set
//! per backend under `migrations/`), and the implementations of the domain's
//! repository ports, one module per concept. Each module carries the SQL of its
//! own tables, written once and compiled for both backends (`dialect.rs` holds
//! the few differences between them), so the two cannot drift apart and a new
//! concept adds a module instead of growing a shared one; one conformance suite
//! (`tests/conformance.rs`) runs unchanged on both.
//!
//! SQLite runs with WAL, `synchronous=NORMAL`, foreign keys and a busy timeout. All
//! writes go through a single writer connection and open their transactions with
//! `BEGIN IMMEDIATE`, so a transaction never fails half-way upgrading a read lock;
//! concurrent write units share a transaction, a savepoint each
//! (`group_commit.rs`); reads use a separate read-only pool. On PostgreSQL every pool connection reads
//! and writes. Audit entries and events are inserted unstamped and stamped
//! after commit by the sequencer (`sequencer.rs`), so no write holds a shared
//! lock until its commit. A `sqlx::Error` never leaves this crate: callers see
//! [`rwa_domain::RepoError`].

mod audit;
mod connect;
mod dialect;
mod error;
mod event_stream;
mod events;
mod group_commit;
mod holdings;
mod idempotency;
mod identity;
mod investors;
mod jobs;
mod key_cache;
mod keys;
mod lease;
mod notifications;
mod onchain;
mod operations;
mod orgs;
mod reconciliation;
mod rule_sets;
mod sanctions;
mod senders;
mod sequencer;
mod sessions;
mod settlement;
mod sync_flag;
mod tokens;
mod transfers;
mod txs;
mod users;
mod watched;
mod webhooks;

pub use connect::{Backend, Store, StoreOptions, sqlite_file};
pub use error::StoreError;
pub use group_commit::GroupCommitStats;
pub use identity::expiry_sweep_job;
pub use operations::maintenance_job;
pub use tokens::{DEPLOYMENT_ATTEMPTS, deployment_job};
