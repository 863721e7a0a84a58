//! Managed transactions ([`TxStore`]): nonce allocation and the record of every
//! signed attempt, written before anything is broadcast.
//!
//! Allocation locks the sender's `tx_nonces` row (`FOR UPDATE` on PostgreSQL;
//! the single SQLite writer already serializes) and checks the idempotency key
//! under that lock, so two processes asking for the same key get one
//! transaction and two different keys never share a nonce.

use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::chain::{Address, B256, Bytes, U256};
use rwa_domain::tx::{ManagedTx, TxAttempt, TxId, TxInclusion, TxRequest, TxState, TxStore};
use rwa_domain::{RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// Columns of `managed_txs`, in [`TxRow`] order.
macro_rules! tx_columns {
    () => {
        "id, key, lane, chain_id, from_address, nonce, to_address, value, input, gas_limit, state, \
         mined_hash, block_number, block_hash, gas_used, effective_gas_price, contract_address, error, \
         created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct TxRow {
    id: Uuid,
    key: String,
    lane: String,
    chain_id: i64,
    from_address: String,
    nonce: i64,
    to_address: Option<String>,
    value: String,
    input: String,
    gas_limit: i64,
    state: String,
    mined_hash: Option<String>,
    block_number: Option<i64>,
    block_hash: Option<String>,
    gas_used: Option<i64>,
    effective_gas_price: Option<String>,
    contract_address: Option<String>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AttemptRow {
    tx_id: Uuid,
    hash: String,
    max_fee_per_gas: String,
    max_priority_fee_per_gas: String,
    raw: String,
    created_at: DateTime<Utc>,
}

/// Bound values of a new `managed_txs` row.
pub(crate) struct NewTxRow<'a> {
    pub(crate) id: Uuid,
    pub(crate) key: &'a str,
    pub(crate) lane: &'static str,
    pub(crate) chain_id: i64,
    pub(crate) from: String,
    pub(crate) nonce: i64,
    pub(crate) to: Option<String>,
    pub(crate) value: String,
    pub(crate) input: String,
    pub(crate) gas_limit: i64,
}

impl<'a> NewTxRow<'a> {
    /// The row of `request` at `nonce` (checked values), with a new id.
    fn new(request: &'a TxRequest, chain_id: i64, from: &str, nonce: i64, gas_limit: i64) -> Self {
        NewTxRow {
            id: TxId::new().0,
            key: &request.key,
            lane: request.lane.as_str(),
            chain_id,
            from: from.to_owned(),
            nonce,
            to: request.to.map(addr),
            value: request.value.to_string(),
            input: hex(&request.input),
            gas_limit,
        }
    }
}

/// Bound values of a new attempt.
pub(crate) struct AttemptParams {
    pub(crate) hash: String,
    pub(crate) max_fee: String,
    pub(crate) priority_fee: String,
    pub(crate) raw: String,
}

/// Bound values of an inclusion.
pub(crate) struct InclusionParams {
    pub(crate) hash: String,
    pub(crate) block_number: i64,
    pub(crate) block_hash: String,
    pub(crate) gas_used: i64,
    pub(crate) effective_gas_price: String,
    pub(crate) contract_address: Option<String>,
}

fn hex<T: std::fmt::LowerHex>(v: T) -> String {
    format!("{v:#x}")
}

fn int(v: u64, what: &str) -> RepoResult<i64> {
    i64::try_from(v)
        .map_err(|_| RepoError::Conflict(format!("{what} {v} exceeds the stored range")))
}

fn parse<T: FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

fn unsigned(v: i64, what: &str) -> RepoResult<u64> {
    u64::try_from(v).map_err(|_| RepoError::Internal(format!("stored {what} {v} is negative")))
}

impl AttemptRow {
    fn into_attempt(self) -> RepoResult<TxAttempt> {
        Ok(TxAttempt {
            hash: parse::<B256>(&self.hash, "attempt hash")?,
            max_fee_per_gas: parse(&self.max_fee_per_gas, "max fee")?,
            max_priority_fee_per_gas: parse(&self.max_priority_fee_per_gas, "priority fee")?,
            raw: parse::<Bytes>(&self.raw, "raw transaction")?,
            created_at: self.created_at,
        })
    }
}

impl TxRow {
    fn into_managed(self, attempts: Vec<AttemptRow>) -> RepoResult<ManagedTx> {
        let inclusion = match (self.mined_hash, self.block_number, self.block_hash) {
            (Some(hash), Some(number), Some(block)) => Some(TxInclusion {
                hash: parse(&hash, "mined hash")?,
                block_number: unsigned(number, "block number")?,
                block_hash: parse(&block, "block hash")?,
                gas_used: unsigned(self.gas_used.unwrap_or(0), "gas used")?,
                effective_gas_price: parse(
                    self.effective_gas_price.as_deref().unwrap_or("0"),
                    "gas price",
                )?,
                contract_address: self
                    .contract_address
                    .as_deref()
                    .map(|a| parse::<Address>(a, "contract address"))
                    .transpose()?,
            }),
            _ => None,
        };
        Ok(ManagedTx {
            id: TxId(self.id),
            request: TxRequest {
                key: self.key,
                lane: self.lane.parse()?,
                to: self
                    .to_address
                    .as_deref()
                    .map(|a| parse::<Address>(a, "to address"))
                    .transpose()?,
                value: U256::from_str_radix(&self.value, 10)
                    .map_err(|_| RepoError::Internal(format!("stored value {:?}", self.value)))?,
                input: parse(&self.input, "input")?,
                gas_limit: unsigned(self.gas_limit, "gas limit")?,
            },
            chain_id: unsigned(self.chain_id, "chain id")?,
            from: parse(&self.from_address, "from address")?,
            nonce: unsigned(self.nonce, "nonce")?,
            state: self.state.parse()?,
            attempts: attempts
                .into_iter()
                .map(AttemptRow::into_attempt)
                .collect::<RepoResult<_>>()?,
            inclusion,
            error: self.error,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Addresses are stored lower-case so lookups never depend on checksum casing.
fn addr(a: Address) -> String {
    format!("{a:#x}")
}

/// Reads one transaction with its attempts, on the given connection or pool.
macro_rules! load_tx {
    ($exec:expr, $sql:ident, $id:expr) => {{
        let row = $sql::tx_by_id(&mut *$exec, $id).await.db()?;
        match row {
            None => Err(RepoError::NotFound),
            Some(row) => {
                let attempts = $sql::attempts_of(&mut *$exec, $id).await.db()?;
                row.into_managed(attempts)
            }
        }
    }};
}

#[async_trait]
impl TxStore for Store {
    async fn create(
        &self,
        request: &TxRequest,
        chain_id: u64,
        from: Address,
        nonce_floor: u64,
    ) -> RepoResult<ManagedTx> {
        if request.key.is_empty() || request.key.len() > 200 {
            return Err(RepoError::Conflict(
                "key must be 1 to 200 characters".into(),
            ));
        }
        let chain = int(chain_id, "chain id")?;
        let floor = int(nonce_floor, "nonce")?;
        let gas_limit = int(request.gas_limit, "gas limit")?;
        let from_hex = addr(from);
        // The unit may run on the SQLite writer's task: it owns its inputs.
        let request = request.clone();
        in_write_tx!(self, |tx, sql| {
            sql::ensure_nonce_row(&mut tx, chain, &from_hex, floor)
                .await
                .db()?;
            let next = sql::lock_next_nonce(&mut tx, chain, &from_hex).await.db()?;
            if let Some(existing) = sql::tx_by_key(&mut *tx, &request.key).await.db()? {
                let attempts = sql::attempts_of(&mut *tx, existing.id).await.db()?;
                existing.into_managed(attempts)
            } else {
                let nonce = next.max(floor);
                sql::set_next_nonce(&mut tx, chain, &from_hex, nonce + 1)
                    .await
                    .db()?;
                let row = NewTxRow::new(&request, chain, &from_hex, nonce, gas_limit);
                sql::insert_tx(&mut tx, &row).await.db()?;
                load_tx!(tx, sql, row.id)
            }
        })
    }

    async fn get(&self, id: TxId) -> RepoResult<ManagedTx> {
        on_reader!(self, |pool, sql| {
            let row = sql::tx_by_id(pool, id.0)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let attempts = sql::attempts_of(pool, id.0).await.db()?;
            row.into_managed(attempts)
        })
    }

    async fn find_by_key(&self, key: &str) -> RepoResult<Option<ManagedTx>> {
        on_reader!(self, |pool, sql| {
            match sql::tx_by_key(pool, key).await.db()? {
                None => Ok(None),
                Some(row) => {
                    let attempts = sql::attempts_of(pool, row.id).await.db()?;
                    row.into_managed(attempts).map(Some)
                }
            }
        })
    }

    async fn open_for(&self, chain_id: u64, from: Address) -> RepoResult<Vec<ManagedTx>> {
        let chain = int(chain_id, "chain id")?;
        let from_hex = addr(from);
        let (rows, mut attempts) = on_reader!(self, |pool, sql| {
            let rows = sql::open_txs(pool, chain, &from_hex).await.db()?;
            let attempts = sql::attempts_of_open(pool, chain, &from_hex).await.db()?;
            (rows, attempts)
        });
        rows.into_iter()
            .map(|row| {
                let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut attempts)
                    .into_iter()
                    .partition(|a| a.tx_id == row.id);
                attempts = rest;
                row.into_managed(mine)
            })
            .collect()
    }

    async fn next_nonce(&self, chain_id: u64, from: Address) -> RepoResult<u64> {
        let chain = int(chain_id, "chain id")?;
        let next = on_reader!(self, |pool, sql| {
            sql::next_nonce(pool, chain, &addr(from)).await.db()?
        });
        unsigned(next.unwrap_or(0), "nonce")
    }

    async fn create_filler(
        &self,
        request: &TxRequest,
        chain_id: u64,
        from: Address,
        nonce: u64,
    ) -> RepoResult<ManagedTx> {
        let chain = int(chain_id, "chain id")?;
        let at = int(nonce, "nonce")?;
        let gas_limit = int(request.gas_limit, "gas limit")?;
        let from_hex = addr(from);
        // The unit may run on the SQLite writer's task: it owns its inputs.
        let request = request.clone();
        in_write_tx!(self, |tx, sql| {
            sql::ensure_nonce_row(&mut tx, chain, &from_hex, 0)
                .await
                .db()?;
            let next = sql::lock_next_nonce(&mut tx, chain, &from_hex).await.db()?;
            if let Some(existing) = sql::tx_by_key(&mut *tx, &request.key).await.db()? {
                let attempts = sql::attempts_of(&mut *tx, existing.id).await.db()?;
                return existing.into_managed(attempts);
            }
            if at >= next {
                return Err(RepoError::Conflict(format!(
                    "nonce {nonce} of {from_hex} was never allocated; it is no gap"
                )));
            }
            let row = NewTxRow::new(&request, chain, &from_hex, at, gas_limit);
            // A row already at this nonce is a unique violation: Conflict.
            sql::insert_tx(&mut tx, &row).await.db()?;
            load_tx!(tx, sql, row.id)
        })
    }

    async fn hold_sender(&self, chain_id: u64, from: Address) -> RepoResult<bool> {
        crate::senders::hold(&self.pools, &self.sender_locks, chain_id, from).await
    }

    async fn raise_next_nonce(&self, chain_id: u64, from: Address, floor: u64) -> RepoResult<u64> {
        let chain = int(chain_id, "chain id")?;
        let floor = int(floor, "nonce")?;
        let from_hex = addr(from);
        let next: RepoResult<i64> = in_write_tx!(self, |tx, sql| {
            sql::ensure_nonce_row(&mut tx, chain, &from_hex, floor)
                .await
                .db()?;
            let next = sql::lock_next_nonce(&mut tx, chain, &from_hex).await.db()?;
            if next < floor {
                sql::set_next_nonce(&mut tx, chain, &from_hex, floor)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(next.max(floor))
        });
        unsigned(next?, "nonce")
    }

    async fn add_attempt(&self, id: TxId, attempt: &TxAttempt) -> RepoResult<ManagedTx> {
        let params = AttemptParams {
            hash: format!("{:#x}", attempt.hash),
            max_fee: attempt.max_fee_per_gas.to_string(),
            priority_fee: attempt.max_priority_fee_per_gas.to_string(),
            raw: hex(&attempt.raw),
        };
        in_write_tx!(self, |tx, sql| {
            let current = load_tx!(tx, sql, id.0)?;
            if current.state.is_terminal() {
                return Err(RepoError::Conflict(format!(
                    "transaction {id} is {}",
                    current.state.as_str()
                )));
            }
            sql::insert_attempt(&mut tx, id.0, &params).await.db()?;
            load_tx!(tx, sql, id.0)
        })
    }

    async fn set_inclusion(
        &self,
        id: TxId,
        inclusion: Option<&TxInclusion>,
    ) -> RepoResult<ManagedTx> {
        let params = inclusion
            .map(|i| {
                Ok::<_, RepoError>(InclusionParams {
                    hash: format!("{:#x}", i.hash),
                    block_number: int(i.block_number, "block number")?,
                    block_hash: format!("{:#x}", i.block_hash),
                    gas_used: int(i.gas_used, "gas used")?,
                    effective_gas_price: i.effective_gas_price.to_string(),
                    contract_address: i.contract_address.map(addr),
                })
            })
            .transpose()?;
        in_write_tx!(self, |tx, sql| {
            let moved = sql::set_inclusion(&mut tx, id.0, params.as_ref())
                .await
                .db()?;
            let current = load_tx!(tx, sql, id.0)?;
            if moved == 0 {
                return Err(RepoError::Conflict(format!(
                    "transaction {id} is {}",
                    current.state.as_str()
                )));
            }
            Ok::<_, RepoError>(current)
        })
    }

    async fn finish(&self, id: TxId, state: TxState, error: Option<&str>) -> RepoResult<ManagedTx> {
        if !state.is_terminal() {
            return Err(RepoError::Conflict(format!(
                "{} is not a final state",
                state.as_str()
            )));
        }
        let error = error.map(str::to_owned);
        in_write_tx!(self, |tx, sql| {
            let moved = sql::finish_tx(&mut tx, id.0, state.as_str(), error.as_deref())
                .await
                .db()?;
            let current = load_tx!(tx, sql, id.0)?;
            if moved == 0 && current.state != state {
                return Err(RepoError::Conflict(format!(
                    "transaction {id} is already {}",
                    current.state.as_str()
                )));
            }
            Ok::<_, RepoError>(current)
        })
    }
}

crate::dialect::statements! {
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{AttemptParams, AttemptRow, InclusionParams, NewTxRow, TxRow};

    pub(crate) async fn ensure_nonce_row(
        c: &mut Conn,
        chain_id: i64,
        address: &str,
        floor: i64,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO tx_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3) \
             ON CONFLICT (chain_id, address) DO NOTHING",
        )
        .bind(chain_id)
        .bind(address)
        .bind(floor)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Reads a sender's next nonce, locking its row until the caller's
    /// transaction ends (SQLite: the write transaction already holds the lock).
    pub(crate) async fn lock_next_nonce(
        c: &mut Conn,
        chain_id: i64,
        address: &str,
    ) -> sqlx::Result<i64> {
        query_scalar(concat!(
            "SELECT next_nonce FROM tx_nonces WHERE chain_id = $1 AND address = $2 ",
            lock!()
        ))
        .bind(chain_id)
        .bind(address)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn next_nonce(
        pool: &Pool,
        chain_id: i64,
        address: &str,
    ) -> sqlx::Result<Option<i64>> {
        query_scalar("SELECT next_nonce FROM tx_nonces WHERE chain_id = $1 AND address = $2")
            .bind(chain_id)
            .bind(address)
            .fetch_optional(pool)
            .await
    }

    pub(crate) async fn set_next_nonce(
        c: &mut Conn,
        chain_id: i64,
        address: &str,
        next: i64,
    ) -> sqlx::Result<()> {
        query("UPDATE tx_nonces SET next_nonce = $3 WHERE chain_id = $1 AND address = $2")
            .bind(chain_id)
            .bind(address)
            .bind(next)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn insert_tx(c: &mut Conn, t: &NewTxRow<'_>) -> sqlx::Result<()> {
        query(
            "INSERT INTO managed_txs (id, key, lane, chain_id, from_address, nonce, to_address, \
             value, input, gas_limit, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
        )
        .bind(t.id)
        .bind(t.key)
        .bind(t.lane)
        .bind(t.chain_id)
        .bind(&t.from)
        .bind(t.nonce)
        .bind(&t.to)
        .bind(&t.value)
        .bind(&t.input)
        .bind(t.gas_limit)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn tx_by_id<'e, E>(e: E, id: Uuid) -> sqlx::Result<Option<TxRow>>
    where
        E: sqlx::Executor<'e, Database = Db>,
    {
        query_as(concat!("SELECT ", tx_columns!(), " FROM managed_txs WHERE id = $1"))
            .bind(id)
            .fetch_optional(e)
            .await
    }

    pub(crate) async fn tx_by_key<'e, E>(e: E, key: &str) -> sqlx::Result<Option<TxRow>>
    where
        E: sqlx::Executor<'e, Database = Db>,
    {
        query_as(concat!("SELECT ", tx_columns!(), " FROM managed_txs WHERE key = $1"))
            .bind(key)
            .fetch_optional(e)
            .await
    }

    pub(crate) async fn open_txs(
        pool: &Pool,
        chain_id: i64,
        from: &str,
    ) -> sqlx::Result<Vec<TxRow>> {
        query_as(concat!(
            "SELECT ",
            tx_columns!(),
            " FROM managed_txs WHERE chain_id = $1 AND from_address = $2 \
             AND state IN ('pending', 'submitted', 'confirmed') ORDER BY nonce"
        ))
        .bind(chain_id)
        .bind(from)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn attempts_of<'e, E>(e: E, tx_id: Uuid) -> sqlx::Result<Vec<AttemptRow>>
    where
        E: sqlx::Executor<'e, Database = Db>,
    {
        query_as(
            "SELECT tx_id, hash, max_fee_per_gas, max_priority_fee_per_gas, raw, created_at \
             FROM tx_attempts WHERE tx_id = $1 ORDER BY created_at, hash",
        )
        .bind(tx_id)
        .fetch_all(e)
        .await
    }

    /// Attempts of every open transaction of a sender, in one statement.
    pub(crate) async fn attempts_of_open(
        pool: &Pool,
        chain_id: i64,
        from: &str,
    ) -> sqlx::Result<Vec<AttemptRow>> {
        query_as(
            "SELECT a.tx_id, a.hash, a.max_fee_per_gas, a.max_priority_fee_per_gas, a.raw, a.created_at \
             FROM tx_attempts a JOIN managed_txs t ON t.id = a.tx_id \
             WHERE t.chain_id = $1 AND t.from_address = $2 \
             AND t.state IN ('pending', 'submitted', 'confirmed') ORDER BY a.created_at, a.hash",
        )
        .bind(chain_id)
        .bind(from)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn insert_attempt(
        c: &mut Conn,
        tx_id: Uuid,
        a: &AttemptParams,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO tx_attempts (hash, tx_id, max_fee_per_gas, max_priority_fee_per_gas, raw) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (hash) DO NOTHING",
        )
        .bind(&a.hash)
        .bind(tx_id)
        .bind(&a.max_fee)
        .bind(&a.priority_fee)
        .bind(&a.raw)
        .execute(&mut *c)
        .await?;
        query(concat!(
            "UPDATE managed_txs SET state = 'submitted', updated_at = ",
            now!(),
            " WHERE id = $1 AND state = 'pending'"
        ))
        .bind(tx_id)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Sets or clears where the transaction was mined; only a transaction
    /// that is not terminal moves.
    pub(crate) async fn set_inclusion(
        c: &mut Conn,
        tx_id: Uuid,
        i: Option<&InclusionParams>,
    ) -> sqlx::Result<u64> {
        query(concat!(
            "UPDATE managed_txs SET state = $2, mined_hash = $3, block_number = $4, \
             block_hash = $5, gas_used = $6, effective_gas_price = $7, contract_address = $8, \
             updated_at = ",
            now!(),
            " WHERE id = $1 AND state IN ('submitted', 'confirmed')"
        ))
        .bind(tx_id)
        .bind(if i.is_some() { "confirmed" } else { "submitted" })
        .bind(i.map(|i| i.hash.as_str()))
        .bind(i.map(|i| i.block_number))
        .bind(i.map(|i| i.block_hash.as_str()))
        .bind(i.map(|i| i.gas_used))
        .bind(i.map(|i| i.effective_gas_price.as_str()))
        .bind(i.and_then(|i| i.contract_address.as_deref()))
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    pub(crate) async fn finish_tx(
        c: &mut Conn,
        tx_id: Uuid,
        state: &str,
        error: Option<&str>,
    ) -> sqlx::Result<u64> {
        query(concat!(
            "UPDATE managed_txs SET state = $2, error = $3, updated_at = ",
            now!(),
            " WHERE id = $1 AND state NOT IN ('settled', 'failed')"
        ))
        .bind(tx_id)
        .bind(state)
        .bind(error)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }
}
