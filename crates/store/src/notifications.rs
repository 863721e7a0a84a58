//! Organizations' notification preferences
//! ([`NotificationSettingsRepository`]) and the e-mail channel's outbox
//! ([`EmailOutbox`]): one row per organization, with the channel's cursor
//! moved by compare-and-set like a webhook's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::notification::{
    EmailOutbox, EmailPreferences, EmailTarget, NotificationSettings,
    NotificationSettingsRepository,
};
use rwa_domain::webhook::EventSelector;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    org_id: Uuid,
    email_to: Option<String>,
    email_events: Option<String>,
    email_cursor: i64,
    email_attempts: i32,
    email_next_attempt_at: Option<DateTime<Utc>>,
    updated_at: DateTime<Utc>,
    org_name: String,
}

impl Row {
    fn email(&self) -> RepoResult<Option<EmailPreferences>> {
        let (Some(to), Some(events)) = (&self.email_to, &self.email_events) else {
            return Ok(None);
        };
        let damaged = |e: String| RepoError::Internal(format!("stored e-mail preferences: {e}"));
        let to: Vec<String> = serde_json::from_str(to).map_err(|e| damaged(e.to_string()))?;
        let events: Vec<String> =
            serde_json::from_str(events).map_err(|e| damaged(e.to_string()))?;
        let events = EventSelector::parse("events", &events).map_err(|e| damaged(e.message))?;
        Ok(Some(EmailPreferences { to, events }))
    }
}

/// What the audit trail says of preferences.
fn described(s: &NotificationSettings) -> serde_json::Value {
    json!({
        "email": s.email.as_ref().map(|e| json!({
            "to": e.to,
            "events": e.events.to_strings(),
        })),
    })
}

#[async_trait]
impl NotificationSettingsRepository for Store {
    async fn get(&self, org: OrgId) -> RepoResult<NotificationSettings> {
        let row = on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid()).await.db())?;
        match row {
            None => Ok(NotificationSettings::default()),
            Some(r) => Ok(NotificationSettings {
                email: r.email()?,
                updated_at: Some(r.updated_at),
            }),
        }
    }

    async fn put(
        &self,
        org: OrgId,
        settings: &NotificationSettings,
        actor: &Actor,
    ) -> RepoResult<NotificationSettings> {
        let (settings, actor) = (settings.clone(), actor.clone());
        let encode = |v: Vec<String>| serde_json::to_string(&v).expect("strings serialize");
        let to = settings.email.as_ref().map(|e| encode(e.to.clone()));
        let events = settings
            .email
            .as_ref()
            .map(|e| encode(e.events.to_strings()));
        in_write_tx!(self, |tx, sql, audit| {
            sql::put(&mut tx, org.as_uuid(), to.as_deref(), events.as_deref())
                .await
                .db()?;
            let record = AuditRecord {
                action: "org.notifications_changed",
                target: format!("org:{org}"),
                data: described(&settings),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            let row = sql::get(&mut *tx, org.as_uuid())
                .await
                .db()?
                .ok_or_else(|| RepoError::Internal("notification settings vanished".into()))?;
            Ok::<_, RepoError>(NotificationSettings {
                email: row.email()?,
                updated_at: Some(row.updated_at),
            })
        })
    }
}

#[async_trait]
impl EmailOutbox for Store {
    async fn system_email_orgs(&self) -> RepoResult<Vec<OrgId>> {
        let ids = on_reader!(self, |pool, sql| sql::email_orgs(pool).await.db())?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }

    async fn system_email_target(&self, org: OrgId) -> RepoResult<Option<EmailTarget>> {
        let row = on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid()).await.db())?;
        let Some(row) = row else { return Ok(None) };
        Ok(row.email()?.map(|email| EmailTarget {
            org_id: OrgId::from_uuid(row.org_id),
            org_name: row.org_name.clone(),
            email,
            cursor: row.email_cursor,
            attempts: row.email_attempts,
            next_attempt_at: row.email_next_attempt_at,
        }))
    }

    async fn system_email_record(
        &self,
        org: OrgId,
        from: i64,
        through: i64,
        failure: Option<(&str, DateTime<Utc>)>,
    ) -> RepoResult<bool> {
        let failure = failure.map(|(e, at)| (e.to_owned(), at));
        in_write_tx!(self, |tx, sql| {
            sql::advance(&mut tx, org.as_uuid(), from, through, failure.as_ref())
                .await
                .db()
        })
    }
}

crate::dialect::statements! {
    use chrono::{DateTime, Utc};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::Row;

    pub(crate) async fn get<'c, E>(c: E, org: Uuid) -> sqlx::Result<Option<Row>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_as(
            "SELECT n.org_id, n.email_to, n.email_events, n.email_cursor, n.email_attempts, \
             n.email_next_attempt_at, n.updated_at, o.name AS org_name \
             FROM notification_settings n JOIN organizations o ON o.id = n.org_id \
             WHERE n.org_id = $1",
        )
        .bind(org)
        .fetch_optional(c)
        .await
    }

    /// Writes the preferences; e-mail turned on (from off) starts after
    /// the newest numbered event, with no failure.
    pub(crate) async fn put(
        c: &mut Conn,
        org: Uuid,
        to: Option<&str>,
        events: Option<&str>,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO notification_settings (org_id, email_to, email_events, email_cursor, updated_at) \
             VALUES ($1, $2, $3, (SELECT coalesce(max(seq), 0) FROM events), $4) \
             ON CONFLICT (org_id) DO UPDATE SET \
             email_cursor = CASE WHEN notification_settings.email_to IS NULL \
               THEN excluded.email_cursor ELSE notification_settings.email_cursor END, \
             email_attempts = CASE WHEN notification_settings.email_to IS NULL \
               THEN 0 ELSE notification_settings.email_attempts END, \
             email_next_attempt_at = CASE WHEN notification_settings.email_to IS NULL \
               THEN NULL ELSE notification_settings.email_next_attempt_at END, \
             email_to = excluded.email_to, email_events = excluded.email_events, \
             updated_at = excluded.updated_at",
        )
        .bind(org)
        .bind(to)
        .bind(events)
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn email_orgs(pool: &Pool) -> sqlx::Result<Vec<Uuid>> {
        query_scalar("SELECT org_id FROM notification_settings WHERE email_to IS NOT NULL ORDER BY org_id")
            .fetch_all(pool)
            .await
    }

    pub(crate) async fn advance(
        c: &mut Conn,
        org: Uuid,
        from: i64,
        through: i64,
        failure: Option<&(String, DateTime<Utc>)>,
    ) -> sqlx::Result<bool> {
        query(
            "UPDATE notification_settings SET email_cursor = $3, \
             email_attempts = CASE WHEN $4 IS NULL THEN 0 \
               WHEN $3 > $2 THEN 1 ELSE email_attempts + 1 END, \
             email_next_attempt_at = $5, email_last_error = $4 \
             WHERE org_id = $1 AND email_cursor = $2",
        )
        .bind(org)
        .bind(from)
        .bind(through)
        .bind(failure.map(|f| f.0.as_str()))
        .bind(failure.map(|f| f.1))
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }
}
