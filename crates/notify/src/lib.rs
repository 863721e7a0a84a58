//! Notifications: what the event log says, delivered to the organization's
//! destinations in `seq` order, at least once, each from its own cursor so a
//! slow or dead destination never delays another.
//!
//! - `webhook`: one signed HTTP delivery to a registered endpoint, with the
//!   address checked against private ranges at every delivery (SSRF) and no
//!   redirects followed.
//! - `delivery`: the loop that keeps every enabled endpoint's outbox moving
//!   (retries with backoff and jitter, the endpoint disabled after failing
//!   for the configured period), under one lease across processes.
//! - `mail`: e-mail over SMTP (lettre), `templates`: the messages per event,
//!   `channel`: each organization's e-mail and WhatsApp channels, each from
//!   its own cursor.
//! - `whatsapp`: the WhatsApp Business Cloud API connector, behind a breaker.
//! - `stream`: every event published to a RabbitMQ topic exchange with
//!   publisher confirms, from the stream's own cursor.

mod channel;
pub mod delivery;
pub mod mail;
pub mod stream;
pub mod templates;
pub mod webhook;
pub mod whatsapp;
