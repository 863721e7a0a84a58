//! The pure core of rwa.
//!
//! This crate owns the vocabulary every other crate speaks: identifiers (UUIDv7
//! newtypes), validated values parsed at the edge ([`org::OrgName`],
//! [`role::Role`], [`country::Country`], [`amount::Amount`], [`token::NewToken`],
//! [`investor::NewInvestor`] with the KYC state machine), the sealing of
//! personal data at rest ([`pii`]), the records the service keeps (organizations, API keys, audit
//! entries), and the port traits ([`ports`]) that storage and other adapters
//! implement. It performs no IO: no tokio, no sqlx, no axum, no HTTP client.
//! Adapters hold ports as `Arc<dyn Port>` and only the composition root
//! (`bin/rwa`) chooses the concrete types.

pub mod actor;
pub mod amount;
pub mod api_key;
pub mod audit;
pub mod chain;
pub mod compliance;
pub mod country;
mod country_codes;
pub mod error;
pub mod event;
pub mod event_stream;
pub mod health;
pub mod holding;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod investor;
pub mod jobs;
pub mod network;
pub mod notification;
pub mod onchain;
pub mod operation;
pub mod org;
pub mod page;
pub mod password;
pub mod pii;
pub mod ports;
pub mod role;
pub mod rule_set;
pub mod sanctions;
pub mod session;
pub mod settlement;
pub mod signature;
pub mod token;
pub mod transfer;
pub mod tx;
pub mod user;
pub mod webhook;

pub use actor::Actor;
pub use error::{RepoError, RepoResult, ValidationError};
pub use ids::{ApiKeyId, AuditId, EventId, InvestorId, OrgId, SessionId, TokenId, UserId};
pub use role::Role;
