//! Periodic jobs (cron expressions with a seconds field, UTC): each schedule
//! fires once per period across every process.
//!
//! A tick finds each schedule's latest period at or before the database's now
//! and, in one transaction, advances the schedule's `last_period` row (only
//! forwards) and enqueues the job with a unique key for that period. Whoever
//! advances the row enqueues; everyone else sees the row already there, so
//! several processes ticking at once fire a period once. A schedule seen for
//! the first time fires its latest past period at once (a daily report due
//! this morning is produced when the service starts in the afternoon); missed
//! older periods are not back-filled.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rwa_domain::jobs::Job;
use rwa_domain::{RepoError, RepoResult};

use crate::NewJob;
use crate::queue::{Db, Queue, db_error, enqueue_postgres, enqueue_sqlite};

/// One periodic job.
#[derive(Clone, Debug)]
pub struct Periodic {
    name: String,
    schedule: cron::Schedule,
    job: NewJob,
}

impl Periodic {
    /// `expression` is `sec min hour day-of-month month day-of-week [year]`,
    /// e.g. `0 0 2 * * *` (daily at 02:00 UTC) or `0 0 3 1 * *` (monthly).
    pub fn new(name: impl Into<String>, expression: &str, job: NewJob) -> Result<Self, String> {
        let schedule = cron::Schedule::from_str(expression)
            .map_err(|e| format!("schedule {expression:?}: {e}"))?;
        Ok(Self {
            name: name.into(),
            schedule,
            job,
        })
    }

    /// The latest fire time at or before `now`.
    pub fn period_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&(now + TimeDelta::milliseconds(1)))
            .next_back()
    }
}

const ADVANCE: &str = "INSERT INTO job_schedules (name, last_period) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period \
     WHERE job_schedules.last_period < excluded.last_period RETURNING name";

/// Fires periodic jobs.
#[derive(Clone, Debug)]
pub struct Scheduler {
    queue: Queue,
    entries: Vec<Periodic>,
}

impl Scheduler {
    /// A scheduler for `entries` over `queue`.
    pub fn new(queue: Queue, entries: Vec<Periodic>) -> Self {
        Self { queue, entries }
    }

    /// Fires what is due at the database's now.
    pub async fn tick(&self) -> RepoResult<Vec<Job>> {
        let now = self.queue.db_now().await?;
        self.tick_at(now).await
    }

    /// Fires what is due at `now`; returns the jobs this call enqueued.
    pub async fn tick_at(&self, now: DateTime<Utc>) -> RepoResult<Vec<Job>> {
        let mut fired = Vec::new();
        for entry in &self.entries {
            let Some(period) = entry.period_at(now) else {
                continue;
            };
            let key = period.to_rfc3339_opts(SecondsFormat::Secs, true);
            let mut job = entry.job.clone();
            job.unique_key = Some(format!("schedule:{}:{key}", entry.name));
            if let serde_json::Value::Object(args) = &mut job.args {
                args.insert("period".into(), serde_json::Value::String(key.clone()));
            }
            if let Some(job) = self.fire(&entry.name, &key, &job).await? {
                tracing::info!(schedule = %entry.name, period = %key, job = %job.id, "periodic job enqueued");
                fired.push(job);
            }
        }
        if !fired.is_empty() {
            self.queue.wake();
        }
        Ok(fired)
    }

    async fn fire(&self, name: &str, period: &str, job: &NewJob) -> RepoResult<Option<Job>> {
        // The same steps on either backend, in one write transaction.
        macro_rules! advance_then_enqueue {
            ($tx:ident, $enqueue:ident) => {{
                let won: Option<(String,)> = sqlx::query_as(ADVANCE)
                    .bind(name)
                    .bind(period)
                    .fetch_optional(&mut *$tx)
                    .await
                    .map_err(db_error)?;
                let job = match won {
                    Some(_) => Some($enqueue(&mut $tx, job).await?),
                    None => None,
                };
                $tx.commit().await.map_err(db_error)?;
                Ok(job)
            }};
        }
        match self.queue.db() {
            Db::Sqlite { writer, .. } => {
                let mut tx = writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db_error)?;
                advance_then_enqueue!(tx, enqueue_sqlite)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                advance_then_enqueue!(tx, enqueue_postgres)
            }
        }
    }
}

impl Queue {
    /// The database's clock.
    pub async fn db_now(&self) -> RepoResult<DateTime<Utc>> {
        let text: String =
            match self.db() {
                Db::Sqlite { reader, .. } => {
                    sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')")
                        .fetch_one(reader)
                        .await
                }
                Db::Postgres(pool) => sqlx::query_scalar(
                    "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')",
                )
                .fetch_one(pool)
                .await,
            }
            .map_err(db_error)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| RepoError::Internal(format!("database clock {text:?}: {e}")))
    }
}
