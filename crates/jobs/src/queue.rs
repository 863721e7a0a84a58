//! The queue over the database: enqueue (also inside a caller's transaction),
//! claim, finish, maintenance and the operator's views.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rwa_domain::{RepoError, RepoResult};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, SqliteConnection, SqlitePool};
use tokio::sync::Notify;
use uuid::Uuid;

use rwa_domain::OrgId;
use rwa_domain::jobs::{AttemptError, Job, JobAdmin, JobState};
use rwa_domain::page::{Page, PageRequest};

use crate::job::NewJob;
use crate::sql::Dialect;

/// The database the queue lives in: the application's own pools.
#[derive(Clone, Debug)]
pub enum Db {
    /// SQLite: every write through the single writer connection.
    Sqlite {
        /// The one writer.
        writer: SqlitePool,
        /// Read-only connections.
        reader: SqlitePool,
    },
    /// PostgreSQL.
    Postgres(PgPool),
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: Uuid,
    org_id: Option<Uuid>,
    queue: String,
    kind: String,
    args: String,
    state: String,
    priority: i16,
    attempt: i32,
    max_attempts: i32,
    scheduled_at: DateTime<Utc>,
    attempted_at: Option<DateTime<Utc>>,
    attempted_by: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    errors: String,
    unique_key: Option<String>,
    created_at: DateTime<Utc>,
    finalized_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = RepoError;

    fn try_from(r: JobRow) -> RepoResult<Job> {
        let bad =
            |what: &str| RepoError::Internal(format!("job {}: stored {what} does not parse", r.id));
        Ok(Job {
            id: r.id,
            org_id: r.org_id,
            args: serde_json::from_str(&r.args).map_err(|_| bad("args"))?,
            state: JobState::parse(&r.state).ok_or_else(|| bad("state"))?,
            errors: serde_json::from_str(&r.errors).map_err(|_| bad("errors"))?,
            queue: r.queue,
            kind: r.kind,
            priority: r.priority,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            scheduled_at: r.scheduled_at,
            attempted_at: r.attempted_at,
            attempted_by: r.attempted_by,
            lease_expires_at: r.lease_expires_at,
            unique_key: r.unique_key,
            created_at: r.created_at,
            finalized_at: r.finalized_at,
        })
    }
}

/// sqlx errors as the port errors callers act on.
pub(crate) fn db_error(e: sqlx::Error) -> RepoError {
    match &e {
        sqlx::Error::RowNotFound => RepoError::NotFound,
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            RepoError::Conflict(d.message().into())
        }
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            RepoError::Unavailable(e.to_string())
        }
        _ => RepoError::Internal(e.to_string()),
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Runs `$body` with `$exec` bound to the right executor (`writer` or
/// `reader` on SQLite; the pool on PostgreSQL) and `$d` to the dialect.
macro_rules! on_db {
    ($db:expr, $which:ident, |$exec:ident, $d:ident| $body:expr) => {
        match $db {
            Db::Sqlite { $which: $exec, .. } => {
                let $d = Dialect { postgres: false };
                $body
            }
            Db::Postgres($exec) => {
                let $d = Dialect { postgres: true };
                $body
            }
        }
    };
}

macro_rules! enqueue_on {
    ($conn:expr, $d:expr, $job:expr) => {{
        let job: &NewJob = $job;
        let args =
            serde_json::to_string(&job.args).map_err(|e| RepoError::Internal(e.to_string()))?;
        let inserted: Option<JobRow> = sqlx::query_as(AssertSqlSafe($d.enqueue()))
            .bind(Uuid::now_v7())
            .bind(&job.queue)
            .bind(&job.kind)
            .bind(args)
            .bind(seconds(job.delay))
            .bind(job.priority)
            .bind(job.max_attempts)
            .bind(job.unique_key.as_deref())
            .bind(job.org_id)
            .fetch_optional(&mut *$conn)
            .await
            .map_err(db_error)?;
        let row = match inserted {
            Some(row) => row,
            // The key is active: the existing job is the answer (and its
            // queue was woken when it was enqueued).
            None => sqlx::query_as(AssertSqlSafe($d.active_by_unique_key()))
                .bind(job.unique_key.as_deref())
                .fetch_one(&mut *$conn)
                .await
                .map_err(db_error)?,
        };
        Job::try_from(row)
    }};
}

/// Parameters [`enqueue_cte_postgres`] takes.
pub const ENQUEUE_CTE_PARAMS: usize = 9;

/// PostgreSQL: the enqueue of one job as common table expressions (`job`,
/// and `job_wake`, which the caller's final `SELECT` must read), numbered
/// from `$first`, for a unit of work that is one statement. Bind them with
/// [`bind_enqueue_cte`] right after the parameters before `$first`.
pub fn enqueue_cte_postgres(first: usize) -> String {
    crate::sql::enqueue_cte_postgres(first)
}

/// Binds the parameters of [`enqueue_cte_postgres`] for `job`.
pub fn bind_enqueue_cte<'q, O>(
    q: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    job: &NewJob,
) -> RepoResult<sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>> {
    let args = serde_json::to_string(&job.args).map_err(|e| RepoError::Internal(e.to_string()))?;
    Ok(q.bind(Uuid::now_v7())
        .bind(job.queue.clone())
        .bind(job.kind.clone())
        .bind(args)
        .bind(seconds(job.delay))
        .bind(job.priority)
        .bind(job.max_attempts)
        .bind(job.unique_key.clone())
        .bind(job.org_id))
}

