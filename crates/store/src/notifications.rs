//! Organizations' notification preferences
//! ([`NotificationSettingsRepository`]) and their channels' outboxes
//! ([`ChannelOutbox`]): a row of preferences per organization, and a row
//! per channel that is on, with its cursor moved by compare-and-set like a
//! webhook's. A channel turned on starts after the newest event; turned off,
//! its row goes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::notification::{
    Channel, ChannelOutbox, ChannelTarget, EmailPreferences, NotificationSettings,
    NotificationSettingsRepository, WhatsAppPreferences, parse_phone,
};
use rwa_domain::webhook::EventSelector;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult};
use serde_json::json;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    email_to: Option<String>,
    email_events: Option<String>,
    whatsapp_to: Option<String>,
    whatsapp_template: Option<String>,
    whatsapp_language: Option<String>,
    whatsapp_events: Option<String>,
    updated_at: DateTime<Utc>,
}

/// The preferences as stored: JSON arrays of strings.
#[derive(Clone)]
pub(crate) struct Stored {
    email_to: Option<String>,
    email_events: Option<String>,
    whatsapp_to: Option<String>,
    whatsapp_template: Option<String>,
    whatsapp_language: Option<String>,
    whatsapp_events: Option<String>,
}

fn damaged(e: impl std::fmt::Display) -> RepoError {
    RepoError::Internal(format!("stored notification preferences: {e}"))
}

fn strings(raw: &str) -> RepoResult<Vec<String>> {
    serde_json::from_str(raw).map_err(damaged)
}

fn selector(raw: &str) -> RepoResult<EventSelector> {
    EventSelector::parse("events", &strings(raw)?).map_err(|e| damaged(e.message))
}

fn encode(v: Vec<String>) -> String {
    serde_json::to_string(&v).expect("strings serialize")
}

impl Row {
    fn settings(&self) -> RepoResult<NotificationSettings> {
        let email = match (&self.email_to, &self.email_events) {
            (Some(to), Some(events)) => Some(EmailPreferences {
                to: strings(to)?,
                events: selector(events)?,
            }),
            _ => None,
        };
        let whatsapp = match (
            &self.whatsapp_to,
            &self.whatsapp_template,
            &self.whatsapp_language,
            &self.whatsapp_events,
        ) {
            (Some(to), Some(template), Some(language), Some(events)) => Some(WhatsAppPreferences {
                to: strings(to)?
                    .iter()
                    .map(|p| parse_phone(p, "to").map_err(|e| damaged(e.message)))
                    .collect::<RepoResult<_>>()?,
                template: template.clone(),
                language: language.clone(),
                events: selector(events)?,
            }),
            _ => None,
        };
        Ok(NotificationSettings {
            email,
            whatsapp,
            updated_at: Some(self.updated_at),
        })
    }
}

impl Stored {
    fn of(s: &NotificationSettings) -> Stored {
        Stored {
            email_to: s.email.as_ref().map(|e| encode(e.to.clone())),
            email_events: s.email.as_ref().map(|e| encode(e.events.to_strings())),
            whatsapp_to: s
                .whatsapp
                .as_ref()
                .map(|w| encode(w.to.iter().map(|p| p.digits().to_owned()).collect())),
            whatsapp_template: s.whatsapp.as_ref().map(|w| w.template.clone()),
            whatsapp_language: s.whatsapp.as_ref().map(|w| w.language.clone()),
            whatsapp_events: s.whatsapp.as_ref().map(|w| encode(w.events.to_strings())),
        }
    }
}

/// What the audit trail says of preferences (phone numbers only by their
/// last digits: they are personal data).
fn described(s: &NotificationSettings) -> serde_json::Value {
    json!({
        "email": s.email.as_ref().map(|e| json!({
            "to": e.to,
            "events": e.events.to_strings(),
        })),
        "whatsapp": s.whatsapp.as_ref().map(|w| json!({
            "to": w.to.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>(),
            "template": w.template,
            "language": w.language,
            "events": w.events.to_strings(),
        })),
    })
}

#[async_trait]
impl NotificationSettingsRepository for Store {
    async fn get(&self, org: OrgId) -> RepoResult<NotificationSettings> {
        let row = on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid()).await.db())?;
        row.map_or_else(|| Ok(NotificationSettings::default()), |r| r.settings())
    }

    async fn put(
        &self,
        org: OrgId,
        settings: &NotificationSettings,
        actor: &Actor,
    ) -> RepoResult<NotificationSettings> {
        let (stored, actor) = (Stored::of(settings), actor.clone());
        let record = AuditRecord {
            action: "org.notifications_changed",
            target: format!("org:{org}"),
            data: described(settings),
        };
        let on = [
            (Channel::Email, settings.email.is_some()),
            (Channel::WhatsApp, settings.whatsapp.is_some()),
        ];
        in_write_tx!(self, |tx, sql, audit| {
            sql::put(&mut tx, org.as_uuid(), &stored).await.db()?;
            for (channel, on) in on {
                sql::switch(&mut tx, org.as_uuid(), channel.as_str(), on)
                    .await
                    .db()?;
            }
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            sql::get(&mut *tx, org.as_uuid())
                .await
                .db()?
                .ok_or_else(|| RepoError::Internal("notification settings vanished".into()))?
                .settings()
        })
    }
}

