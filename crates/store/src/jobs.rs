//! Jobs enqueued inside a repository's own transaction, so a job runs only if
//! the change that asked for it commits. The queue itself belongs to
//! `rwa_jobs`; this module only names its enqueue for each backend, as the
//! dispatch macros expect of a repository's statements.

pub(crate) mod sqlite {
    pub(crate) use rwa_jobs::enqueue_sqlite as enqueue_job;
}

pub(crate) mod postgres {
    pub(crate) use rwa_jobs::enqueue_postgres as enqueue_job;
}
