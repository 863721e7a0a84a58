//! The organization's background jobs: list by queue and state, retry (a
//! discarded job gets one more attempt), cancel. Admin and operator roles.

use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use rwa_domain::jobs::{Job, JobState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, roles};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::{Query, path_id};
use crate::routes::ListView;
use crate::state::ApiState;

pub(crate) fn router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(retry_job))
        .routes(routes!(cancel_job))
}

/// One failed attempt.
#[derive(Serialize, ToSchema)]
pub(crate) struct AttemptErrorView {
    attempt: i32,
    at: String,
    message: String,
}

/// A background job.
#[derive(Serialize, ToSchema)]
pub(crate) struct JobView {
    id: uuid::Uuid,
    queue: String,
    kind: String,
    /// `scheduled`, `available`, `running`, `retryable`, `completed`, `discarded` or `cancelled`.
    state: String,
    #[schema(value_type = Object)]
    args: serde_json::Value,
    priority: i16,
    attempt: i32,
    max_attempts: i32,
    scheduled_at: DateTime<Utc>,
    attempted_at: Option<DateTime<Utc>>,
    errors: Vec<AttemptErrorView>,
    created_at: DateTime<Utc>,
    finalized_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        Self {
            id: j.id,
            queue: j.queue,
            kind: j.kind,
            state: j.state.as_str().to_owned(),
            args: j.args,
            priority: j.priority,
            attempt: j.attempt,
            max_attempts: j.max_attempts,
            scheduled_at: j.scheduled_at,
            attempted_at: j.attempted_at,
            errors: j
                .errors
                .into_iter()
                .map(|e| AttemptErrorView {
                    attempt: e.attempt,
                    at: e.at,
                    message: e.message,
                })
                .collect(),
            created_at: j.created_at,
            finalized_at: j.finalized_at,
        }
    }
}

/// Filters and page.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct JobListParams {
    /// Only this queue (`token-deployment`, `compliance-check`, `settlement`, `reporting`, `notification`).
    queue: Option<String>,
    /// Only this state.
    #[param(pattern = "^(scheduled|available|running|retryable|completed|discarded|cancelled)$")]
    state: Option<String>,
    /// Items per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page (empty: the first page).
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    cursor: Option<String>,
}

/// Lists the organization's jobs, oldest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs",
    security(("api_key" = ["admin", "operator"])),
    params(JobListParams),
    responses((status = 200, body = ListView<JobView>)))]
async fn list_jobs(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Query(params): Query<JobListParams>,
) -> ApiResult<axum::Json<ListView<JobView>>> {
    let job_state = match params.state.as_deref() {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            ApiError::Validation(vec![FieldError {
                field: "state".into(),
                message: "expected scheduled, available, running, retryable, completed, \
                          discarded or cancelled"
                    .into(),
            }])
        })?),
    };
    let page = rwa_domain::page::PageRequest::parse(params.limit, params.cursor.as_deref())?;
    let jobs = state
        .jobs
        .list(caller.org_id, params.queue.as_deref(), job_state, page)
        .await?;
    Ok(axum::Json(ListView::from_page(jobs)))
}

/// Makes a job runnable now; a discarded job gets one more attempt.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", tag = "jobs",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "job id")),
    responses(
        (status = 200, body = JobView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the job is running or already runnable"),
    ))]
async fn retry_job(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JobView>> {
    let job = state.jobs.retry(caller.org_id, path_id(&id)?).await?;
    Ok(axum::Json(job.into()))
}

/// Cancels a job that has not finished; a running job's result is then dropped.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    security(("api_key" = ["admin", "operator"])),
    params(("id" = uuid::Uuid, Path, description = "job id")),
    responses(
        (status = 200, body = JobView),
        (status = 409, body = crate::error::Problem, content_type = "application/problem+json",
            description = "`/problems/conflict`: the job has already finished"),
    ))]
async fn cancel_job(
    caller: Authorized<roles::AdminOrOperator>,
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<JobView>> {
    let job = state.jobs.cancel(caller.org_id, path_id(&id)?).await?;
    Ok(axum::Json(job.into()))
}
