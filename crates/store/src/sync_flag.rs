//! The per-organization flag that keeps exactly one job of a flow (identity
//! sync, operations) running while the flow has work, shared by the flows
//! that carry an organization's changes to the chain in batches.
//!
//! The job is not deduplicated by a unique job key: a change committed just
//! after a running job decided it was done would find that job still
//! `running` and be lost. Instead a change holds the flow's lock for the
//! organization (an advisory lock on PostgreSQL) shared until it commits, and
//! enqueues a job only when it turns the flag on; the job takes the lock
//! exclusively, so it waits for those changes, and turns the flag off only
//! when it then sees nothing left. Changes never wait for each other.

use async_trait::async_trait;
use rwa_domain::RepoError;
use rwa_jobs::NewJob;
use sqlx::{PgConnection, SqliteConnection};
use uuid::Uuid;

/// A flow with a per-organization job.
pub(crate) struct Flow {
    /// Its name in `flow_syncs`.
    pub(crate) name: &'static str,
    /// Its advisory lock namespace (a collision with another lock only makes
    /// someone wait).
    pub(crate) namespace: i64,
    /// The kind of its job.
    pub(crate) kind: &'static str,
    /// Its job for an organization.
    pub(crate) job: fn(Uuid) -> NewJob,
}

impl Flow {
    /// The advisory lock key of the flow for `org`: the id's first eight
    /// bytes in the flow's namespace.
    pub(crate) fn lock_key(&self, org: Uuid) -> i64 {
        let b = org.as_bytes();
        i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) ^ self.namespace
    }
}

/// Turns a flow on from inside another module's statements, on whichever
/// backend's connection they hold (see [`sqlite::request`]).
#[async_trait]
pub(crate) trait Trigger {
    async fn request_flow(&mut self, flow: &Flow, org: Uuid) -> Result<(), RepoError>;
}

#[async_trait]
impl Trigger for SqliteConnection {
    async fn request_flow(&mut self, flow: &Flow, org: Uuid) -> Result<(), RepoError> {
        sqlite::request(self, flow, org).await
    }
}

#[async_trait]
impl Trigger for PgConnection {
    async fn request_flow(&mut self, flow: &Flow, org: Uuid) -> Result<(), RepoError> {
        postgres::request(self, flow, org).await
    }
}

/// Enqueues a job for every organization whose flow is on but has no job
/// left (its job was discarded after running out of attempts).
pub(crate) async fn revive(store: &crate::Store, flow: &Flow) -> rwa_domain::RepoResult<u64> {
    use crate::connect::on_reader;
    use crate::error::DbResult as _;
    let orgs = on_reader!(store, |pool, sql| {
        sql::stalled(pool, flow.name, flow.kind).await.db()?
    });
    for org in &orgs {
        tracing::warn!(%org, flow = flow.name, "flow had no job left; enqueueing one");
        store.queue.enqueue(&(flow.job)(*org)).await?;
    }
    Ok(orgs.len() as u64)
}

crate::dialect::statements! {
    use uuid::Uuid;

    use super::Flow;

    /// Turns the flow on for `org`, enqueueing its job if it was off. Holds
    /// the flow's lock shared until commit: writers do not wait for each
    /// other, and the job cannot end while a writer's work is uncommitted.
    pub(crate) async fn request(c: &mut Conn, flow: &Flow, org: Uuid) -> Result<(), rwa_domain::RepoError> {
        use crate::error::DbResult as _;
        sqlx::query(shared_lock!())
            .bind(flow.lock_key(org))
            .execute(&mut *c)
            .await
            .db()?;
        ensure_row(&mut *c, flow, org).await.db()?;
        let active: bool = sqlx::query_scalar(
            "SELECT active FROM flow_syncs WHERE flow = $1 AND org_id = $2",
        )
        .bind(flow.name)
        .bind(org)
        .fetch_one(&mut *c)
        .await
        .db()?;
        if active {
            return Ok(());
        }
        // Only the writer that turns it on enqueues (a concurrent one waits
        // for this row, then finds it on).
        let turned_on = sqlx::query(
            "UPDATE flow_syncs SET active = true WHERE flow = $1 AND org_id = $2 AND NOT active",
        )
        .bind(flow.name)
        .bind(org)
        .execute(&mut *c)
        .await
        .db()?
        .rows_affected();
        if turned_on == 1 {
            crate::jobs::Enqueue::enqueue(&mut *c, &(flow.job)(org)).await?;
        }
        Ok(())
    }

    /// Takes the flow's lock for `org` exclusively (waiting for writers
    /// holding it shared to commit), and makes sure its flag exists.
    pub(crate) async fn lock(c: &mut Conn, flow: &Flow, org: Uuid) -> sqlx::Result<()> {
        sqlx::query(exclusive_lock!())
            .bind(flow.lock_key(org))
            .execute(&mut *c)
            .await?;
        ensure_row(c, flow, org).await
    }

    async fn ensure_row(c: &mut Conn, flow: &Flow, org: Uuid) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO flow_syncs (flow, org_id, active) VALUES ($1, $2, false) \
             ON CONFLICT (flow, org_id) DO NOTHING",
        )
        .bind(flow.name)
        .bind(org)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Turns the flow off for `org` (under [`lock`]).
    pub(crate) async fn stop(c: &mut Conn, flow: &Flow, org: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE flow_syncs SET active = false WHERE flow = $1 AND org_id = $2")
            .bind(flow.name)
            .bind(org)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn stalled(pool: &Pool, flow: &str, kind: &str) -> sqlx::Result<Vec<Uuid>> {
        sqlx::query_scalar(
            "SELECT org_id FROM flow_syncs s WHERE flow = $1 AND active AND NOT EXISTS \
             (SELECT 1 FROM jobs j WHERE j.kind = $2 AND j.org_id = s.org_id \
              AND j.state IN ('scheduled', 'available', 'running', 'retryable'))",
        )
        .bind(flow)
        .bind(kind)
        .fetch_all(pool)
        .await
    }
}
