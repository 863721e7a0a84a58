//! Test support shared by every crate's integration tests; never a dependency of
//! production code.
//!
//! - [`TestDatabase`]: a throw-away database on the backend named by
//!   `RWA_TEST_DATABASE` (`sqlite`, the default, or `postgres`), so one suite runs
//!   unchanged on both. PostgreSQL databases are created on the server at
//!   `RWA_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//!   and named `rwa_test_*`; the test script drops leftovers before each run.
//! - [`TcpProxy`]: a proxy in front of a real service that a test can cut (every
//!   connection closed, new ones refused) and restore, to simulate an outage
//!   without restarting anything.
//! - [`Anvil`]: a real anvil node on a free port, for the JSON-RPC chain tests.
//! - [`RpcProxy`]: a JSON-RPC proxy in front of a node that can serve a stale
//!   head (a lagging replica) while answering everything else from the node.
//! - [`SmtpServer`]: a real SMTP server (aiosmtpd) on a free port, storing what
//!   it receives in a maildir the test reads back.

pub mod anvil;
mod database;
mod ports;
mod proxy;
mod rpc_proxy;
mod smtp;

pub use anvil::Anvil;
pub use database::{TestBackend, TestDatabase, postgres_admin_url};
pub use proxy::TcpProxy;
pub use rpc_proxy::RpcProxy;
pub use smtp::SmtpServer;
