//! Notifications: what the event log says, delivered to the organization's
//! destinations in `seq` order, at least once, each from its own cursor so a
//! slow or dead destination never delays another.
//!
//! - `mail`: e-mail over SMTP (lettre), `templates`: the messages per event.
//! - `whatsapp`: the WhatsApp Business Cloud API connector, behind a breaker.

pub mod mail;
pub mod templates;
pub mod whatsapp;
