//! The event log ([`EventLog`]): what happened to an organization's records, in
//! commit order. A repository appends an event (`append_event`) inside the
//! transaction of the change it describes, so an event exists exactly when its
//! change does. It is inserted without a `seq`; the sequencer
//! (`sequencer.rs`) numbers committed events after commit, one stamping
//! transaction at a time, so a reader of "after `seq`" never skips an event
//! that commits late: it simply gets a later number. Readers see numbered
//! events only.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::event::{Event, TypeFilter};
use rwa_domain::ports::EventLog;
use rwa_domain::{EventId, OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::on_reader;
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    id: Uuid,
    kind: String,
    org_id: Uuid,
    created_at: DateTime<Utc>,
    data: String,
}

impl TryFrom<EventRow> for Event {
    type Error = RepoError;

    fn try_from(r: EventRow) -> Result<Self, Self::Error> {
        Ok(Event {
            seq: r.seq,
            id: EventId::from_uuid(r.id),
            kind: r.kind,
            org_id: OrgId::from_uuid(r.org_id),
            created_at: r.created_at,
            data: serde_json::from_str(&r.data)
                .map_err(|e| RepoError::Internal(format!("stored event data is not JSON: {e}")))?,
        })
    }
}

#[async_trait]
impl EventLog for Store {
    async fn list(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
        filter: Option<&TypeFilter>,
    ) -> RepoResult<Vec<Event>> {
        // Events committed by this caller are listed: read your writes.
        self.stamp_pending().await?;
        let (exact, noun) = match filter {
            None => (None, None),
            Some(TypeFilter::Exact(t)) => (Some(t.as_str()), None),
            // Nouns are letters, digits and `_`; `_` is escaped for LIKE.
            Some(TypeFilter::Noun(n)) => (None, Some(format!("{}.%", n.replace('_', "\\_")))),
        };
        let rows = on_reader!(self, |pool, sql| {
            sql::list_events(
                pool,
                org.as_uuid(),
                after,
                i64::from(limit),
                exact,
                noun.as_deref(),
            )
            .await
            .db()?
        });
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn system_numbered_after(
        &self,
        org: OrgId,
        after: i64,
        limit: u32,
    ) -> RepoResult<Vec<Event>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_events(pool, org.as_uuid(), after, i64::from(limit), None, None)
                .await
                .db()?
        });
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn system_last_numbered(&self) -> RepoResult<i64> {
        on_reader!(self, |pool, sql| sql::last_seq(pool).await.db())
    }

    async fn system_all_numbered_after(&self, after: i64, limit: u32) -> RepoResult<Vec<Event>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_all_events(pool, after, i64::from(limit))
                .await
                .db()?
        });
        rows.into_iter().map(Event::try_from).collect()
    }

    async fn system_numbered(&self, org: OrgId, seq: i64) -> RepoResult<Option<Event>> {
        let mut found = self.system_numbered_after(org, seq - 1, 1).await?;
        Ok(found.pop().filter(|e| e.seq == seq))
    }
}

crate::dialect::statements! {
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::EventRow;

    /// Appends an event, unnumbered, inside the caller's transaction: one
    /// statement and no lock.
    pub(crate) async fn append_event(
        c: &mut Conn,
        org: Uuid,
        kind: &str,
        data: &serde_json::Value,
    ) -> sqlx::Result<()> {
        query("INSERT INTO events (id, type, org_id, data) VALUES ($1, $2, $3, $4)")
            .bind(Uuid::now_v7())
            .bind(kind)
            .bind(org)
            .bind(data.to_string())
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Numbers up to `limit` unnumbered events after the highest number,
    /// oldest insertion first; answers how many. The caller is the one
    /// sequencer (see `sequencer.rs`), so the highest number cannot move
    /// under it.
    pub(crate) async fn number_pending_events(c: &mut Conn, limit: i64) -> sqlx::Result<u64> {
        let last: i64 = query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(&mut *c)
            .await?;
        query(
            "UPDATE events SET seq = $1 + p.n FROM ( \
                 SELECT pos, row_number() OVER (ORDER BY pos) AS n FROM events \
                 WHERE seq IS NULL ORDER BY pos LIMIT $2 \
             ) AS p WHERE events.pos = p.pos",
        )
        .bind(last)
        .bind(limit)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    pub(crate) async fn last_seq(pool: &Pool) -> sqlx::Result<i64> {
        query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(pool)
            .await
    }

    /// Every organization's numbered events after `after` (the primary
    /// key's order is `pos`; `seq` has its own unique index).
    pub(crate) async fn list_all_events(
        pool: &Pool,
        after: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<EventRow>> {
        query_as(
            "SELECT seq, id, type AS kind, org_id, created_at, data FROM events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn list_events(
        pool: &Pool,
        org: Uuid,
        after: i64,
        limit: i64,
        exact: Option<&str>,
        noun: Option<&str>,
    ) -> sqlx::Result<Vec<EventRow>> {
        query_as(
            "SELECT seq, id, type AS kind, org_id, created_at, data FROM events \
             WHERE org_id = $1 AND seq > $2 AND ($4 IS NULL OR type = $4) \
             AND ($5 IS NULL OR type LIKE $5 ESCAPE '\\') ORDER BY seq LIMIT $3",
        )
        .bind(org)
        .bind(after)
        .bind(limit)
        .bind(exact)
        .bind(noun)
        .fetch_all(pool)
        .await
    }
}
