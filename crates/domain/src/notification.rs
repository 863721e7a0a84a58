//! An organization's notification preferences: which event types go to
//! e-mail and to WhatsApp, and to whom. Like a webhook, each channel has its
//! own cursor over the event log, so it receives its events at least once,
//! in `seq` order, without delaying any other destination. A webhook turned
//! off for failing is always mailed to the recipients, whatever they select.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::webhook::{EventSelector, WEBHOOK_DISABLED};
use crate::{Actor, OrgId, RepoResult, ValidationError};

/// Most e-mail recipients per organization.
pub const RECIPIENTS_MAX: usize = 20;

/// Where and what e-mail goes.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailPreferences {
    /// Recipients' addresses.
    pub to: Vec<String>,
    /// Event types mailed.
    pub events: EventSelector,
}

impl EmailPreferences {
    /// Whether an event of type `kind` is mailed.
    pub fn selects(&self, kind: &str) -> bool {
        kind == WEBHOOK_DISABLED || self.events.matches(kind)
    }
}

/// 1 to 20 addresses, each as [`crate::investor::parse_email`] accepts
/// them, errors naming `field[i]`;
/// duplicates (ignoring case) dropped.
pub fn parse_recipients(field: &str, raw: &[String]) -> Result<Vec<String>, ValidationError> {
    if raw.is_empty() || raw.len() > RECIPIENTS_MAX {
        return Err(ValidationError::new(
            field,
            format!("must list 1 to {RECIPIENTS_MAX} addresses"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, address) in raw.iter().enumerate() {
        // The same rule as investors' addresses, which the API states as a
        // pattern.
        let parsed = crate::investor::parse_email(address, &format!("{field}[{i}]"))?;
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&parsed)) {
            out.push(parsed);
        }
    }
    Ok(out)
}

/// A WhatsApp recipient's phone: an E.164 number stored as its digits without `+`
/// (8 to 15 digits, country code first), the form the Cloud API's `to` takes.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// The digits, without `+` (`4915112345678`).
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The number in E.164 form (`+4915112345678`).
    pub fn e164(&self) -> String {
        format!("+{}", self.0)
    }
}

impl std::fmt::Debug for Phone {
    /// Only the last four digits: a phone number is personal data and Debug
    /// output ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.0.len().saturating_sub(4);
        write!(f, "Phone(+{}{})", "*".repeat(shown), &self.0[shown..])
    }
}

/// Parses a phone number given as `+4915112345678` or `4915112345678`
/// (surrounding spaces ignored); `field` names the input in the error.
pub fn parse_phone(raw: &str, field: &str) -> Result<Phone, ValidationError> {
    let trimmed = raw.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValidationError::new(
            field,
            "must be a phone number in international form, digits only with an optional leading +, such as +4915112345678",
        ));
    }
    if digits.starts_with('0') {
        return Err(ValidationError::new(
            field,
            "must start with the country code, not with 0",
        ));
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(ValidationError::new(
            field,
            "must have 8 to 15 digits, country code included",
        ));
    }
    Ok(Phone(digits.to_owned()))
}

/// WhatsApp: recipients, the approved message template and its language,
/// and the event types sent. The template gets three body parameters: the
/// organization's name, the event type, and a one-line summary.
#[derive(Clone, Debug, PartialEq)]
pub struct WhatsAppPreferences {
    /// Recipients.
    pub to: Vec<Phone>,
    /// The template's name as approved in WhatsApp Business.
    pub template: String,
    /// Its language code (`en`, `en_US`).
    pub language: String,
    /// Event types sent.
    pub events: EventSelector,
}

/// A template name: lower-case letters, digits and `_`, 1 to 512.
pub fn parse_template(field: &str, raw: &str) -> Result<String, ValidationError> {
    if raw.is_empty()
        || raw.len() > 512
        || !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(ValidationError::new(
            field,
            "must be 1 to 512 lower-case letters, digits or _ (the template's name)",
        ));
    }
    Ok(raw.to_owned())
}

/// A language code: `en` or `en_US`.
pub fn parse_language(field: &str, raw: &str) -> Result<String, ValidationError> {
    let ok = match raw.split_once('_') {
        None => (2..=3).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_lowercase()),
        Some((lang, region)) => {
            (2..=3).contains(&lang.len())
                && lang.bytes().all(|b| b.is_ascii_lowercase())
                && region.len() == 2
                && region.bytes().all(|b| b.is_ascii_uppercase())
        }
    };
    if !ok {
        return Err(ValidationError::new(
            field,
            "must be a language code such as en or en_US",
        ));
    }
    Ok(raw.to_owned())
}

