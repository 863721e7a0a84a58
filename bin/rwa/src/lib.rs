//! The composition root of rwa: configuration, telemetry, metrics recorder and
//! the wiring of concrete adapters (`rwa-store`) into the roles (`rwa-api`).
//! The `rwa` binary (`main.rs`) is a thin CLI over this library, and the
//! integration tests spawn that binary or [`app::App`] on port 0.

pub mod app;
pub mod background;
pub mod cli;
pub mod commands;
pub mod config;
pub mod handlers;
pub mod indexer_verify;
pub mod metrics;
pub mod secrets;
pub mod signers;
pub mod single_process;
pub mod telemetry;
pub mod tls;
