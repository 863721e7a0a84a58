//! The devnet's own SQLite file (`DATA_DIR/devnet.db`): every canonical block
//! with its header, receipts and the state it changed. A block is written in
//! one SQLite transaction, so a process killed while mining leaves the file at
//! the previous block; rewinding deletes the rows above the new head in one
//! transaction too. Opening replays the state changes from genesis.

use std::collections::BTreeMap;
use std::path::Path;

use alloy::primitives::{Address, Bytes, U256};
use rwa_domain::chain::{BlockHeader, ChainError, ChainResult, Receipt};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Row, SqliteConnection};

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
            .journal_mode(SqliteJournalMode::Wal);
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
                diff TEXT NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(db_err)?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS devnet_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
        )
        .execute(&pool)
        .await
        .map_err(db_err)?;
        Ok(Store { pool })
    }

    /// Every stored block in order, and the header generation counter.
    pub(crate) async fn load(&self) -> ChainResult<(Vec<StoredBlock>, u64)> {
        let rows = sqlx::query("SELECT header, receipts, diff FROM devnet_blocks ORDER BY number")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut blocks = Vec::with_capacity(rows.len());
        for row in rows {
            let header: String = row.get(0);
            let receipts: String = row.get(1);
            let diff: String = row.get(2);
            let diff: Vec<(Address, AccountDiff)> = serde_json::from_str(&diff).map_err(db_err)?;
            blocks.push(StoredBlock {
                header: serde_json::from_str(&header).map_err(db_err)?,
                receipts: serde_json::from_str(&receipts).map_err(db_err)?,
                diff: diff.into_iter().collect(),
            });
        }
        let generation: Option<i64> =
            sqlx::query_scalar("SELECT value FROM devnet_meta WHERE key = 'generation'")
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        Ok((blocks, generation.unwrap_or(0) as u64))
    }

    /// In one transaction: drops the blocks numbered `from` and above, then
    /// writes `blocks` (which start at `from`, or are empty for a rewind).
    pub(crate) async fn replace_from(
        &self,
        from: u64,
        blocks: &[StoredBlockRef<'_>],
        generation: u64,
    ) -> ChainResult<()> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        write(&mut tx, from, blocks, generation).await?;
        tx.commit().await.map_err(db_err)
    }

    /// Closes the file.
    pub(crate) async fn close(&self) {
        self.pool.close().await;
    }
}

/// A block to store, borrowed from the chain.
#[derive(Debug)]
pub(crate) struct StoredBlockRef<'a> {
    pub(crate) header: &'a BlockHeader,
    pub(crate) receipts: &'a [Receipt],
    pub(crate) diff: &'a StateDiff,
}

async fn write(
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
            "INSERT INTO devnet_blocks (number, hash, header, receipts, diff) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(b.header.number as i64)
        .bind(b.header.hash.as_slice())
        .bind(serde_json::to_string(b.header).map_err(db_err)?)
        .bind(serde_json::to_string(b.receipts).map_err(db_err)?)
        .bind(serde_json::to_string(&diff).map_err(db_err)?)
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
