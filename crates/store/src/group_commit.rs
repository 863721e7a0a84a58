//! SQLite group commit: concurrent write units share one transaction.
//!
//! SQLite has one writer, so concurrent writes queue for it anyway; what each
//! one paid on top was its own `BEGIN IMMEDIATE` and `COMMIT` (a WAL append of
//! every page it touched). Here one task owns the writing: it takes every unit
//! waiting, runs each in its own savepoint inside one transaction (a unit that
//! fails is rolled back to its savepoint alone and answered with its own
//! error), commits once, and only then answers each caller. An `Ok` therefore
//! still means committed (WAL, `synchronous=NORMAL`, as before). A lone unit
//! runs without a savepoint.
//!
//! Units are `'static` closures that own what they write: the task runs a unit
//! even if its caller has gone (an HTTP client that disconnected), so an
//! accepted write is never half-abandoned, and a caller never lends the task
//! memory that could vanish under it.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::FutureExt;
use rwa_domain::{RepoError, RepoResult};
use sqlx::SqliteConnection;
use sqlx::sqlite::SqlitePool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::DbResult;

/// A boxed future borrowing the writer connection for `'c`.
pub(crate) type UnitFuture<'c, T> = Pin<Box<dyn Future<Output = T> + Send + 'c>>;

/// Units taken into one transaction at most: bounds how long the first caller
/// of a batch waits for the others.
const MAX_BATCH: usize = 256;

/// The writer connection as a unit sees it: like a sqlx transaction, it
/// dereferences to the connection, so statements take `&mut tx` or
/// `&mut *tx` whichever backend the unit was written for.
pub(crate) struct UnitConn<'c>(pub(crate) &'c mut SqliteConnection);

impl std::ops::Deref for UnitConn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.0
    }
}

impl std::ops::DerefMut for UnitConn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0
    }
}

/// Answers a unit's caller once the fate of the whole transaction is known
/// (`Some` error: the transaction did not commit).
type Answer = Box<dyn FnOnce(Option<&RepoError>) + Send>;

/// A unit that ran: whether to keep its writes, and how to answer its caller.
struct Ran {
    ok: bool,
    answer: Answer,
}

type Unit = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> UnitFuture<'c, Ran> + Send>;

/// Counts since start, for operators and tests (see [`GroupCommitStats`]).
#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    started: AtomicU64,
    batches: AtomicU64,
    units: AtomicU64,
    rolled_back_alone: AtomicU64,
}

/// What the group committer has done since the store opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Units handed to the writer.
    pub submitted: u64,
    /// Transactions the writer has begun (taken its units).
    pub started: u64,
    /// Transactions the writer has finished (committed or rolled back).
    pub batches: u64,
    /// Units those transactions ran.
    pub units: u64,
    /// Failed units rolled back to their savepoint inside a transaction
    /// shared with other units.
    pub rolled_back_alone: u64,
}

