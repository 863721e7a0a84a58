//! The devnet's own SQLite file (`DATA_DIR/devnet.db`): every canonical block
//! with its header, state root, receipts and the state it changed, and the pending pool
//! (every accepted transaction not yet mined, as its raw bytes). Each write is
//! one SQLite transaction holding the new blocks together with the pool rows
//! they consume, so a process killed while mining leaves the file at the
//! previous block with its pool intact; rewinding deletes the rows above the
//! new head in one transaction too. Opening replays the state changes from
//! genesis and re-pools the stored transactions.

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::{Address, B256, Bytes, U256};
use rwa_domain::chain::{BlockHeader, ChainError, ChainResult, Receipt};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

/// What one block changed in one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccountDiff {
    pub(crate) balance: U256,
    pub(crate) nonce: u64,
    /// Set when the block deployed code to the account.
    pub(crate) code: Option<Bytes>,
    /// Storage slots written, with their value after the block.
    pub(crate) storage: Vec<(U256, U256)>,
}

/// What one block changed, by account.
pub(crate) type StateDiff = BTreeMap<Address, AccountDiff>;

/// A block as stored.
#[derive(Debug)]
pub(crate) struct StoredBlock {
    pub(crate) header: BlockHeader,
    /// Zero for blocks written before the devnet computed state roots.
    pub(crate) state_root: B256,
    pub(crate) receipts: Vec<Receipt>,
    pub(crate) diff: StateDiff,
}

/// The devnet database.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: SqlitePool,
}

fn db_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Other(format!("devnet database: {e}"))
}

impl Store {
    /// Opens (creating when missing) the file at `path`.
    pub(crate) async fn open(path: &Path) -> ChainResult<Store> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(db_err)?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // As the app's own SQLite file: a commit survives the process
            // being killed at any instant; only an OS crash or power loss
            // can take the last commits back. FULL would fsync on every
            // accepted transaction: a third less admission throughput.
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS devnet_blocks (
                number INTEGER PRIMARY KEY,
                hash BLOB NOT NULL,
                header TEXT NOT NULL,
                receipts TEXT NOT NULL,
                diff TEXT NOT NULL,
                state_root BLOB)",
        )
        .execute(&pool)
        .await
        .map_err(db_err)?;
        // Files from before state roots lack the column.
        let has_root: bool = sqlx::query_scalar(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('devnet_blocks') WHERE name = 'state_root'",
        )
        .fetch_one(&pool)
        .await
        .map_err(db_err)?;
        if !has_root {
            sqlx::query("ALTER TABLE devnet_blocks ADD COLUMN state_root BLOB")
                .execute(&pool)
                .await
                .map_err(db_err)?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS devnet_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS devnet_pool (
                hash BLOB PRIMARY KEY,
                sender BLOB NOT NULL,
                nonce INTEGER NOT NULL,
                raw BLOB NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(db_err)?;
        Ok(Store { pool })
    }

    /// Every stored block in order, the header generation counter, and the
    /// raw pending transactions (by sender, then nonce).
    pub(crate) async fn load(&self) -> ChainResult<(Vec<StoredBlock>, u64, Vec<Bytes>)> {
        let rows = sqlx::query(
            "SELECT header, receipts, diff, state_root FROM devnet_blocks ORDER BY number",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut blocks = Vec::with_capacity(rows.len());
        for row in rows {
            let header: String = row.get(0);
            let receipts: String = row.get(1);
            let diff: String = row.get(2);
            let state_root: Option<Vec<u8>> = row.get(3);
            let diff: Vec<(Address, AccountDiff)> = serde_json::from_str(&diff).map_err(db_err)?;
            let state_root = match state_root {
                None => B256::ZERO,
                Some(bytes) => B256::try_from(bytes.as_slice()).map_err(db_err)?,
            };
            blocks.push(StoredBlock {
                header: serde_json::from_str(&header).map_err(db_err)?,
                state_root,
                receipts: serde_json::from_str(&receipts).map_err(db_err)?,
                diff: diff.into_iter().collect(),
            });
        }
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT value FROM devnet_meta WHERE key = 'generation'")
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        let pending: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT raw FROM devnet_pool ORDER BY sender, nonce")
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        Ok((
            blocks,
            generation.unwrap_or(0) as u64,
            pending.into_iter().map(Bytes::from).collect(),
        ))
    }

    /// In one transaction: replaces the blocks from `blocks.from` on (when
    /// some changed) and applies the pool's changes.
    pub(crate) async fn write(
        &self,
        blocks: Option<BlocksFrom<'_>>,
        generation: u64,
        pool: &PoolChanges<'_>,
    ) -> ChainResult<()> {
        if blocks.is_none() && pool.removed.is_empty() && pool.added.len() == 1 {
            // The common case, one transaction accepted: a single statement
            // is atomic on its own, and saves the round trips of BEGIN and
            // COMMIT on the path every transaction takes.
            let mut conn = self.pool.acquire().await.map_err(db_err)?;
            return write_pool(&mut conn, pool).await;
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if let Some(blocks) = blocks {
            write_blocks(&mut tx, blocks.from, &blocks.blocks, generation).await?;
        }
        write_pool(&mut tx, pool).await?;
        tx.commit().await.map_err(db_err)
    }

    /// Closes the file.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// The blocks numbered `from` and above, as they are now (empty after a
/// rewind to below `from`).
#[derive(Debug)]
pub(crate) struct BlocksFrom<'a> {
    pub(crate) from: u64,
    pub(crate) blocks: Vec<StoredBlockRef<'a>>,
}

/// A pending transaction to store.
#[derive(Debug)]
pub(crate) struct PooledRow<'a> {
    pub(crate) hash: B256,
    pub(crate) sender: Address,
    pub(crate) nonce: u64,
    pub(crate) raw: &'a [u8],
}

/// How the pool changed since it was last written.
#[derive(Debug, Default)]
pub(crate) struct PoolChanges<'a> {
    pub(crate) added: Vec<PooledRow<'a>>,
    pub(crate) removed: Vec<B256>,
}

