//! Per-queue rate limits that hold across processes: every claim first
//! reserves starts in the queue's current window (a row per queue and window,
//! locked while it is read and updated), and gives back what it did not use.

use std::time::Duration;

use rwa_domain::RepoResult;
use sqlx::AssertSqlSafe;

use crate::queue::{Db, Queue, db_error};
use crate::sql::Dialect;

/// At most `jobs` starts per `per` (whole seconds, at least one), per queue,
/// across every process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Starts allowed per window.
    pub jobs: u32,
    /// Window length.
    pub per: Duration,
}

impl RateLimit {
    fn seconds(self) -> i64 {
        i64::try_from(self.per.as_secs().max(1)).unwrap_or(i64::MAX)
    }
}

/// Starts granted in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The window (Unix seconds).
    pub window_start: i64,
    /// How many jobs may start.
    pub granted: usize,
}

macro_rules! in_tx {
    ($tx:ident, $d:ident, $db:expr, $body:expr) => {
        match $db {
            Db::Sqlite { writer, .. } => {
                let mut $tx = writer
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(db_error)?;
                let $d = Dialect { postgres: false };
                let out = $body;
                $tx.commit().await.map_err(db_error)?;
                out
            }
            Db::Postgres(pool) => {
                let mut $tx = pool.begin().await.map_err(db_error)?;
                let $d = Dialect { postgres: true };
                let out = $body;
                $tx.commit().await.map_err(db_error)?;
                out
            }
        }
    };
}

impl Queue {
    /// Reserves up to `want` starts of `queue` in its current window.
    pub async fn reserve(&self, queue: &str, want: usize, limit: RateLimit) -> RepoResult<Grant> {
        let per = limit.seconds();
        let want = i64::try_from(want).unwrap_or(i64::MAX);
        let (window_start, granted) = in_tx!(tx, d, self.db(), {
            sqlx::query(AssertSqlSafe(d.open_window()))
                .bind(queue)
                .bind(per)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            let (window_start, used): (i64, i32) = sqlx::query_as(AssertSqlSafe(d.lock_window()))
                .bind(queue)
                .bind(per)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            let granted = want.min(i64::from(limit.jobs) - i64::from(used)).max(0);
            if granted > 0 {
                sqlx::query(d.use_window())
                    .bind(queue)
                    .bind(window_start)
                    .bind(granted)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
            }
            (window_start, granted)
        });
        Ok(Grant {
            window_start,
            granted: usize::try_from(granted).unwrap_or(0),
        })
    }

    /// Gives back starts reserved but not used (fewer jobs were runnable).
    pub async fn release(&self, queue: &str, grant: Grant, unused: usize) -> RepoResult<()> {
        if unused == 0 {
            return Ok(());
        }
        let unused = i64::try_from(unused).unwrap_or(i64::MAX);
        in_tx!(tx, d, self.db(), {
            sqlx::query(d.use_window())
                .bind(queue)
                .bind(grant.window_start)
                .bind(-unused)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        });
        Ok(())
    }

    /// Deletes rate windows that ended over an hour ago.
    pub async fn prune_rate_windows(&self) -> RepoResult<u64> {
        let deleted = in_tx!(tx, d, self.db(), {
            sqlx::query(AssertSqlSafe(d.prune_windows()))
                .execute(&mut *tx)
                .await
                .map_err(db_error)?
                .rows_affected()
        });
        Ok(deleted)
    }
}
