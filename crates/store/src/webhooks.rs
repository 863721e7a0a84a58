//! Webhook endpoints ([`WebhookRepository`], [`WebhookOutbox`]): their rows
//! with the outbox state, every delivery attempt, and replays waiting.
//!
//! The signing secret is sealed like personal data (bound to its row), so a
//! database dump does not let anyone forge deliveries; a rotation keeps the
//! previous sealed secret beside the new one until its overlap ends, and a
//! rotation during an overlap replaces only the new one (the secret the
//! receivers held before keeps its overlap: a retried rotation whose first
//! answer was lost never strands them on a secret nobody saw). The
//! outbox's cursor only moves by compare-and-set from where the delivery
//! loop read it, so a replay that moved it back meanwhile is never undone.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::pii::PiiKeys;
use rwa_domain::ports::Lease;
use rwa_domain::webhook::{
    Attempt, Delivery, EventSelector, NewWebhook, Outcome, Target, WEBHOOK_CREATED,
    WEBHOOK_DELETED, WEBHOOK_DISABLED, WEBHOOK_SECRET_ROTATED, WEBHOOK_UPDATED, Webhook,
    WebhookChange, WebhookOutbox, WebhookRepository, url_origin,
};
use rwa_domain::{Actor, OrgId, RepoError, RepoResult};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// The advisory lock key of the notification deliveries.
const DELIVERY_LEASE: i64 = 0x0de1_1fe2_0000_0001;

/// Rows re-sealed per transaction by `rwa secrets rotate`.
const ROTATION_BATCH: i64 = 200;

