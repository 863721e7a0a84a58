//! Cross-cutting HTTP behaviour, applied to every route in [`crate::router`]:
//! request ids, logging and metrics, the client's address behind trusted
//! proxies, rate limits, security headers, uniform problem bodies, timeouts
//! and panic recovery.

pub(crate) mod client;
pub(crate) mod observe;
pub(crate) mod problems;
pub(crate) mod rate_limit;
pub(crate) mod security;
