//! The index ([`IndexStore`]): the indexer's position on each chain, its
//! unfinalized window, each followed contract's progress and the decoded
//! events, written with the holdings derived from them (`holdings.rs`) in
//! one transaction per batch, so a crash at any instant leaves events,
//! holdings and cursor agreeing. A batch is refused as stale unless the
//! store is exactly where the batch starts: feeding a range twice changes
//! nothing. A rewind undoes everything above a block in one transaction.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::chain::{Address, B256, U256};
use rwa_domain::onchain::{
    Applied, BlockRef, EventKind, Heights, HolderRow, IndexBatch, IndexState, IndexStore,
    OnchainEvent, Scope, Source, SourceProgress, SourceRole, Standard,
};
use rwa_domain::ports::Lease;
use rwa_domain::{RepoError, RepoResult};

use crate::Store;
use crate::connect::{in_write_tx, on_reader, on_writer};
use crate::error::DbResult;
use crate::holdings::{self as holding, hex, token_id_text};

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

fn height(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[derive(sqlx::FromRow)]
pub(crate) struct StateRow {
    block_number: i64,
    block_hash: String,
    head: i64,
    safe: i64,
    finalized: i64,
    reorgs: i64,
    last_reorg_depth: Option<i64>,
    last_reorg_at: Option<DateTime<Utc>>,
    halted: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct BlockRow {
    number: i64,
    hash: String,
    parent_hash: String,
}

impl BlockRow {
    fn block(&self) -> RepoResult<BlockRef> {
        Ok(BlockRef {
            number: height(self.number),
            hash: parse(&self.hash, "block hash")?,
            parent_hash: parse(&self.parent_hash, "parent hash")?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SourceRow {
    address: String,
    role: String,
    standard: Option<String>,
    start_block: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    block_hash: String,
    log_index: i64,
    block_number: i64,
    tx_hash: String,
    contract: String,
    data: String,
}

impl EventRow {
    fn event(&self, chain_id: u64) -> RepoResult<OnchainEvent> {
        let kind: EventKind = serde_json::from_str(&self.data)
            .map_err(|e| RepoError::Internal(format!("stored on-chain event: {e}")))?;
        Ok(OnchainEvent {
            chain_id,
            block_number: height(self.block_number),
            block_hash: parse(&self.block_hash, "block hash")?,
            tx_hash: parse(&self.tx_hash, "transaction hash")?,
            log_index: height(self.log_index),
            contract: parse(&self.contract, "contract")?,
            kind,
        })
    }
}

fn b256(h: B256) -> String {
    format!("{h:#x}")
}

/// The advisory lock key of a chain's indexer.
fn lease_key(chain_id: u64) -> i64 {
    0x1d_e8e4_0000_0000_i64 ^ chain_id as i64
}

#[async_trait]
impl IndexStore for Store {
    async fn system_index_lease(&self, chain_id: u64) -> RepoResult<Option<Box<dyn Lease>>> {
        crate::lease::take(&self.pools, lease_key(chain_id)).await
    }

    async fn system_index_state(&self, chain_id: u64) -> RepoResult<Option<IndexState>> {
        let id = chain_id as i64;
        let (state, blocks) = on_writer!(self, |pool, sql| {
            let state = sql::state(pool, id).await.db()?;
            let blocks = sql::window(pool, id).await.db()?;
            Ok::<_, RepoError>((state, blocks))
        })?;
        let Some(s) = state else { return Ok(None) };
        Ok(Some(IndexState {
            cursor: height(s.block_number),
            cursor_hash: parse(&s.block_hash, "block hash")?,
            window: blocks
                .iter()
                .map(BlockRow::block)
                .collect::<RepoResult<_>>()?,
            head: height(s.head),
            safe: height(s.safe),
            finalized: height(s.finalized),
            reorgs: height(s.reorgs),
            last_reorg_depth: s.last_reorg_depth.map(height),
            last_reorg_at: s.last_reorg_at,
            halted: s.halted,
        }))
    }

    async fn system_start_index(
        &self,
        chain_id: u64,
        at: BlockRef,
        heights: Heights,
    ) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| {
            sql::start(&mut tx, chain_id as i64, at, heights).await.db()
        })
    }

    async fn system_index_sources(&self, chain_id: u64) -> RepoResult<Vec<Source>> {
        let id = chain_id as i64;
        let (rows, progress) = on_writer!(self, |pool, sql| {
            let rows = sql::sources(pool, id).await.db()?;
            let progress = sql::progress(pool, id).await.db()?;
            Ok::<_, RepoError>((rows, progress))
        })?;
        let progress: HashMap<String, Option<i64>> = progress.into_iter().collect();
        // One contract may be followed for several reasons (two
        // organizations watching it): once, from the earliest start.
        let mut out: Vec<Source> = Vec::new();
        for r in rows {
            let address: Address = parse(&r.address, "contract address")?;
            let role = match (r.role.as_str(), r.standard.as_deref()) {
                ("token", _) => SourceRole::Token,
                ("compliance", _) => SourceRole::Compliance,
                ("registry", _) => SourceRole::Registry,
                (_, Some(s)) => SourceRole::Watched(
                    Standard::parse(s)
                        .ok_or_else(|| RepoError::Internal(format!("stored standard {s:?}")))?,
                ),
                (other, _) => return Err(RepoError::Internal(format!("source role {other:?}"))),
            };
            let start_block = height(r.start_block);
            if let Some(seen) = out.iter_mut().find(|s| s.address == address) {
                seen.start_block = seen.start_block.min(start_block);
                continue;
            }
            let progress = match progress.get(&r.address) {
                None => SourceProgress::Untracked,
                Some(None) => SourceProgress::Following,
                Some(Some(n)) => SourceProgress::Behind(height(*n)),
            };
            out.push(Source {
                address,
                role,
                start_block,
                progress,
            });
        }
        Ok(out)
    }

    async fn system_track_source(
        &self,
        chain_id: u64,
        address: Address,
        synced_to: Option<u64>,
    ) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| {
            sql::track(
                &mut tx,
                chain_id as i64,
                address,
                synced_to.map(|n| n as i64),
            )
            .await
            .db()
        })
    }

    async fn system_apply_index(&self, chain_id: u64, batch: &IndexBatch) -> RepoResult<Applied> {
        let batch = batch.clone();
        let id = chain_id as i64;
        in_write_tx!(self, |tx, sql, holdings| {
            let at = match &batch.scope {
                Scope::Following => sql::cursor(&mut tx, id).await.db()?,
                Scope::CatchUp(contracts) => {
                    sql::common_progress(&mut tx, id, contracts).await.db()?
                }
            };
            if at != Some(batch.after as i64) {
                return Ok(Applied::default());
            }
            // Only contracts still followed in this scope (one unwatched
            // since the fetch is forgotten, not written back).
            let followed: Vec<Address> = match &batch.scope {
                Scope::Following => sql::following(&mut tx, id)
                    .await
                    .db()?
                    .iter()
                    .map(|a| parse(a, "contract address"))
                    .collect::<RepoResult<_>>()?,
                Scope::CatchUp(contracts) => contracts.clone(),
            };
            let mut batch = batch;
            batch.events.retain(|e| followed.contains(&e.contract));
            let inserted = sql::insert_events(&mut tx, id, &batch.events).await.db()?;
            let mut current = Vec::new();
            for (contract, wallets) in holding::touched(&batch.events) {
                current.extend(
                    holdings::current(&mut tx, id, contract, &wallets)
                        .await
                        .db()?,
                );
            }
            let (changes, underflows) = holding::derive(&batch.events, current)?;
            holdings::write(&mut tx, id, &changes).await.db()?;
            match &batch.scope {
                Scope::Following => {
                    sql::advance(&mut tx, id, &batch).await.db()?;
                }
                Scope::CatchUp(contracts) => {
                    sql::catch_up(&mut tx, id, contracts, batch.to.number as i64)
                        .await
                        .db()?;
                }
            }
            Ok::<_, RepoError>(Applied {
                fresh: true,
                events: inserted,
                underflows,
            })
        })
    }

    async fn system_rewind_index(&self, chain_id: u64, ancestor: BlockRef) -> RepoResult<u64> {
        let id = chain_id as i64;
        in_write_tx!(self, |tx, sql, holdings| {
            let n = ancestor.number as i64;
            holdings::rewind(&mut tx, id, n).await.db()?;
            let deleted = sql::rewind(&mut tx, id, ancestor).await.db()?;
            Ok::<_, RepoError>(deleted)
        })
    }

    async fn system_halt_index(&self, chain_id: u64, reason: &str) -> RepoResult<()> {
        let reason = reason.to_owned();
        in_write_tx!(self, |tx, sql| {
            sql::halt(&mut tx, chain_id as i64, &reason).await.db()
        })
    }

    async fn system_observe_heights(&self, chain_id: u64, heights: Heights) -> RepoResult<()> {
        on_writer!(self, |pool, sql| {
            sql::observe(pool, chain_id as i64, heights).await.db()
        })
    }

    async fn holders_at(
        &self,
        chain_id: u64,
        contract: Address,
        at_block: u64,
        after: Option<(Option<U256>, Address)>,
        limit: u32,
    ) -> RepoResult<Vec<HolderRow>> {
        let id = chain_id as i64;
        let after = after
            .map(|(t, w)| (token_id_text(t), hex(w)))
            .unwrap_or_default();
        let cursor = self.system_index_state(chain_id).await?.map(|s| s.cursor);
        // At or above the cursor the current rows answer; below, the history.
        let rows = if cursor.is_some_and(|c| at_block >= c) {
            self.holdings_current(id, contract, &after, limit).await?
        } else {
            self.holdings_history_at(id, contract, at_block as i64, &after, limit)
                .await?
        };
        rows.into_iter().map(holding::Row::into_holder).collect()
    }

    async fn supply_at(
        &self,
        chain_id: u64,
        contract: Address,
        token_id: Option<U256>,
        at_block: u64,
    ) -> RepoResult<U256> {
        let mut total = U256::ZERO;
        let mut after = None;
        loop {
            let page = self
                .holders_at(chain_id, contract, at_block, after, 1000)
                .await?;
            for h in &page {
                if h.token_id == token_id {
                    total = total.saturating_add(h.balance);
                }
            }
            match page.last() {
                Some(last) if page.len() == 1000 => after = Some((last.token_id, last.wallet)),
                _ => return Ok(total),
            }
        }
    }

    async fn holdings_of(&self, chain_id: u64, wallets: &[Address]) -> RepoResult<Vec<HolderRow>> {
        let rows = self.holdings_of_wallets(chain_id as i64, wallets).await?;
        rows.into_iter().map(holding::Row::into_holder).collect()
    }

    async fn transfers(
        &self,
        chain_id: u64,
        contract: Address,
        before: Option<(u64, u64)>,
        limit: u32,
    ) -> RepoResult<Vec<OnchainEvent>> {
        let before = before.map_or((i64::MAX, i64::MAX), |(b, l)| (b as i64, l as i64));
        let rows = on_reader!(self, |pool, sql| {
            sql::transfers(pool, chain_id as i64, contract, before, i64::from(limit))
                .await
                .db()
        })?;
        rows.iter().map(|r| r.event(chain_id)).collect()
    }
}

crate::dialect::statements! {
    use rwa_domain::chain::Address;
    use rwa_domain::onchain::{BlockRef, Heights, IndexBatch, OnchainEvent};
    use sqlx::{QueryBuilder, query, query_as, query_scalar};

    use super::{BlockRow, EventRow, SourceRow, StateRow, b256};
    use crate::holdings::{CHUNK, hex};

    pub(crate) async fn state(c: &Pool, chain_id: i64) -> sqlx::Result<Option<StateRow>> {
        query_as(
            "SELECT block_number, block_hash, head, safe, finalized, reorgs, last_reorg_depth, \
             last_reorg_at, halted FROM indexer_state WHERE chain_id = $1",
        )
        .bind(chain_id)
        .fetch_optional(c)
        .await
    }

    /// The cursor, locked until commit on PostgreSQL: two writers of one
    /// chain take turns, and the second finds the cursor moved (stale).
    pub(crate) async fn cursor(c: &mut Conn, chain_id: i64) -> sqlx::Result<Option<i64>> {
        query_scalar(concat!(
            "SELECT block_number FROM indexer_state WHERE chain_id = $1 ",
            lock!()
        ))
        .bind(chain_id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn window(pool: &Pool, chain_id: i64) -> sqlx::Result<Vec<BlockRow>> {
        query_as(
            "SELECT number, hash, parent_hash FROM indexer_blocks WHERE chain_id = $1 \
             ORDER BY number",
        )
        .bind(chain_id)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn start(
        c: &mut Conn,
        chain_id: i64,
        at: BlockRef,
        h: Heights,
    ) -> sqlx::Result<()> {
        let fresh = query(
            "INSERT INTO indexer_state (chain_id, block_number, block_hash, head, safe, finalized) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (chain_id) DO NOTHING",
        )
        .bind(chain_id)
        .bind(at.number as i64)
        .bind(b256(at.hash))
        .bind(h.head as i64)
        .bind(h.safe as i64)
        .bind(h.finalized as i64)
        .execute(&mut *c)
        .await?
        .rows_affected();
        if fresh == 1 {
            insert_block(c, chain_id, at).await?;
        }
        Ok(())
    }

    async fn insert_block(c: &mut Conn, chain_id: i64, b: BlockRef) -> sqlx::Result<()> {
        query(
            "INSERT INTO indexer_blocks (chain_id, number, hash, parent_hash) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (chain_id, number) DO UPDATE SET hash = excluded.hash, \
             parent_hash = excluded.parent_hash",
        )
        .bind(chain_id)
        .bind(b.number as i64)
        .bind(b256(b.hash))
        .bind(b256(b.parent_hash))
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn sources(pool: &Pool, chain_id: i64) -> sqlx::Result<Vec<SourceRow>> {
        query_as(
            "SELECT address, 'token' AS role, NULL AS standard, deploy_block AS start_block \
               FROM tokens WHERE chain_id = $1 AND status = 'deployed' \
             UNION ALL SELECT compliance_address, 'compliance', NULL, deploy_block \
               FROM tokens WHERE chain_id = $1 AND status = 'deployed' \
             UNION ALL SELECT address, 'registry', NULL, COALESCE(deploy_block, 0) \
               FROM identity_registries WHERE chain_id = $1 \
             UNION ALL SELECT address, 'watched', standard, start_block \
               FROM watched_contracts WHERE chain_id = $1",
        )
        .bind(chain_id)
        .fetch_all(pool)
        .await
    }

    /// Contracts that move with the cursor.
    pub(crate) async fn following(c: &mut Conn, chain_id: i64) -> sqlx::Result<Vec<String>> {
        query_scalar(
            "SELECT address FROM indexer_sources WHERE chain_id = $1 AND synced_to IS NULL",
        )
        .bind(chain_id)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn progress(
        pool: &Pool,
        chain_id: i64,
    ) -> sqlx::Result<Vec<(String, Option<i64>)>> {
        query_as("SELECT address, synced_to FROM indexer_sources WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_all(pool)
            .await
    }

    pub(crate) async fn track(
        c: &mut Conn,
        chain_id: i64,
        address: Address,
        synced_to: Option<i64>,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO indexer_sources (chain_id, address, synced_to) VALUES ($1, $2, $3) \
             ON CONFLICT (chain_id, address) DO NOTHING",
        )
        .bind(chain_id)
        .bind(hex(address))
        .bind(synced_to)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// The height every one of `contracts` is indexed to, when they agree
    /// and all are catching up.
    pub(crate) async fn common_progress(
        c: &mut Conn,
        chain_id: i64,
        contracts: &[Address],
    ) -> sqlx::Result<Option<i64>> {
        let mut common = None;
        for a in contracts {
            let at: Option<Option<i64>> = query_scalar(concat!(
                "SELECT synced_to FROM indexer_sources WHERE chain_id = $1 AND address = $2 ",
                lock!()
            ))
            .bind(chain_id)
            .bind(hex(*a))
            .fetch_optional(&mut *c)
            .await?;
            match (at.flatten(), common) {
                (None, _) => return Ok(None),
                (Some(n), None) => common = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Ok(None),
            }
        }
        Ok(common)
    }

    /// Inserts events (an event already stored is left as is); returns how
    /// many were new.
    pub(crate) async fn insert_events(
        c: &mut Conn,
        chain_id: i64,
        events: &[OnchainEvent],
    ) -> Result<u64, sqlx::Error> {
        let mut inserted = 0;
        for part in events.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO onchain_events (chain_id, block_hash, log_index, block_number, \
                 tx_hash, contract, kind, data) ",
            );
            q.push_values(part, |mut b, e| {
                b.push_bind(chain_id)
                    .push_bind(b256(e.block_hash))
                    .push_bind(e.log_index as i64)
                    .push_bind(e.block_number as i64)
                    .push_bind(b256(e.tx_hash))
                    .push_bind(hex(e.contract))
                    .push_bind(e.kind.name())
                    .push_bind(serde_json::to_string(&e.kind).unwrap_or_default());
            });
            q.push(" ON CONFLICT (chain_id, block_hash, log_index) DO NOTHING");
            inserted += q.build().execute(&mut *c).await?.rows_affected();
        }
        Ok(inserted)
    }

    /// Moves the cursor to the batch's last block, adds its window blocks
    /// and forgets those below the finalized one (or below the cursor, for
    /// a backfill batch that ends below finality).
    pub(crate) async fn advance(c: &mut Conn, chain_id: i64, b: &IndexBatch) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE indexer_state SET block_number = $2, block_hash = $3, head = $4, safe = $5, \
             finalized = $6, updated_at = ",
            now!(),
            " WHERE chain_id = $1"
        ))
        .bind(chain_id)
        .bind(b.to.number as i64)
        .bind(b256(b.to.hash))
        .bind(b.heights.head as i64)
        .bind(b.heights.safe as i64)
        .bind(b.heights.finalized as i64)
        .execute(&mut *c)
        .await?;
        for block in &b.window {
            insert_block(&mut *c, chain_id, *block).await?;
        }
        let floor = b.heights.finalized.min(b.to.number) as i64;
        query("DELETE FROM indexer_blocks WHERE chain_id = $1 AND number < $2")
            .bind(chain_id)
            .bind(floor)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Moves catching-up contracts to `to`, and to following once they
    /// reach the cursor.
    pub(crate) async fn catch_up(
        c: &mut Conn,
        chain_id: i64,
        contracts: &[Address],
        to: i64,
    ) -> sqlx::Result<()> {
        for a in contracts {
            query("UPDATE indexer_sources SET synced_to = $3 WHERE chain_id = $1 AND address = $2")
                .bind(chain_id)
                .bind(hex(*a))
                .bind(to)
                .execute(&mut *c)
                .await?;
        }
        query(
            "UPDATE indexer_sources SET synced_to = NULL WHERE chain_id = $1 AND synced_to >= \
             (SELECT block_number FROM indexer_state WHERE chain_id = $1)",
        )
        .bind(chain_id)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Undoes the blocks above `ancestor` (holdings are undone by the
    /// caller first): events, window, cursor, contracts' progress, and
    /// counts the reorg. Returns the events deleted.
    pub(crate) async fn rewind(c: &mut Conn, chain_id: i64, ancestor: BlockRef) -> sqlx::Result<u64> {
        let n = ancestor.number as i64;
        let deleted = query("DELETE FROM onchain_events WHERE chain_id = $1 AND block_number > $2")
            .bind(chain_id)
            .bind(n)
            .execute(&mut *c)
            .await?
            .rows_affected();
        query("DELETE FROM indexer_blocks WHERE chain_id = $1 AND number > $2")
            .bind(chain_id)
            .bind(n)
            .execute(&mut *c)
            .await?;
        query(concat!(
            "UPDATE indexer_state SET last_reorg_depth = block_number - $2, block_number = $2, \
             block_hash = $3, reorgs = reorgs + 1, last_reorg_at = ",
            now!(),
            ", updated_at = ",
            now!(),
            " WHERE chain_id = $1"
        ))
        .bind(chain_id)
        .bind(n)
        .bind(b256(ancestor.hash))
        .execute(&mut *c)
        .await?;
        // The cursor is now `ancestor`: contracts that had reached it follow.
        query("UPDATE indexer_sources SET synced_to = NULL WHERE chain_id = $1 AND synced_to >= $2")
            .bind(chain_id)
            .bind(n)
            .execute(c)
            .await?;
        Ok(deleted)
    }

    pub(crate) async fn halt(c: &mut Conn, chain_id: i64, reason: &str) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE indexer_state SET halted = $2, updated_at = ",
            now!(),
            " WHERE chain_id = $1"
        ))
        .bind(chain_id)
        .bind(reason)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn observe(pool: &Pool, chain_id: i64, h: Heights) -> sqlx::Result<()> {
        query("UPDATE indexer_state SET head = $2, safe = $3, finalized = $4 WHERE chain_id = $1")
            .bind(chain_id)
            .bind(h.head as i64)
            .bind(h.safe as i64)
            .bind(h.finalized as i64)
            .execute(pool)
            .await
            .map(|_| ())
    }

    pub(crate) async fn transfers(
        pool: &Pool,
        chain_id: i64,
        contract: Address,
        before: (i64, i64),
        limit: i64,
    ) -> sqlx::Result<Vec<EventRow>> {
        // The kinds of rwa_domain::onchain::TRANSFER_KINDS.
        query_as(
            "SELECT block_hash, log_index, block_number, tx_hash, contract, data \
             FROM onchain_events WHERE chain_id = $1 AND contract = $2 \
             AND kind IN ('erc20_transfer', 'erc721_transfer', 'erc1155_transfer') \
             AND (block_number, log_index) < ($3, $4) \
             ORDER BY block_number DESC, log_index DESC LIMIT $5",
        )
        .bind(chain_id)
        .bind(hex(contract))
        .bind(before.0)
        .bind(before.1)
        .bind(limit)
        .fetch_all(pool)
        .await
    }
}
