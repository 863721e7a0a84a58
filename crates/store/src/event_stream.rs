//! The event streams' cursors ([`StreamCursor`]): one row per stream, moved
//! by compare-and-set by the process that publishes (the holder of the
//! delivery lease), so a cursor read before a takeover never moves back.

use async_trait::async_trait;
use rwa_domain::RepoResult;
use rwa_domain::event_stream::StreamCursor;

use crate::Store;
use crate::connect::in_write_tx;

#[async_trait]
impl StreamCursor for Store {
    async fn system_stream_open(&self, name: &str) -> RepoResult<i64> {
        let name = name.to_owned();
        in_write_tx!(self, |tx, sql| sql::open(&mut tx, &name).await.db())
    }

    async fn system_stream_advance(&self, name: &str, from: i64, through: i64) -> RepoResult<bool> {
        let name = name.to_owned();
        in_write_tx!(self, |tx, sql| {
            sql::advance(&mut tx, &name, from, through).await.db()
        })
    }
}

crate::dialect::statements! {
    use chrono::Utc;
    use sqlx::{query, query_scalar};

    /// Creates the stream after the newest numbered event unless it exists;
    /// answers its cursor.
    pub(crate) async fn open(c: &mut Conn, name: &str) -> sqlx::Result<i64> {
        query(
            "INSERT INTO event_streams (name, published_seq) \
             VALUES ($1, (SELECT coalesce(max(seq), 0) FROM events)) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .execute(&mut *c)
        .await?;
        query_scalar("SELECT published_seq FROM event_streams WHERE name = $1")
            .bind(name)
            .fetch_one(c)
            .await
    }

    pub(crate) async fn advance(
        c: &mut Conn,
        name: &str,
        from: i64,
        through: i64,
    ) -> sqlx::Result<bool> {
        query(
            "UPDATE event_streams SET published_seq = $3, updated_at = $4 \
             WHERE name = $1 AND published_seq = $2",
        )
        .bind(name)
        .bind(from)
        .bind(through)
        .bind(Utc::now())
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }
}
