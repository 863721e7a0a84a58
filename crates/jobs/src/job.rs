//! What to enqueue and what a handler answers; the stored job itself is the
//! domain's [`rwa_domain::jobs::Job`].

use std::time::Duration;

use uuid::Uuid;

/// A job to enqueue.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// Queue (`token-deployment`, `settlement`, ...).
    pub queue: String,
    /// Handler kind within the queue.
    pub kind: String,
    /// Arguments handed to the handler.
    pub args: serde_json::Value,
    /// Lower runs first (0 is the most urgent).
    pub priority: i16,
    /// Attempts before the job is discarded.
    pub max_attempts: i32,
    /// Run no earlier than this long after the database's now.
    pub delay: Duration,
    /// At most one active (not finished) job per key; enqueueing a key that is
    /// active returns the existing job.
    pub unique_key: Option<String>,
    /// The organization the job works for; `None` for the platform's own jobs.
    pub org_id: Option<Uuid>,
}

impl NewJob {
    /// A job of `kind` on `queue`, runnable now, priority 0, 25 attempts.
    pub fn new(queue: impl Into<String>, kind: impl Into<String>, args: serde_json::Value) -> Self {
        Self {
            queue: queue.into(),
            kind: kind.into(),
            args,
            priority: 0,
            max_attempts: 25,
            delay: Duration::ZERO,
            unique_key: None,
            org_id: None,
        }
    }

    /// Marks the job as working for an organization (its operators see it).
    pub fn for_org(mut self, org: Uuid) -> Self {
        self.org_id = Some(org);
        self
    }

    /// Sets the attempts budget.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Delays the first run.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sets the priority (lower first).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = priority;
        self
    }

    /// Deduplicates on `key` while a job with it is active.
    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
}

/// What a handler answers for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Completed,
    /// Failed; try again after the backoff, or discard when out of attempts.
    Retry(String),
    /// Not now: run again after this long, without using up an attempt.
    Snooze(Duration),
    /// Stop for good, as cancelled.
    Cancel(String),
    /// Stop for good, as discarded (dead letter).
    Discard(String),
}
