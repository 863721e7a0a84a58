//! Jobs enqueued inside a repository's own transaction, so a job runs only if
//! the change that asked for it commits. The queue itself belongs to
//! `rwa_jobs`; this module only names its enqueue for each backend, as the
//! dispatch macros expect of a repository's statements, and as a method of
//! either connection ([`Enqueue`]) for statements written once for both.

use async_trait::async_trait;
use rwa_domain::RepoResult;
use rwa_jobs::{Job, NewJob};
use sqlx::{PgConnection, SqliteConnection};

pub(crate) mod sqlite {
    pub(crate) use rwa_jobs::enqueue_sqlite as enqueue_job;
}

pub(crate) mod postgres {
    pub(crate) use rwa_jobs::enqueue_postgres as enqueue_job;
}

/// Enqueues on whichever backend's connection the statement holds.
#[async_trait]
pub(crate) trait Enqueue {
    async fn enqueue(&mut self, job: &NewJob) -> RepoResult<Job>;
}

#[async_trait]
impl Enqueue for SqliteConnection {
    async fn enqueue(&mut self, job: &NewJob) -> RepoResult<Job> {
        rwa_jobs::enqueue_sqlite(self, job).await
    }
}

#[async_trait]
impl Enqueue for PgConnection {
    async fn enqueue(&mut self, job: &NewJob) -> RepoResult<Job> {
        rwa_jobs::enqueue_postgres(self, job).await
    }
}