#[async_trait]
impl ChannelOutbox for Store {
    async fn system_channel_orgs(&self, channel: Channel) -> RepoResult<Vec<OrgId>> {
        let ids = on_reader!(self, |pool, sql| sql::channel_orgs(pool, channel.as_str())
            .await
            .db())?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }

    async fn system_channel_target(
        &self,
        org: OrgId,
        channel: Channel,
    ) -> RepoResult<Option<ChannelTarget>> {
        let found = on_reader!(self, |pool, sql| {
            match sql::channel(pool, org.as_uuid(), channel.as_str())
                .await
                .db()?
            {
                None => None,
                Some(state) => sql::get(pool, org.as_uuid())
                    .await
                    .db()?
                    .map(|row| (state, row)),
            }
        });
        let Some(((org_name, cursor, attempts, next_attempt_at), row)) = found else {
            return Ok(None);
        };
        Ok(Some(ChannelTarget {
            org_id: org,
            org_name,
            settings: row.settings()?,
            cursor,
            attempts,
            next_attempt_at,
        }))
    }

    async fn system_channel_record(
        &self,
        org: OrgId,
        channel: Channel,
        from: i64,
        through: i64,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> RepoResult<bool> {
        let failure = failure.map(|(e, at)| (e.to_owned(), at));
        in_write_tx!(self, |tx, sql| {
            sql::advance(
                &mut tx,
                org.as_uuid(),
                channel.as_str(),
                from,
                through,
                failure.as_ref(),
            )
            .await
            .db()
        })
    }
}

crate::dialect::statements! {
    use chrono::{DateTime, Utc};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{Row, Stored};

    pub(crate) async fn get<'c, E>(c: E, org: Uuid) -> sqlx::Result<Option<Row>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_as(
            "SELECT email_to, email_events, whatsapp_to, whatsapp_template, whatsapp_language, \
             whatsapp_events, updated_at FROM notification_settings WHERE org_id = $1",
        )
        .bind(org)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn put(c: &mut Conn, org: Uuid, s: &Stored) -> sqlx::Result<()> {
        query(
            "INSERT INTO notification_settings (org_id, email_to, email_events, whatsapp_to, \
             whatsapp_template, whatsapp_language, whatsapp_events, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id) DO UPDATE SET \
             email_to = excluded.email_to, email_events = excluded.email_events, \
             whatsapp_to = excluded.whatsapp_to, whatsapp_template = excluded.whatsapp_template, \
             whatsapp_language = excluded.whatsapp_language, \
             whatsapp_events = excluded.whatsapp_events, updated_at = excluded.updated_at",
        )
        .bind(org)
        .bind(s.email_to.as_deref())
        .bind(s.email_events.as_deref())
        .bind(s.whatsapp_to.as_deref())
        .bind(s.whatsapp_template.as_deref())
        .bind(s.whatsapp_language.as_deref())
        .bind(s.whatsapp_events.as_deref())
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Turns a channel on (starting after the newest numbered event; kept
    /// where it is when already on) or off.
    pub(crate) async fn switch(c: &mut Conn, org: Uuid, channel: &str, on: bool) -> sqlx::Result<()> {
        let statement = if on {
            "INSERT INTO notification_channels (org_id, channel, cursor_seq) \
             VALUES ($1, $2, (SELECT coalesce(max(seq), 0) FROM events)) \
             ON CONFLICT (org_id, channel) DO NOTHING"
        } else {
            "DELETE FROM notification_channels WHERE org_id = $1 AND channel = $2"
        };
        query(statement)
            .bind(org)
            .bind(channel)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn channel_orgs(pool: &Pool, channel: &str) -> sqlx::Result<Vec<Uuid>> {
        query_scalar("SELECT org_id FROM notification_channels WHERE channel = $1 ORDER BY org_id")
            .bind(channel)
            .fetch_all(pool)
            .await
    }

    /// The organization's name, the channel's cursor, attempts and retry time.
    pub(crate) async fn channel(
        pool: &Pool,
        org: Uuid,
        channel: &str,
    ) -> sqlx::Result<Option<(String, i64, i32, Option<DateTime<Utc>>)>> {
        query_as(
            "SELECT o.name, c.cursor_seq, c.attempts, c.next_attempt_at \
             FROM notification_channels c JOIN organizations o ON o.id = c.org_id \
             WHERE c.org_id = $1 AND c.channel = $2",
        )
        .bind(org)
        .bind(channel)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn advance(
        c: &mut Conn,
        org: Uuid,
        channel: &str,
        from: i64,
        through: i64,
        failure: Option<&(String, DateTime<Utc>)>,
    ) -> sqlx::Result<bool> {
        query(
            "UPDATE notification_channels SET cursor_seq = $4, \
             attempts = CASE WHEN $5 IS NULL THEN 0 WHEN $4 > $3 THEN 1 ELSE attempts + 1 END, \
             next_attempt_at = $6, last_error = $5 \
             WHERE org_id = $1 AND channel = $2 AND cursor_seq = $3",
        )
        .bind(org)
        .bind(channel)
        .bind(from)
        .bind(through)
        .bind(failure.map(|f| f.0.as_str()))
        .bind(failure.map(|f| f.1))
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }
}
