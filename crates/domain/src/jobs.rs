//! Jobs of the durable queue, as operators see them (`GET /v1/jobs`), and the
//! port through which the API reads and steers them. The queue itself lives in
//! `rwa-jobs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::page::{Page, PageRequest};
use crate::{OrgId, RepoResult};

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
    /// Organization it works for; `None` for the platform's own jobs.
    pub org_id: Option<Uuid>,
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

/// Operator access to an organization's jobs.
#[async_trait]
pub trait JobAdmin: Send + Sync {
    /// Jobs of `org`, by id, optionally of one queue and state.
    async fn list(
        &self,
        org: OrgId,
        queue: Option<&str>,
        state: Option<JobState>,
        page: PageRequest,
    ) -> RepoResult<Page<Job>>;

    /// Makes a job of `org` runnable now (a discarded one gets one more attempt).
    async fn retry(&self, org: OrgId, id: Uuid) -> RepoResult<Job>;

    /// Cancels an unfinished job of `org`.
    async fn cancel(&self, org: OrgId, id: Uuid) -> RepoResult<Job>;
}