impl PoolChanges<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// A block to store, borrowed from the chain.
#[derive(Debug)]
pub(crate) struct StoredBlockRef<'a> {
    pub(crate) header: &'a BlockHeader,
    pub(crate) state_root: B256,
    pub(crate) receipts: &'a [Receipt],
    pub(crate) diff: &'a StateDiff,
}

async fn write_blocks(
    conn: &mut SqliteConnection,
    from: u64,
    blocks: &[StoredBlockRef<'_>],
    generation: u64,
) -> ChainResult<()> {
    sqlx::query("DELETE FROM devnet_blocks WHERE number >= ?")
        .bind(from as i64)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    for b in blocks {
        let diff: Vec<(&Address, &AccountDiff)> = b.diff.iter().collect();
        sqlx::query(
            "INSERT INTO devnet_blocks (number, hash, header, receipts, diff, state_root)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(b.header.number as i64)
        .bind(b.header.hash.as_slice())
        .bind(serde_json::to_string(b.header).map_err(db_err)?)
        .bind(serde_json::to_string(b.receipts).map_err(db_err)?)
        .bind(serde_json::to_string(&diff).map_err(db_err)?)
        .bind(b.state_root.as_slice())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    sqlx::query(
        "INSERT INTO devnet_meta (key, value) VALUES ('generation', ?)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(generation as i64)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn write_pool(conn: &mut SqliteConnection, pool: &PoolChanges<'_>) -> ChainResult<()> {
    // A block takes hundreds of transactions out of the pool: one statement
    // per chunk, not per row.
    for chunk in pool.removed.chunks(500) {
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM devnet_pool WHERE hash IN (");
        let mut hashes = query.separated(", ");
        for hash in chunk {
            hashes.push_bind(hash.as_slice());
        }
        query.push(")");
        query.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    for row in &pool.added {
        sqlx::query("INSERT INTO devnet_pool (hash, sender, nonce, raw) VALUES (?, ?, ?, ?)")
            .bind(row.hash.as_slice())
            .bind(row.sender.as_slice())
            .bind(row.nonce as i64)
            .bind(row.raw)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}
