//! Cross-cutting HTTP behaviour, applied to every route in [`crate::router`]:
//! request ids, logging and metrics, security headers, uniform problem bodies,
//! timeouts and panic recovery.

pub(crate) mod observe;
pub(crate) mod problems;
pub(crate) mod security;