/// The sealing context binding a secret to its endpoint.
fn context(id: Uuid) -> String {
    format!("webhook_secret:{id}")
}

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: Uuid,
    org_id: Uuid,
    url: String,
    events: String,
    description: Option<String>,
    enabled: bool,
    disabled_reason: Option<String>,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    delivered_seq: i64,
    failing_since: Option<DateTime<Utc>>,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    version: i64,
    last_delivered_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Row {
    fn webhook(&self) -> RepoResult<Webhook> {
        let patterns: Vec<String> = serde_json::from_str(&self.events)
            .map_err(|e| RepoError::Internal(format!("stored webhook events: {e}")))?;
        let events = EventSelector::parse("events", &patterns)
            .map_err(|e| RepoError::Internal(format!("stored webhook events: {}", e.message)))?;
        Ok(Webhook {
            id: self.id,
            org_id: OrgId::from_uuid(self.org_id),
            url: self.url.clone(),
            events,
            description: self.description.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            delivered_seq: self.delivered_seq,
            failing_since: self.failing_since,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error.clone(),
            last_delivered_at: self.last_delivered_at,
            previous_secret_expires_at: self.previous_secret_expires_at.filter(|t| *t > Utc::now()),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }

    /// The secrets that sign now: the current one, and the previous one
    /// while its overlap lasts.
    /// The secrets that sign now, or why they cannot be opened.
    fn secrets(&self, keys: &PiiKeys) -> Result<Vec<String>, String> {
        let open = |sealed: &str| {
            keys.open(sealed, &context(self.id)).map_err(|e| {
                format!(
                    "the signing secret cannot be opened with the server's secret \
                     (was it changed without `rwa secrets rotate`?): {e}"
                )
            })
        };
        let mut secrets = vec![open(&self.secret)?];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && until > Utc::now()
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: Uuid,
    webhook_id: Uuid,
    event_seq: i64,
    event_id: Uuid,
    event_type: String,
    attempt: i32,
    replay: bool,
    succeeded: bool,
    status_code: Option<i32>,
    latency_ms: i64,
    error: Option<String>,
    response_snippet: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<DeliveryRow> for Delivery {
    fn from(r: DeliveryRow) -> Self {
        Delivery {
            id: r.id,
            webhook_id: r.webhook_id,
            event_seq: r.event_seq,
            event_id: r.event_id,
            event_type: r.event_type,
            attempt: r.attempt,
            replay: r.replay,
            succeeded: r.succeeded,
            status_code: r.status_code,
            latency_ms: r.latency_ms,
            error: r.error,
            response_snippet: r.response_snippet,
            created_at: r.created_at,
        }
    }
}

/// What events and the audit trail say of an endpoint (never its secret).
fn described(w: &Webhook) -> serde_json::Value {
    json!({
        "webhook_id": w.id,
        "url": url_origin(&w.url),
        "events": w.events.to_strings(),
        "description": w.description,
        "enabled": w.enabled,
    })
}

impl Store {
    fn webhook_keys(&self) -> RepoResult<std::sync::Arc<PiiKeys>> {
        self.pii.clone().ok_or_else(|| {
            RepoError::Internal("webhook secrets need the server secret (RWA_SECRET_KEY)".into())
        })
    }

    /// Changes a row under `audit`/`event`, answering the endpoint after.
    async fn change_webhook(
        &self,
        org: OrgId,
        id: Uuid,
        actor: &Actor,
        action: &'static str,
        apply: Apply,
    ) -> RepoResult<Webhook> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit, events| {
            let Some(before) = sql::get(&mut *tx, org.as_uuid(), id).await.db()? else {
                return Err(RepoError::NotFound);
            };
            match &apply {
                Apply::Change(c) => sql::update(&mut tx, id, c).await.db()?,
                Apply::Rotate { sealed, until } => {
                    sql::rotate(&mut tx, id, sealed, *until).await.db()?
                }
                Apply::Rewind(to) => sql::rewind(&mut tx, id, *to).await.db()?,
            }
            let after = sql::get(&mut *tx, org.as_uuid(), id)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?
                .webhook()?;
            let mut data = described(&after);
            match &apply {
                Apply::Rotate { until, .. } => data["previous_secret_expires_at"] = json!(until),
                Apply::Rewind(to) => {
                    data["from_seq"] = json!(to + 1);
                    data["delivered_seq_before"] = json!(before.delivered_seq);
                }
                Apply::Change(_) => {}
            }
            let record = AuditRecord {
                action,
                target: format!("webhook:{id}"),
                data: data.clone(),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            if !matches!(apply, Apply::Rewind(_)) {
                events::append_event(&mut tx, org.as_uuid(), action, &data)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(after)
        })
    }

    /// For `rwa secrets rotate`: re-seals every endpoint's secrets under the
    /// current key (they must open under the current or previous one), in
    /// batches of one transaction each; answers how many endpoints.
    pub async fn reseal_webhook_secrets(&self) -> RepoResult<u64> {
        let keys = self.webhook_keys()?;
        let prefix = format!("v1.{}.", keys.current_id());
        let mut total = 0;
        loop {
            let (keys, prefix) = (keys.clone(), prefix.clone());
            let done: RepoResult<u64> = in_write_tx!(self, |tx, sql| {
                let stale = sql::stale_secrets(&mut tx, &format!("{prefix}%"), ROTATION_BATCH)
                    .await
                    .db()?;
                for (id, secret, previous, until) in &stale {
                    // A previous secret whose overlap is over signs nothing:
                    // dropped rather than re-sealed.
                    let previous = previous
                        .as_ref()
                        .filter(|_| until.is_some_and(|t| t > Utc::now()));
                    let reseal = |s: &str| {
                        keys.reseal(s, &context(*id))
                            .map(|r| r.unwrap_or_else(|| s.to_owned()))
                            .map_err(|e| RepoError::Internal(format!("webhook {id} secret: {e}")))
                    };
                    let secret = reseal(secret)?;
                    let previous = previous.map(|p| reseal(p)).transpose()?;
                    sql::write_secrets(&mut tx, *id, &secret, previous.as_deref())
                        .await
                        .db()?;
                }
                Ok::<_, RepoError>(stale.len() as u64)
            });
            let done = done?;
            total += done;
            if done < ROTATION_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// What [`Store::change_webhook`] writes.
enum Apply {
    Change(WebhookChange),
    Rotate {
        sealed: String,
        until: DateTime<Utc>,
    },
    Rewind(i64),
}

#[async_trait]
impl WebhookRepository for Store {
    async fn create(&self, org: OrgId, new: &NewWebhook, actor: &Actor) -> RepoResult<Webhook> {
        let id = Uuid::now_v7();
        let sealed = self.webhook_keys()?.seal(&new.secret, &context(id));
        let (new, actor) = (new.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit, events| {
            sql::insert(&mut tx, id, org.as_uuid(), &new, &sealed)
                .await
                .db()?;
            let created = sql::get(&mut *tx, org.as_uuid(), id)
                .await
                .db()?
                .ok_or_else(|| RepoError::Internal("webhook vanished".into()))?
                .webhook()?;
            let data = described(&created);
            let record = AuditRecord {
                action: WEBHOOK_CREATED,
                target: format!("webhook:{id}"),
                data: data.clone(),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            events::append_event(&mut tx, org.as_uuid(), WEBHOOK_CREATED, &data)
                .await
                .db()?;
            Ok::<_, RepoError>(created)
        })
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<Webhook>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list(pool, org.as_uuid(), page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let hooks = rows
            .iter()
            .map(Row::webhook)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(hooks, page.limit, |w| w.id))
    }

    async fn get(&self, org: OrgId, id: Uuid) -> RepoResult<Webhook> {
        on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid(), id)
            .await
            .db())?
        .ok_or(RepoError::NotFound)?
        .webhook()
    }

    async fn update(
        &self,
        org: OrgId,
        id: Uuid,
        change: &WebhookChange,
        actor: &Actor,
    ) -> RepoResult<Webhook> {
        self.change_webhook(
            org,
            id,
            actor,
            WEBHOOK_UPDATED,
            Apply::Change(change.clone()),
        )
        .await
    }

    async fn delete(&self, org: OrgId, id: Uuid, actor: &Actor) -> RepoResult<()> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit, events| {
            let Some(row) = sql::get(&mut *tx, org.as_uuid(), id).await.db()? else {
                return Err(RepoError::NotFound);
            };
            let data = described(&row.webhook()?);
            sql::delete(&mut tx, id).await.db()?;
            let record = AuditRecord {
                action: WEBHOOK_DELETED,
                target: format!("webhook:{id}"),
                data: data.clone(),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            events::append_event(&mut tx, org.as_uuid(), WEBHOOK_DELETED, &data)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn rotate_secret(
        &self,
        org: OrgId,
        id: Uuid,
        secret: &str,
        overlap: Duration,
        actor: &Actor,
    ) -> RepoResult<Webhook> {
        let sealed = self.webhook_keys()?.seal(secret, &context(id));
        let until = Utc::now()
            + chrono::Duration::from_std(overlap)
                .map_err(|_| RepoError::Internal("secret overlap out of range".into()))?;
        self.change_webhook(
            org,
            id,
            actor,
            WEBHOOK_SECRET_ROTATED,
            Apply::Rotate { sealed, until },
        )
        .await
    }

    async fn deliveries(
        &self,
        org: OrgId,
        id: Uuid,
        page: PageRequest,
    ) -> RepoResult<Page<Delivery>> {
        let rows = on_reader!(self, |pool, sql| {
            if sql::get(pool, org.as_uuid(), id).await.db()?.is_none() {
                return Err(RepoError::NotFound);
            }
            sql::deliveries(pool, id, page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let items = rows.into_iter().map(Delivery::from).collect();
        Ok(Page::from_overfetch(items, page.limit, |d| d.id))
    }

    async fn replay_delivery(
        &self,
        org: OrgId,
        id: Uuid,
        delivery: Uuid,
        actor: &Actor,
    ) -> RepoResult<Uuid> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit| {
            if sql::get(&mut *tx, org.as_uuid(), id).await.db()?.is_none() {
                return Err(RepoError::NotFound);
            }
            let Some(seq) = sql::delivery_seq(&mut tx, id, delivery).await.db()? else {
                return Err(RepoError::NotFound);
            };
            let replay = Uuid::now_v7();
            sql::insert_replay(&mut tx, replay, id, seq).await.db()?;
            let record = AuditRecord {
                action: "webhook.delivery_replayed",
                target: format!("webhook:{id}"),
                data: json!({ "delivery_id": delivery, "event_seq": seq, "replay_id": replay }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Ok::<_, RepoError>(replay)
        })
    }

    async fn replay_from(
        &self,
        org: OrgId,
        id: Uuid,
        from_seq: i64,
        actor: &Actor,
    ) -> RepoResult<Webhook> {
        self.change_webhook(
            org,
            id,
            actor,
            "webhook.replayed",
            Apply::Rewind(from_seq.max(1) - 1),
        )
        .await
    }
}

#[async_trait]
impl WebhookOutbox for Store {
    async fn system_delivery_lease(&self) -> RepoResult<Option<Box<dyn Lease>>> {
        crate::lease::take(&self.pools, DELIVERY_LEASE).await
    }

    async fn system_enabled_webhooks(&self) -> RepoResult<Vec<Uuid>> {
        on_reader!(self, |pool, sql| sql::enabled(pool).await.db())
    }

    async fn system_target(&self, id: Uuid) -> RepoResult<Option<Target>> {
        let keys = self.webhook_keys()?;
        let found = on_reader!(self, |pool, sql| {
            match sql::get_any(pool, id).await.db()? {
                None => None,
                Some(row) => Some((row, sql::pending_replays(pool, id).await.db()?)),
            }
        });
        let Some((row, replays)) = found else {
            return Ok(None);
        };
        Ok(Some(Target {
            webhook: row.webhook()?,
            secrets: row.secrets(&keys),
            replays,
            version: row.version,
        }))
    }

    async fn system_record(
        &self,
        id: Uuid,
        from: i64,
        version: i64,
        attempts: &[Attempt],
        outcome: &Outcome,
    ) -> RepoResult<bool> {
        let (attempts, outcome) = (attempts.to_vec(), outcome.clone());
        in_write_tx!(self, |tx, sql, events| {
            for a in &attempts {
                sql::insert_delivery(&mut tx, id, a, false).await.db()?;
            }
            let moved = sql::advance(&mut tx, id, from, version, &outcome)
                .await
                .db()?;
            if moved
                && let Outcome::Failed {
                    disable: true,
                    error,
                    ..
                } = &outcome
                && let Some(row) = sql::get_any(&mut *tx, id).await.db()?
            {
                let data = json!({
                    "webhook_id": id,
                    "url": url_origin(&row.url),
                    "failing_since": row.failing_since,
                    "last_error": error,
                    "delivered_seq": row.delivered_seq,
                });
                events::append_event(&mut tx, row.org_id, WEBHOOK_DISABLED, &data)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(moved)
        })
    }

    async fn system_record_replay(
        &self,
        id: Uuid,
        replay: Uuid,
        attempt: &Attempt,
    ) -> RepoResult<()> {
        let attempt = attempt.clone();
        in_write_tx!(self, |tx, sql| {
            sql::insert_delivery(&mut tx, id, &attempt, true)
                .await
                .db()?;
            sql::finish_replay(&mut tx, replay).await.db()?;
            Ok::<_, RepoError>(())
        })
    }
}

crate::dialect::statements! {
    use chrono::{DateTime, Utc};
    use rwa_domain::webhook::{Attempt, NewWebhook, Outcome, WebhookChange};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{DeliveryRow, Row};

    macro_rules! columns {
        () => {
            "id, org_id, url, events, description, enabled, disabled_reason, secret, \
             previous_secret, previous_secret_expires_at, delivered_seq, failing_since, attempts, \
             next_attempt_at, last_error, version, last_delivered_at, created_at, updated_at"
        };
    }

    /// Inserts an endpoint whose outbox starts after the newest numbered event.
    pub(crate) async fn insert(
        c: &mut Conn,
        id: Uuid,
        org: Uuid,
        w: &NewWebhook,
        sealed: &str,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO webhooks (id, org_id, url, events, description, enabled, secret, delivered_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, (SELECT coalesce(max(seq), 0) FROM events))",
        )
        .bind(id)
        .bind(org)
        .bind(&w.url)
        .bind(serde_json::to_string(&w.events.to_strings()).expect("strings serialize"))
        .bind(w.description.as_deref())
        .bind(w.enabled)
        .bind(sealed)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn get<'c, E>(c: E, org: Uuid, id: Uuid) -> sqlx::Result<Option<Row>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_as(concat!("SELECT ", columns!(), " FROM webhooks WHERE org_id = $1 AND id = $2"))
            .bind(org)
            .bind(id)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn get_any<'c, E>(c: E, id: Uuid) -> sqlx::Result<Option<Row>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_as(concat!("SELECT ", columns!(), " FROM webhooks WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn list(
        pool: &Pool,
        org: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<Row>> {
        query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM webhooks WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(org)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn enabled(pool: &Pool) -> sqlx::Result<Vec<Uuid>> {
        query_scalar("SELECT id FROM webhooks WHERE enabled ORDER BY id")
            .fetch_all(pool)
            .await
    }

    /// Applies a change; turning an endpoint on clears its failure so it
    /// gets a whole failure period again, and tries the head event now.
    pub(crate) async fn update(c: &mut Conn, id: Uuid, w: &WebhookChange) -> sqlx::Result<()> {
        let events = w
            .events
            .as_ref()
            .map(|e| serde_json::to_string(&e.to_strings()).expect("strings serialize"));
        query(
            "UPDATE webhooks SET url = coalesce($2, url), events = coalesce($3, events), \
             description = CASE WHEN $4 THEN $5 ELSE description END, \
             failing_since = CASE WHEN $6 AND NOT enabled THEN NULL ELSE failing_since END, \
             next_attempt_at = CASE WHEN $6 AND NOT enabled THEN NULL ELSE next_attempt_at END, \
             attempts = CASE WHEN $6 AND NOT enabled THEN 0 ELSE attempts END, \
             disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END, \
             enabled = coalesce($6, enabled), updated_at = $7, version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(w.url.as_deref())
        .bind(events)
        .bind(w.description.is_some())
        .bind(w.description.clone().flatten())
        .bind(w.enabled)
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn rotate(
        c: &mut Conn,
        id: Uuid,
        sealed: &str,
        until: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        query(
            "UPDATE webhooks SET \
             previous_secret = CASE WHEN previous_secret IS NOT NULL \
               AND previous_secret_expires_at > $4 THEN previous_secret ELSE secret END, \
             previous_secret_expires_at = CASE WHEN previous_secret IS NOT NULL \
               AND previous_secret_expires_at > $4 THEN previous_secret_expires_at ELSE $3 END, \
             secret = $2, updated_at = $4, version = version + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(sealed)
        .bind(until)
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Moves the outbox back to `to` (never forward).
    pub(crate) async fn rewind(c: &mut Conn, id: Uuid, to: i64) -> sqlx::Result<()> {
        // Moved back, it starts afresh: no failure carried over, sent now.
        query(
            "UPDATE webhooks SET failing_since = NULL, attempts = 0, next_attempt_at = NULL, \
             delivered_seq = $2, version = version + 1 WHERE id = $1 AND delivered_seq > $2",
        )
        .bind(id)
        .bind(to)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn delete(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        // Children first: SQLite enforces the cascade only with the pragma on.
        for statement in [
            "DELETE FROM webhook_deliveries WHERE webhook_id = $1",
            "DELETE FROM webhook_replays WHERE webhook_id = $1",
            "DELETE FROM webhooks WHERE id = $1",
        ] {
            query(statement).bind(id).execute(&mut *c).await?;
        }
        Ok(())
    }

    pub(crate) async fn insert_delivery(
        c: &mut Conn,
        webhook: Uuid,
        a: &Attempt,
        replay: bool,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, event_id, event_type, \
             attempt, replay, succeeded, status_code, latency_ms, error, response_snippet) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(Uuid::now_v7())
        .bind(webhook)
        .bind(a.event_seq)
        .bind(a.event_id)
        .bind(&a.event_type)
        .bind(a.attempt)
        .bind(replay)
        .bind(a.succeeded)
        .bind(a.status_code)
        .bind(a.latency.as_millis() as i64)
        .bind(a.error.as_deref())
        .bind(a.response_snippet.as_deref())
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Moves the outbox from `from` as `outcome` says; false when the cursor
    /// is no longer `from` (a replay moved it back) or the endpoint changed
    /// since `version`.
    pub(crate) async fn advance(
        c: &mut Conn,
        id: Uuid,
        from: i64,
        version: i64,
        outcome: &Outcome,
    ) -> sqlx::Result<bool> {
        let now = Utc::now();
        let done = match outcome {
            Outcome::Advanced { through } => query(
                "UPDATE webhooks SET delivered_seq = $3, failing_since = NULL, attempts = 0, \
                 next_attempt_at = NULL, last_delivered_at = CASE WHEN $3 > $2 THEN $4 \
                 ELSE last_delivered_at END WHERE id = $1 AND delivered_seq = $2 AND version = $5",
            )
            .bind(id)
            .bind(from)
            .bind(through)
            .bind(now)
            .bind(version),
            Outcome::Failed { through, retry_at, error, disable } => query(
                "UPDATE webhooks SET \
                 last_delivered_at = CASE WHEN $3 > $2 THEN $4 ELSE last_delivered_at END, \
                 failing_since = CASE WHEN $3 > $2 OR failing_since IS NULL THEN $4 \
                 ELSE failing_since END, \
                 attempts = CASE WHEN $3 > $2 THEN 1 ELSE attempts + 1 END, \
                 delivered_seq = $3, next_attempt_at = $5, last_error = $6, \
                 enabled = CASE WHEN $7 THEN FALSE ELSE enabled END, \
                 disabled_reason = CASE WHEN $7 THEN $8 ELSE disabled_reason END \
                 WHERE id = $1 AND delivered_seq = $2 AND version = $9",
            )
            .bind(id)
            .bind(from)
            .bind(through)
            .bind(now)
            .bind(retry_at)
            .bind(error)
            .bind(disable)
            .bind(format!("failing since longer than allowed: {error}"))
            .bind(version),
        };
        done.execute(c).await.map(|r| r.rows_affected() == 1)
    }

    pub(crate) async fn deliveries(
        pool: &Pool,
        webhook: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> sqlx::Result<Vec<DeliveryRow>> {
        query_as(
            "SELECT id, webhook_id, event_seq, event_id, event_type, attempt, replay, succeeded, \
             status_code, latency_ms, error, response_snippet, created_at FROM webhook_deliveries \
             WHERE webhook_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        )
        .bind(webhook)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn delivery_seq(
        c: &mut Conn,
        webhook: Uuid,
        delivery: Uuid,
    ) -> sqlx::Result<Option<i64>> {
        query_scalar("SELECT event_seq FROM webhook_deliveries WHERE webhook_id = $1 AND id = $2")
            .bind(webhook)
            .bind(delivery)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn insert_replay(
        c: &mut Conn,
        id: Uuid,
        webhook: Uuid,
        seq: i64,
    ) -> sqlx::Result<()> {
        query("INSERT INTO webhook_replays (id, webhook_id, event_seq) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(webhook)
            .bind(seq)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn pending_replays(pool: &Pool, webhook: Uuid) -> sqlx::Result<Vec<(Uuid, i64)>> {
        query_as(
            "SELECT id, event_seq FROM webhook_replays WHERE webhook_id = $1 AND done_at IS NULL \
             ORDER BY id LIMIT 100",
        )
        .bind(webhook)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn finish_replay(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        query("UPDATE webhook_replays SET done_at = $2 WHERE id = $1")
            .bind(id)
            .bind(Utc::now())
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Endpoints whose secrets are not all sealed under the current key.
    pub(crate) async fn stale_secrets(
        c: &mut Conn,
        current: &str,
        limit: i64,
    ) -> sqlx::Result<Vec<(Uuid, String, Option<String>, Option<DateTime<Utc>>)>> {
        query_as(
            "SELECT id, secret, previous_secret, previous_secret_expires_at FROM webhooks \
             WHERE secret NOT LIKE $1 \
             OR (previous_secret IS NOT NULL AND previous_secret NOT LIKE $1) ORDER BY id LIMIT $2",
        )
        .bind(current)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn write_secrets(
        c: &mut Conn,
        id: Uuid,
        secret: &str,
        previous: Option<&str>,
    ) -> sqlx::Result<()> {
        query("UPDATE webhooks SET secret = $2, previous_secret = $3 WHERE id = $1")
            .bind(id)
            .bind(secret)
            .bind(previous)
            .execute(c)
            .await
            .map(|_| ())
    }
}
