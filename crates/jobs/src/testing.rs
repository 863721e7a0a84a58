//! Job kinds for the service's own process tests, compiled only with the
//! `test-hooks` feature (test builds of the binary; never release builds).
//!
//! - `test.record`: inserts `(job_id, worker)` into `test_job_runs`, a table the
//!   test creates, so a test can count executions across processes.
//! - `test.sleep`: on its first attempt sleeps `args.ms` milliseconds (long
//!   enough to be killed mid-job), then records like `test.record`.

use std::sync::Arc;

use crate::Queue;
use crate::worker::Handler;

/// Whether this build has the test hooks (test builds of the binary only), so
/// the binary registers its own test kinds too.
pub const ENABLED: bool = cfg!(feature = "test-hooks");

/// The test kinds with their handlers; empty without `test-hooks`.
pub fn handlers(queue: &Queue) -> Vec<(&'static str, Arc<dyn Handler>)> {
    imp::handlers(queue)
}

#[cfg(not(feature = "test-hooks"))]
mod imp {
    use super::*;

    pub(super) fn handlers(_queue: &Queue) -> Vec<(&'static str, Arc<dyn Handler>)> {
        Vec::new()
    }
}

#[cfg(feature = "test-hooks")]
mod imp {
    use std::time::Duration;

    use async_trait::async_trait;
    use rwa_domain::jobs::Job;

    use super::*;
    use crate::{Db, Outcome};

    struct Record {
        db: Db,
        sleep_first_attempt: bool,
    }

    #[async_trait]
    impl Handler for Record {
        async fn run(&self, job: &Job) -> Outcome {
            if self.sleep_first_attempt && job.attempt == 1 {
                let ms = job.args["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let worker = job.attempted_by.clone().unwrap_or_default();
            let id = job.id.to_string();
            let sql = "INSERT INTO test_job_runs (job_id, worker) VALUES ($1, $2)";
            let done = match &self.db {
                Db::Sqlite { writer, .. } => sqlx::query(sql)
                    .bind(id)
                    .bind(worker)
                    .execute(writer)
                    .await
                    .map(|_| ()),
                Db::Postgres(pool) => sqlx::query(sql)
                    .bind(id)
                    .bind(worker)
                    .execute(pool)
                    .await
                    .map(|_| ()),
            };
            match done {
                Ok(_) => Outcome::Completed,
                Err(e) => Outcome::Retry(e.to_string()),
            }
        }
    }

    pub(super) fn handlers(queue: &Queue) -> Vec<(&'static str, Arc<dyn Handler>)> {
        let db = queue.db().clone();
        vec![
            (
                "test.record",
                Arc::new(Record {
                    db: db.clone(),
                    sleep_first_attempt: false,
                }),
            ),
            (
                "test.sleep",
                Arc::new(Record {
                    db,
                    sleep_first_attempt: true,
                }),
            ),
        ]
    }
}
