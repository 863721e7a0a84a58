//! Leases ([`Lease`]): the right to run one process's part of the work (the
//! indexer of a chain, the notification deliveries) across every process
//! sharing the database. On PostgreSQL a session advisory lock on a
//! connection taken out of the pool, so a process that dies releases it
//! with its connection and a standby takes over; on SQLite the process lock
//! on the database file already keeps a second server out.

use async_trait::async_trait;
use rwa_domain::RepoResult;
use rwa_domain::ports::Lease;

use crate::connect::Pools;
use crate::error::DbResult;

/// Held by the only process on a SQLite database.
struct SqliteLease;

#[async_trait]
impl Lease for SqliteLease {
    async fn alive(&mut self) -> bool {
        true
    }
}

/// A session advisory lock, held until its connection closes.
struct PgLease(sqlx::PgConnection);

#[async_trait]
impl Lease for PgLease {
    async fn alive(&mut self) -> bool {
        use sqlx::Connection;
        self.0.ping().await.is_ok()
    }
}

/// Takes the lease named `key`, or `None` while another process holds it.
pub(crate) async fn take(pools: &Pools, key: i64) -> RepoResult<Option<Box<dyn Lease>>> {
    match pools {
        Pools::Sqlite(_) => Ok(Some(Box::new(SqliteLease))),
        Pools::Postgres(pool) => {
            let mut conn = pool.acquire().await.db()?.detach();
            let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut conn)
                .await
                .db()?;
            Ok(held.then(|| Box::new(PgLease(conn)) as Box<dyn Lease>))
        }
    }
}