/// A notification channel with a cursor of its own per organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// E-mail over SMTP.
    Email,
    /// WhatsApp Business Cloud API.
    WhatsApp,
}

impl Channel {
    /// `email` or `whatsapp`, as stored.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::WhatsApp => "whatsapp",
        }
    }
}

/// An organization's preferences (`None`: that channel is off).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotificationSettings {
    /// E-mail.
    pub email: Option<EmailPreferences>,
    /// WhatsApp.
    pub whatsapp: Option<WhatsAppPreferences>,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl NotificationSettings {
    /// Whether `channel` sends an event of type `kind`.
    pub fn selects(&self, channel: Channel, kind: &str) -> bool {
        match channel {
            Channel::Email => self.email.as_ref().is_some_and(|e| e.selects(kind)),
            Channel::WhatsApp => self
                .whatsapp
                .as_ref()
                .is_some_and(|w| w.events.matches(kind)),
        }
    }
}

/// What a channel's task needs of an organization.
#[derive(Clone, Debug)]
pub struct ChannelTarget {
    /// The organization.
    pub org_id: OrgId,
    /// Its name, for the messages.
    pub org_name: String,
    /// Its preferences (the channel's are set).
    pub settings: NotificationSettings,
    /// Every event up to this `seq` was sent or not selected.
    pub cursor: i64,
    /// Failed attempts at the event after the cursor.
    pub attempts: i32,
    /// When to try it again.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The organization's side.
#[async_trait]
pub trait NotificationSettingsRepository: Send + Sync {
    /// The preferences.
    async fn get(&self, org: OrgId) -> RepoResult<NotificationSettings>;
    /// Replaces them; a channel turned on starts after the newest event.
    /// Audited.
    async fn put(
        &self,
        org: OrgId,
        settings: &NotificationSettings,
        actor: &Actor,
    ) -> RepoResult<NotificationSettings>;
}

/// The channels' side, across organizations.
#[async_trait]
pub trait ChannelOutbox: Send + Sync {
    /// Organizations with `channel` on.
    async fn system_channel_orgs(&self, channel: Channel) -> RepoResult<Vec<OrgId>>;
    /// One organization's channel; `None` when it is off.
    async fn system_channel_target(
        &self,
        org: OrgId,
        channel: Channel,
    ) -> RepoResult<Option<ChannelTarget>>;
    /// Moves the cursor from `from` to `through` (compare-and-set); with a
    /// failure, also counts the attempt and sets the retry time.
    async fn system_channel_record(
        &self,
        org: OrgId,
        channel: Channel,
        from: i64,
        through: i64,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> RepoResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recipients_are_addresses_without_duplicates() {
        assert_eq!(
            parse_recipients(
                "email.to",
                &list(&["ops@acme.example", "OPS@ACME.example", "cfo@acme.example"])
            )
            .unwrap(),
            ["ops@acme.example", "cfo@acme.example"]
        );
        assert_eq!(
            parse_recipients("email.to", &[]).unwrap_err().field,
            "email.to"
        );
        assert_eq!(
            parse_recipients(
                "email.to",
                &list(&["ops@acme.example", "Ops <ops@acme.example>"])
            )
            .unwrap_err()
            .field,
            "email.to[1]"
        );
        assert!(parse_recipients("email.to", &list(&["no-at-sign"])).is_err());
    }

    #[test]
    fn templates_and_languages_are_checked() {
        assert!(parse_template("t", "transfer_update_1").is_ok());
        assert!(parse_template("t", "Transfer").is_err());
        assert!(parse_language("l", "en_US").is_ok() && parse_language("l", "pt").is_ok());
        assert!(parse_language("l", "en-us").is_err() && parse_language("l", "EN").is_err());
    }

    #[test]
    fn a_disabled_webhook_is_always_mailed() {
        let prefs = EmailPreferences {
            to: list(&["ops@acme.example"]),
            events: EventSelector::parse("events", &list(&["transfer.settled"])).unwrap(),
        };
        assert!(prefs.selects("transfer.settled"));
        assert!(prefs.selects(WEBHOOK_DISABLED));
        assert!(!prefs.selects("transfer.rejected"));
    }
}