/// Enqueues inside the caller's open SQLite transaction: the job exists if and
/// only if that transaction commits. Call [`Queue::wake`] after the commit.
pub async fn enqueue_sqlite(conn: &mut SqliteConnection, job: &NewJob) -> RepoResult<Job> {
    enqueue_on!(conn, Dialect { postgres: false }, job)
}

/// Enqueues inside the caller's open PostgreSQL transaction, with a `NOTIFY`
/// that is delivered when (and only if) it commits.
pub async fn enqueue_postgres(conn: &mut PgConnection, job: &NewJob) -> RepoResult<Job> {
    enqueue_on!(conn, Dialect { postgres: true }, job)
}

/// Enqueues many jobs inside the caller's open PostgreSQL transaction in one
/// `INSERT` (arrays bound per column) and one `NOTIFY` per queue, delivered
/// at commit. A job whose unique key is active is answered with the job that
/// holds the key, as [`enqueue_postgres`] does. Returns the jobs in input order.
pub async fn enqueue_many_postgres(
    conn: &mut PgConnection,
    jobs: &[NewJob],
) -> RepoResult<Vec<Job>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = jobs.iter().map(|_| Uuid::now_v7()).collect();
    let args = jobs
        .iter()
        .map(|j| serde_json::to_string(&j.args))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RepoError::Internal(e.to_string()))?;
    let inserted: Vec<JobRow> = sqlx::query_as(AssertSqlSafe(Dialect::enqueue_many_postgres()))
        .bind(&ids)
        .bind(jobs.iter().map(|j| j.queue.as_str()).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>())
        .bind(&args)
        .bind(jobs.iter().map(|j| seconds(j.delay)).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.priority).collect::<Vec<_>>())
        .bind(jobs.iter().map(|j| j.max_attempts).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|j| j.unique_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|j| j.org_id).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
    let mut by_id: std::collections::HashMap<Uuid, JobRow> =
        inserted.into_iter().map(|r| (r.id, r)).collect();
    let d = Dialect { postgres: true };
    let mut out = Vec::with_capacity(jobs.len());
    for (job, id) in jobs.iter().zip(&ids) {
        let row = match by_id.remove(id) {
            Some(row) => row,
            // The key is active: the job holding it is the answer.
            None => sqlx::query_as(AssertSqlSafe(d.active_by_unique_key()))
                .bind(job.unique_key.as_deref())
                .fetch_one(&mut *conn)
                .await
                .map_err(db_error)?,
        };
        out.push(Job::try_from(row)?);
    }
    let mut queues: Vec<&str> = jobs.iter().map(|j| j.queue.as_str()).collect();
    queues.sort_unstable();
    queues.dedup();
    if let Some(notify) = d.notify() {
        for queue in queues {
            sqlx::query(notify)
                .bind(queue)
                .execute(&mut *conn)
                .await
                .map_err(db_error)?;
        }
    }
    Ok(out)
}

