//! An organization's notification preferences: which event types go to
//! e-mail and to whom. Like a webhook, the e-mail channel has its own
//! cursor over the event log, so it receives its events at least once, in
//! `seq` order, without delaying any other destination. A webhook turned
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

/// An organization's preferences (`None`: that channel is off).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotificationSettings {
    /// E-mail.
    pub email: Option<EmailPreferences>,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// What the e-mail channel needs of an organization.
#[derive(Clone, Debug)]
pub struct EmailTarget {
    /// The organization.
    pub org_id: OrgId,
    /// Its name, for the messages.
    pub org_name: String,
    /// Its preferences.
    pub email: EmailPreferences,
    /// Every event up to this `seq` was mailed or not selected.
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

/// The e-mail channel's side, across organizations.
#[async_trait]
pub trait EmailOutbox: Send + Sync {
    /// Organizations whose e-mail is on.
    async fn system_email_orgs(&self) -> RepoResult<Vec<OrgId>>;
    /// One organization's e-mail channel; `None` when it is off.
    async fn system_email_target(&self, org: OrgId) -> RepoResult<Option<EmailTarget>>;
    /// Moves the cursor from `from` to `through` (compare-and-set); with a
    /// failure, also counts the attempt and sets the retry time.
    async fn system_email_record(
        &self,
        org: OrgId,
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
