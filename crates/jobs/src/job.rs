//! Jobs as callers see them: what to enqueue, what a worker receives, what a
//! handler answers.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `scheduled_at` (delayed or snoozed).
    Scheduled,
    /// Ready to run.
    Available,
    /// Claimed by a worker that holds its lease.
    Running,
    /// Failed an attempt; runs again at `scheduled_at`.
    Retryable,
    /// Done.
    Completed,
    /// Failed for good (out of attempts, or discarded by its handler): the dead-letter set.
    Discarded,
    /// Cancelled by its handler or an operator.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Discarded,
        JobState::Cancelled,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Discarded => "discarded",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a stored or requested name.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether the job is finished (prunable).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Discarded | JobState::Cancelled
        )
    }
}

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
        }
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

/// One failed attempt, kept on the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// Attempt number (1-based).
    pub attempt: i32,
    /// When it failed (database time, RFC 3339).
    pub at: String,
    /// What the handler said.
    pub message: String,
}

/// A stored job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Job {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Queue.
    pub queue: String,
    /// Handler kind.
    pub kind: String,
    /// Arguments.
    pub args: serde_json::Value,
    /// State.
    pub state: JobState,
    /// Lower runs first.
    pub priority: i16,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed.
    pub max_attempts: i32,
    /// Not runnable before this.
    pub scheduled_at: DateTime<Utc>,
    /// Start of the latest attempt.
    pub attempted_at: Option<DateTime<Utc>>,
    /// Worker that holds (or held) the latest attempt.
    pub attempted_by: Option<String>,
    /// End of the current lease, while running.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// Failed attempts, oldest first.
    pub errors: Vec<AttemptError>,
    /// Deduplication key.
    pub unique_key: Option<String>,
    /// Enqueue time.
    pub created_at: DateTime<Utc>,
    /// When it finished.
    pub finalized_at: Option<DateTime<Utc>>,
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
