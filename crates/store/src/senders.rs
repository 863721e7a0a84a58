//! One sending process per signer: [`TxStore::hold_sender`] on PostgreSQL is
//! a session advisory lock per `(chain, address)`, taken on a connection
//! detached from the pool and kept for as long as this process sends. The
//! database releases it the moment that connection closes — the process
//! exiting or being killed — so another worker takes over at its next step,
//! with no lease to wait out. Each step checks the connection is still alive
//! (a database restart drops the lock with it). SQLite serves one process, so
//! it always holds.

use std::collections::HashMap;
use std::sync::Mutex;

use rwa_domain::RepoResult;
use rwa_domain::chain::Address;
use sqlx::PgConnection;

use crate::connect::Pools;
use crate::error::DbResult;

/// The sender locks this process holds, by `(chain id, address)`.
#[derive(Default)]
pub(crate) struct SenderLocks(Mutex<HashMap<(u64, Address), PgConnection>>);

impl SenderLocks {
    fn take(&self, key: (u64, Address)) -> Option<PgConnection> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
    }

    /// Closes every held lock's connection (a clean shutdown hands the
    /// signers to other workers at once).
    pub(crate) async fn release_all(&self) {
        let held: Vec<PgConnection> = self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, conn)| conn)
            .collect();
        for conn in held {
            let _ = sqlx::Connection::close(conn).await;
        }
    }

    fn keep(&self, key: (u64, Address), conn: PgConnection) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, conn);
    }
}

/// The advisory-lock key of a sender: FNV-1a over a name no other lock uses.
fn lock_key(chain_id: u64, from: Address) -> i64 {
    let name = format!("rwa-sender:{chain_id}:{from:#x}");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

pub(crate) async fn hold(
    pools: &Pools,
    locks: &SenderLocks,
    chain_id: u64,
    from: Address,
) -> RepoResult<bool> {
    let pool = match pools {
        Pools::Sqlite(_) => return Ok(true),
        Pools::Postgres(pool) => pool,
    };
    let key = (chain_id, from);
    if let Some(mut conn) = locks.take(key) {
        if sqlx::query("SELECT 1").execute(&mut conn).await.is_ok() {
            locks.keep(key, conn);
            return Ok(true);
        }
        tracing::warn!(sender = %from, "the connection holding the sender lock was lost");
    }
    let mut conn = pool.acquire().await.db()?.detach();
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key(chain_id, from))
        .fetch_one(&mut conn)
        .await
        .db()?;
    if held {
        tracing::info!(sender = %from, "this process sends for the signer");
        locks.keep(key, conn);
    }
    // Not held: dropping the connection closes it; it held nothing.
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_chain_and_address() {
        let a = Address::repeat_byte(1);
        let b = Address::repeat_byte(2);
        assert_ne!(lock_key(1, a), lock_key(1, b));
        assert_ne!(lock_key(1, a), lock_key(2, a));
        assert_eq!(lock_key(1, a), lock_key(1, a));
    }
}