/// Counts of one queue in one state, for health and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueCount {
    /// Queue.
    pub queue: String,
    /// State.
    pub state: JobState,
    /// Jobs.
    pub count: i64,
    /// Age of the oldest available job, seconds.
    pub oldest_available_seconds: Option<f64>,
}

/// The queue.
#[derive(Clone, Debug)]
pub struct Queue {
    db: Db,
    wake: Arc<Notify>,
}

/// How a fenced update went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fence {
    /// The job moved.
    Held,
    /// The worker no longer holds the job (its lease expired and it was rescued,
    /// or an operator cancelled it): nothing changed.
    Lost,
}

impl Queue {
    /// A queue on `db`.
    pub fn new(db: Db) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Wakes local workers (after a commit that enqueued on SQLite).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Resolves at the next [`Queue::wake`].
    pub async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Enqueues in a transaction of its own.
    pub async fn enqueue(&self, job: &NewJob) -> RepoResult<Job> {
        Ok(self
            .enqueue_many(std::slice::from_ref(job))
            .await?
            .remove(0))
    }

    /// Enqueues several jobs in one transaction.
    pub async fn enqueue_many(&self, jobs: &[NewJob]) -> RepoResult<Vec<Job>> {
        let mut out = Vec::with_capacity(jobs.len());
        match &self.db {
            Db::Sqlite { writer, .. } => {
                let mut tx = writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db_error)?;
                for job in jobs {
                    out.push(enqueue_sqlite(&mut tx, job).await?);
                }
                tx.commit().await.map_err(db_error)?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(db_error)?;
                out = enqueue_many_postgres(&mut tx, jobs).await?;
                tx.commit().await.map_err(db_error)?;
            }
        }
        self.wake();
        Ok(out)
    }

    /// Claims up to `limit` runnable jobs of `queue` for `worker`, each with a
    /// lease of `lease`. One statement.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
    ) -> RepoResult<Vec<Job>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<JobRow> = on_db!(&self.db, writer, |exec, d| {
            sqlx::query_as(AssertSqlSafe(d.claim()))
                .bind(queue)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(worker)
                .bind(seconds(lease))
                .fetch_all(exec)
                .await
                .map_err(db_error)?
        });
        rows.into_iter().map(Job::try_from).collect()
    }

    async fn fenced(
        &self,
        sql: impl Fn(Dialect) -> String,
        id: Uuid,
        worker: &str,
        extra: Extra<'_>,
    ) -> RepoResult<Fence> {
        let done = on_db!(&self.db, writer, |exec, d| {
            let q = sqlx::query(AssertSqlSafe(sql(d))).bind(id).bind(worker);
            let q = match extra {
                Extra::None => q,
                Extra::Seconds(s) => q.bind(s),
                Extra::Fail(s, errors) => q.bind(s).bind(errors),
                Extra::Finish(state, errors) => q.bind(state).bind(errors),
            };
            q.execute(exec).await.map_err(db_error)?.rows_affected()
        });
        Ok(if done == 1 { Fence::Held } else { Fence::Lost })
    }

    /// Marks several jobs held by `worker` completed in one statement; returns
    /// the ids it still held (the others lost their lease and stay as they are).
    pub async fn complete_many(&self, ids: &[Uuid], worker: &str) -> RepoResult<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let done: Vec<(Uuid,)> = on_db!(&self.db, writer, |exec, d| {
            let mut q = sqlx::query_as(AssertSqlSafe(d.complete_many(ids.len()))).bind(worker);
            for id in ids {
                q = q.bind(*id);
            }
            q.fetch_all(exec).await.map_err(db_error)?
        });
        Ok(done.into_iter().map(|(id,)| id).collect())
    }

    /// Marks a job completed.
    pub async fn complete(&self, job: &Job, worker: &str) -> RepoResult<Fence> {
        self.fenced(Dialect::complete, job.id, worker, Extra::None)
            .await
    }

    /// Records a failed attempt: retryable after `delay`, or discarded when it
    /// was the last attempt.
    pub async fn fail(
        &self,
        job: &Job,
        worker: &str,
        message: &str,
        delay: Duration,
    ) -> RepoResult<Fence> {
        let errors = with_error(job, message);
        self.fenced(
            Dialect::fail,
            job.id,
            worker,
            Extra::Fail(seconds(delay), &errors),
        )
        .await
    }

    /// Runs the job again after `delay` without using up an attempt.
    pub async fn snooze(&self, job: &Job, worker: &str, delay: Duration) -> RepoResult<Fence> {
        self.fenced(
            Dialect::snooze,
            job.id,
            worker,
            Extra::Seconds(seconds(delay)),
        )
        .await
    }

    /// Ends the job as cancelled or discarded, with the reason.
    pub async fn finish(
        &self,
        job: &Job,
        worker: &str,
        state: JobState,
        reason: &str,
    ) -> RepoResult<Fence> {
        let errors = with_error(job, reason);
        self.fenced(
            Dialect::finish,
            job.id,
            worker,
            Extra::Finish(state.as_str(), &errors),
        )
        .await
    }

    /// Gives a job back at shutdown without using up its attempt.
    pub async fn hand_back(&self, job: &Job, worker: &str) -> RepoResult<Fence> {
        self.fenced(Dialect::hand_back, job.id, worker, Extra::None)
            .await
    }

    /// Extends a running job's lease.
    pub async fn heartbeat(&self, job: &Job, worker: &str, lease: Duration) -> RepoResult<Fence> {
        self.fenced(
            Dialect::heartbeat,
            job.id,
            worker,
            Extra::Seconds(seconds(lease)),
        )
        .await
    }

    /// Returns expired leases to `retryable` (or `discarded`). Returns how many.
    pub async fn rescue_expired(&self) -> RepoResult<usize> {
        let ids: Vec<(Uuid,)> = on_db!(&self.db, writer, |exec, d| {
            sqlx::query_as(AssertSqlSafe(d.rescue()))
                .fetch_all(exec)
                .await
                .map_err(db_error)?
        });
        if !ids.is_empty() {
            tracing::warn!(jobs = ids.len(), "rescued jobs whose lease expired");
            self.wake();
        }
        Ok(ids.len())
    }

    /// Deletes up to `batch` jobs finished longer than `age` ago.
    pub async fn prune(&self, age: Duration, batch: usize) -> RepoResult<u64> {
        Ok(on_db!(&self.db, writer, |exec, d| {
            sqlx::query(AssertSqlSafe(d.prune()))
                .bind(seconds(age))
                .bind(i64::try_from(batch).unwrap_or(i64::MAX))
                .execute(exec)
                .await
                .map_err(db_error)?
                .rows_affected()
        }))
    }

    /// One job.
    pub async fn get(&self, id: Uuid) -> RepoResult<Job> {
        let row: Option<JobRow> = on_db!(&self.db, reader, |exec, d| {
            sqlx::query_as(AssertSqlSafe(d.get()))
                .bind(id)
                .fetch_optional(exec)
                .await
                .map_err(db_error)?
        });
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    /// Jobs by id order, optionally of one organization, queue and state, after a cursor.
    pub async fn list(
        &self,
        org: Option<Uuid>,
        queue: Option<&str>,
        state: Option<JobState>,
        after: Option<Uuid>,
        limit: u32,
    ) -> RepoResult<Vec<Job>> {
        let rows: Vec<JobRow> = on_db!(&self.db, reader, |exec, d| {
            sqlx::query_as(AssertSqlSafe(d.list()))
                .bind(org)
                .bind(queue)
                .bind(state.map(JobState::as_str))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(exec)
                .await
                .map_err(db_error)?
        });
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Operator retry: runnable now (a discarded job gets one more attempt).
    pub async fn retry_now(&self, id: Uuid) -> RepoResult<Job> {
        self.operator(Dialect::retry_now, id, "is running or already runnable")
            .await
    }

    /// Operator cancel of an unfinished job.
    pub async fn cancel_now(&self, id: Uuid) -> RepoResult<Job> {
        self.operator(Dialect::cancel_now, id, "has already finished")
            .await
    }

    async fn operator(
        &self,
        sql: fn(Dialect) -> String,
        id: Uuid,
        refusal: &str,
    ) -> RepoResult<Job> {
        let row: Option<JobRow> = on_db!(&self.db, writer, |exec, d| {
            sqlx::query_as(AssertSqlSafe(sql(d)))
                .bind(id)
                .fetch_optional(exec)
                .await
                .map_err(db_error)?
        });
        match row {
            Some(row) => {
                self.wake();
                row.try_into()
            }
            None => {
                let current = self.get(id).await?;
                Err(RepoError::Conflict(format!(
                    "job {id} {refusal} ({})",
                    current.state.as_str()
                )))
            }
        }
    }

    /// Counts by queue and state, with the age of the oldest available job.
    pub async fn counts(&self) -> RepoResult<Vec<QueueCount>> {
        let rows: Vec<(String, String, i64, Option<f64>)> = on_db!(&self.db, reader, |exec, d| {
            sqlx::query_as(AssertSqlSafe(d.stats()))
                .fetch_all(exec)
                .await
                .map_err(db_error)?
        });
        rows.into_iter()
            .map(|(queue, state, count, oldest)| {
                Ok(QueueCount {
                    state: JobState::parse(&state).ok_or_else(|| {
                        RepoError::Internal(format!("stored job state {state:?}"))
                    })?,
                    queue,
                    count,
                    oldest_available_seconds: oldest,
                })
            })
            .collect()
    }
}

/// Values a fenced update binds after the id and the worker.
#[derive(Clone, Copy)]
enum Extra<'a> {
    None,
    Seconds(f64),
    Fail(f64, &'a str),
    Finish(&'a str, &'a str),
}

fn with_error(job: &Job, message: &str) -> String {
    let mut errors = job.errors.clone();
    errors.push(AttemptError {
        attempt: job.attempt,
        at: Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        message: message.chars().take(2_000).collect(),
    });
    serde_json::to_string(&errors).expect("errors serialize")
}

/// The API's view: an organization sees and steers only its own jobs, and
/// another organization's job is not found.
#[async_trait::async_trait]
impl JobAdmin for Queue {
    async fn list(
        &self,
        org: OrgId,
        queue: Option<&str>,
        state: Option<JobState>,
        page: PageRequest,
    ) -> RepoResult<Page<Job>> {
        let jobs = Queue::list(
            self,
            Some(org.as_uuid()),
            queue,
            state,
            page.after,
            page.limit + 1,
        )
        .await?;
        Ok(Page::from_overfetch(jobs, page.limit, |j| j.id))
    }

    async fn retry(&self, org: OrgId, id: Uuid) -> RepoResult<Job> {
        self.owned_by(org, id).await?;
        self.retry_now(id).await
    }

    async fn cancel(&self, org: OrgId, id: Uuid) -> RepoResult<Job> {
        self.owned_by(org, id).await?;
        self.cancel_now(id).await
    }
}

impl Queue {
    async fn owned_by(&self, org: OrgId, id: Uuid) -> RepoResult<()> {
        match self.get(id).await {
            Ok(job) if job.org_id == Some(org.as_uuid()) => Ok(()),
            Ok(_) | Err(RepoError::NotFound) => Err(RepoError::NotFound),
            Err(e) => Err(e),
        }
    }
}