/// The handle writers submit units through.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    units: mpsc::UnboundedSender<Unit>,
    task: Arc<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl GroupCommit {
    /// Starts the writing task on `writer` (the pool of one connection).
    pub(crate) fn start(writer: SqlitePool) -> Self {
        let (units, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(write_batches(writer, queue, Arc::clone(&counters)));
        GroupCommit {
            units,
            task: Arc::new(task),
            counters,
        }
    }

    pub(crate) fn stats(&self) -> GroupCommitStats {
        let c = &self.counters;
        GroupCommitStats {
            submitted: c.submitted.load(Ordering::Acquire),
            started: c.started.load(Ordering::Acquire),
            batches: c.batches.load(Ordering::Acquire),
            units: c.units.load(Ordering::Acquire),
            rolled_back_alone: c.rolled_back_alone.load(Ordering::Acquire),
        }
    }

    /// Stops the task; a batch in flight rolls back and its callers get an error.
    pub(crate) fn stop(&self) {
        self.task.abort();
    }

    /// Runs `unit` in the next batch and answers its result once the batch has
    /// committed (or the unit's own error at once if it failed).
    pub(crate) async fn run<T, F>(&self, unit: F) -> RepoResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> UnitFuture<'c, RepoResult<T>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel::<RepoResult<T>>();
        let boxed: Unit = Box::new(move |conn| {
            Box::pin(async move {
                let result = unit(conn).await;
                Ran {
                    ok: result.is_ok(),
                    answer: Box::new(move |commit: Option<&RepoError>| {
                        let answer = match (result, commit) {
                            (Ok(_), Some(e)) => Err(e.clone()),
                            (result, _) => result,
                        };
                        // A caller that went away no longer needs its answer.
                        let _ = reply.send(answer);
                    }),
                }
            })
        });
        self.counters.submitted.fetch_add(1, Ordering::AcqRel);
        self.units
            .send(boxed)
            .map_err(|_| RepoError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.await.unwrap_or_else(|_| {
            Err(RepoError::Unavailable(
                "the SQLite writer failed before answering this write (see its log)".into(),
            ))
        })
    }
}

async fn write_batches(
    writer: SqlitePool,
    mut queue: mpsc::UnboundedReceiver<Unit>,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let units = std::mem::take(&mut batch);
        let count = units.len() as u64;
        counters.started.fetch_add(1, Ordering::AcqRel);
        let outcome = write_batch(&writer, units, &counters).await;
        counters.units.fetch_add(count, Ordering::AcqRel);
        counters.batches.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = outcome {
            // The callers of units that did not get to run see their
            // channel closed; those that ran were answered with this error.
            tracing::warn!(error = %e, "a SQLite write batch failed");
        }
    }
}

/// Runs one batch in one transaction. Every unit that ran is answered here;
/// an error returned means the transaction as a whole failed.
///
/// Each statement is a hand-off to sqlx's SQLite thread, so the statements
/// around units are merged: one `exec` ends a unit's savepoint and begins the
/// next one's (or commits after the last).
async fn write_batch(writer: &SqlitePool, units: Vec<Unit>, counters: &Counters) -> RepoResult<()> {
    let mut conn = writer.acquire().await.db()?;
    let conn: &mut SqliteConnection = &mut conn;
    let total = units.len();
    let alone = total == 1;
    let begin = if alone {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN IMMEDIATE; SAVEPOINT unit"
    };
    exec(conn, begin).await?;
    let mut ran = Vec::with_capacity(total);
    let mut end = Ok(());
    for (i, unit) in units.into_iter().enumerate() {
        // A unit that panics is a failed unit, not a dead writer.
        let outcome = AssertUnwindSafe(unit(conn)).catch_unwind().await.ok();
        let ok = outcome.as_ref().is_some_and(|r| r.ok);
        ran.extend(outcome);
        let step = match (alone, ok, i + 1 == total) {
            // A lone unit has no savepoint: its failure rolls back the transaction.
            (true, true, _) => "COMMIT",
            (true, false, _) => "ROLLBACK",
            (false, true, false) => "RELEASE unit; SAVEPOINT unit",
            (false, true, true) => "RELEASE unit; COMMIT",
            (false, false, false) => "ROLLBACK TO unit; RELEASE unit; SAVEPOINT unit",
            (false, false, true) => "ROLLBACK TO unit; RELEASE unit; COMMIT",
        };
        end = exec(conn, step).await;
        if end.is_err() {
            break;
        }
        if !alone && !ok {
            counters.rolled_back_alone.fetch_add(1, Ordering::AcqRel);
        }
    }
    if end.is_err() {
        // Best effort: the pool rolls back a connection returned inside a
        // transaction anyway.
        let _ = exec(conn, "ROLLBACK").await;
    }
    let commit_error = end.as_ref().err();
    for r in ran {
        (r.answer)(commit_error);
    }
    end
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> RepoResult<()> {
    sqlx::raw_sql(sql).execute(conn).await.map(|_| ()).db()
}
