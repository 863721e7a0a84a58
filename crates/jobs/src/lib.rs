//! The durable job queue, on the project's own database (SQLite or PostgreSQL).
//!
//! Jobs live in the same database as the business rows, so enqueueing is part
//! of the caller's transaction ([`enqueue_sqlite`], [`enqueue_postgres`], or
//! on PostgreSQL inside the caller's single statement, [`enqueue_cte_postgres`]): a
//! rolled-back request never runs a job, a committed one always does, and
//! nothing is lost in a crash. No existing crate does this on both SQLite and
//! PostgreSQL with durable retry delays (apalis keeps retries in memory and
//! cannot join a SQLite transaction; underway, sqlxmq and graphile_worker are
//! PostgreSQL-only; fang has no crash recovery), so the queue is written here,
//! modelled on River and Oban:
//!
//! - one claim statement sized by free capacity (`FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL; the single SQLite writer serializes claims);
//! - leases extended by heartbeats, and every completion fenced by
//!   `attempted_by`, so a worker that lost its lease cannot complete;
//! - retries with exponential backoff and jitter stored as `scheduled_at` from
//!   the database's clock, so they survive restarts; exhausted jobs are
//!   `discarded` (the dead-letter set) until an operator retries them;
//! - a rescuer for expired leases and a pruner for finished jobs.
//!
//! Periodic jobs ([`scheduler`]) fire once per period across processes. The
//! worker runtime ([`worker`]) runs handlers per queue with a concurrency
//! limit, in single steps ([`worker::Worker::try_execute`]) that tests drain
//! deterministically.

pub mod backoff;
mod health;
mod job;
pub mod maintenance;
mod queue;
pub mod rate;
pub mod scheduler;
mod sql;
pub mod testing;
pub mod worker;

pub use health::QueueHealth;
pub use job::{NewJob, Outcome};
pub use queue::{
    Db, ENQUEUE_CTE_PARAMS, Fence, Queue, QueueCount, bind_enqueue_cte, enqueue_cte_postgres,
    enqueue_many_postgres, enqueue_postgres, enqueue_sqlite,
};
pub use rwa_domain::jobs::{AttemptError, Job, JobState};
