//! Holdings derived from indexed events (`rwa_domain::holding`): the
//! current row of each `(contract, token id, wallet)` in `holdings`, and
//! its value after every block that changed it in `holding_history`.
//! Written only inside the index's batch and rewind transactions
//! (`onchain.rs`); read by the projections.

use std::collections::{BTreeMap, HashMap};

use rwa_domain::chain::{Address, U256};
use rwa_domain::holding::{Holding, HoldingKey, effects};
use rwa_domain::onchain::{HolderRow, OnchainEvent};
use rwa_domain::{RepoError, RepoResult};

use crate::connect::on_reader;
use crate::error::DbResult;

/// A stored holding.
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    contract: String,
    token_id: String,
    wallet: String,
    balance: String,
    frozen: String,
    wallet_frozen: bool,
    block_number: i64,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

/// The stored form of a token id: empty for a fungible token.
pub(crate) fn token_id_text(id: Option<U256>) -> String {
    id.map(|v| v.to_string()).unwrap_or_default()
}

pub(crate) fn hex(a: Address) -> String {
    format!("{a:#x}")
}

impl Row {
    pub(crate) fn key(&self) -> RepoResult<HoldingKey> {
        Ok(HoldingKey {
            contract: parse(&self.contract, "contract")?,
            token_id: if self.token_id.is_empty() {
                None
            } else {
                Some(parse(&self.token_id, "token id")?)
            },
            wallet: parse(&self.wallet, "wallet")?,
        })
    }

    fn holding(&self) -> RepoResult<Holding> {
        Ok(Holding {
            balance: parse(&self.balance, "balance")?,
            frozen: parse(&self.frozen, "frozen amount")?,
            wallet_frozen: self.wallet_frozen,
        })
    }

    pub(crate) fn into_holder(self) -> RepoResult<HolderRow> {
        let key = self.key()?;
        let h = self.holding()?;
        Ok(HolderRow {
            contract: key.contract,
            token_id: key.token_id,
            wallet: key.wallet,
            balance: h.balance,
            frozen: h.frozen,
            wallet_frozen: h.wallet_frozen,
            block_number: self.block_number as u64,
        })
    }
}

/// A holding to write: its key, value and block.
pub(crate) struct Change {
    pub(crate) key: HoldingKey,
    pub(crate) holding: Holding,
    pub(crate) block: u64,
}

/// Applies `events` (chain order) to the holdings they touch, given the
/// current rows of those holdings; returns the value after each block that
/// changed each holding (history), and the number of clamped overdrafts.
pub(crate) fn derive(events: &[OnchainEvent], current: Vec<Row>) -> RepoResult<(Vec<Change>, u64)> {
    let mut state: HashMap<HoldingKey, Holding> = HashMap::new();
    for row in current {
        state.insert(row.key()?, row.holding()?);
    }
    // Keyed by (key, block): the last value within a block wins.
    let mut history: BTreeMap<(HoldingKey, u64), Holding> = BTreeMap::new();
    let mut underflows = 0;
    for e in events {
        for (key, effect) in effects(e.contract, &e.kind) {
            let h = state.entry(key).or_default();
            if !h.apply(effect) {
                underflows += 1;
            }
            history.insert((key, e.block_number), *h);
        }
    }
    let changes = history
        .into_iter()
        .map(|((key, block), holding)| Change {
            key,
            holding,
            block,
        })
        .collect();
    Ok((changes, underflows))
}

/// The keys events touch, by contract: what to load before [`derive`].
pub(crate) fn touched(events: &[OnchainEvent]) -> BTreeMap<Address, Vec<Address>> {
    let mut out: BTreeMap<Address, Vec<Address>> = BTreeMap::new();
    for e in events {
        for (key, _) in effects(e.contract, &e.kind) {
            out.entry(key.contract).or_default().push(key.wallet);
        }
    }
    for wallets in out.values_mut() {
        wallets.sort();
        wallets.dedup();
    }
    out
}

impl crate::Store {
    /// Non-zero current balances of `contract` after `(token id, wallet)`.
    pub(crate) async fn holdings_current(
        &self,
        chain_id: i64,
        contract: Address,
        after: &(String, String),
        limit: u32,
    ) -> RepoResult<Vec<Row>> {
        on_reader!(self, |pool, sql| {
            sql::current_holders(pool, chain_id, contract, (&after.0, &after.1), limit.into())
                .await
                .db()
        })
    }

    /// Non-zero balances of `contract` as of `block`.
    pub(crate) async fn holdings_history_at(
        &self,
        chain_id: i64,
        contract: Address,
        block: i64,
        after: &(String, String),
        limit: u32,
    ) -> RepoResult<Vec<Row>> {
        on_reader!(self, |pool, sql| {
            sql::holders_at(
                pool,
                chain_id,
                contract,
                block,
                (&after.0, &after.1),
                limit.into(),
            )
            .await
            .db()
        })
    }

    /// Current rows of `wallets` in every contract.
    pub(crate) async fn holdings_of_wallets(
        &self,
        chain_id: i64,
        wallets: &[Address],
    ) -> RepoResult<Vec<Row>> {
        on_reader!(self, |pool, sql| sql::of_wallets(pool, chain_id, wallets)
            .await
            .db())
    }
}

#[async_trait::async_trait]
impl rwa_domain::operation::HoldingsView for crate::Store {
    async fn holding(
        &self,
        deployment: &rwa_domain::token::TokenDeployment,
        investor: rwa_domain::InvestorId,
    ) -> RepoResult<rwa_domain::operation::Holding> {
        let chain_id = deployment.chain_id as i64;
        let contract = hex(deployment.address);
        let investor = investor.as_uuid();
        let (indexed, balances, holders) = on_reader!(self, |pool, sql| {
            let indexed = sql::indexed_block(pool, chain_id).await.db()?;
            let balances = sql::investor_balances(pool, chain_id, &contract, investor)
                .await
                .db()?;
            let holders = sql::holder_count(pool, chain_id, &contract).await.db()?;
            (indexed, balances, holders)
        });
        let mut investor_balance = U256::ZERO;
        for balance in balances {
            investor_balance += parse::<U256>(&balance, "balance")?;
        }
        Ok(rwa_domain::operation::Holding {
            investor_balance,
            holder_count: holders.max(0) as u64,
            indexed_block: indexed.unwrap_or(0) as u64,
        })
    }
}

/// Rows per multi-row statement (8 parameters each, well under SQLite's
/// 32,766 and PostgreSQL's 65,535).
pub(crate) const CHUNK: usize = 1000;

crate::dialect::statements! {
    /// The last block the index holds on the chain.
    pub(crate) async fn indexed_block(pool: &Pool, chain_id: i64) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar("SELECT block_number FROM indexer_state WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_optional(pool)
            .await
    }

    /// The indexed balances of the investor's wallets in the fungible
    /// `contract`.
    pub(crate) async fn investor_balances(
        pool: &Pool,
        chain_id: i64,
        contract: &str,
        investor: uuid::Uuid,
    ) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT h.balance FROM holdings h \
             JOIN investor_wallets w ON w.address = h.wallet AND w.investor_id = $3 \
             WHERE h.chain_id = $1 AND h.contract = $2 AND h.token_id = ''",
        )
        .bind(chain_id)
        .bind(contract)
        .bind(investor)
        .fetch_all(pool)
        .await
    }

    /// Holders of the fungible `contract` as its compliance contract counts
    /// them: investors (of the token's organization), and each wallet of
    /// nobody alone; counted in the database, not row by row here.
    pub(crate) async fn holder_count(pool: &Pool, chain_id: i64, contract: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT count(DISTINCT w.investor_id) \
             + coalesce(sum(CASE WHEN w.investor_id IS NULL THEN 1 ELSE 0 END), 0) \
             FROM holdings h \
             LEFT JOIN tokens t ON t.chain_id = h.chain_id AND t.address = h.contract \
             LEFT JOIN investor_wallets w ON w.org_id = t.org_id AND w.address = h.wallet \
             WHERE h.chain_id = $1 AND h.contract = $2 AND h.token_id = '' AND h.balance <> '0'",
        )
        .bind(chain_id)
        .bind(contract)
        .fetch_one(pool)
        .await
    }

    use rwa_domain::chain::Address;
    use sqlx::{QueryBuilder, query, query_as};

    use super::{CHUNK, Change, Row, hex, token_id_text};

    const COLUMNS: &str = "contract, token_id, wallet, balance, frozen, wallet_frozen, block_number";

    macro_rules! columns {
        () => {
            "contract, token_id, wallet, balance, frozen, wallet_frozen, block_number"
        };
    }

    /// Current rows of `wallets` in `contract`.
    pub(crate) async fn current(
        c: &mut Conn,
        chain_id: i64,
        contract: Address,
        wallets: &[Address],
    ) -> sqlx::Result<Vec<Row>> {
        let mut out = Vec::new();
        for part in wallets.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT {COLUMNS} FROM holdings WHERE chain_id = "
            ));
            q.push_bind(chain_id);
            q.push(" AND contract = ");
            q.push_bind(hex(contract));
            q.push(" AND wallet IN (");
            let mut sep = q.separated(", ");
            for w in part {
                sep.push_bind(hex(*w));
            }
            q.push(")");
            out.extend(q.build_query_as::<Row>().fetch_all(&mut *c).await?);
        }
        Ok(out)
    }

    /// Writes `changes`: every one into the history, the latest of each
    /// key into the current rows.
    pub(crate) async fn write(c: &mut Conn, chain_id: i64, changes: &[Change]) -> sqlx::Result<()> {
        for part in changes.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO holding_history (chain_id, contract, token_id, wallet, block_number, \
                 balance, frozen, wallet_frozen) ",
            );
            q.push_values(part, |mut b, ch| {
                b.push_bind(chain_id)
                    .push_bind(hex(ch.key.contract))
                    .push_bind(token_id_text(ch.key.token_id))
                    .push_bind(hex(ch.key.wallet))
                    .push_bind(ch.block as i64)
                    .push_bind(ch.holding.balance.to_string())
                    .push_bind(ch.holding.frozen.to_string())
                    .push_bind(ch.holding.wallet_frozen);
            });
            q.push(
                " ON CONFLICT (chain_id, contract, token_id, wallet, block_number) DO UPDATE SET \
                 balance = excluded.balance, frozen = excluded.frozen, \
                 wallet_frozen = excluded.wallet_frozen",
            );
            q.build().execute(&mut *c).await?;
        }
        // Changes come sorted by key then block: the last of each key is its
        // current value.
        let latest: Vec<&Change> = changes
            .iter()
            .enumerate()
            .filter(|(i, ch)| changes.get(i + 1).is_none_or(|next| next.key != ch.key))
            .map(|(_, ch)| ch)
            .collect();
        for part in latest.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(
                "INSERT INTO holdings (chain_id, contract, token_id, wallet, block_number, \
                 balance, frozen, wallet_frozen) ",
            );
            q.push_values(part, |mut b, ch| {
                b.push_bind(chain_id)
                    .push_bind(hex(ch.key.contract))
                    .push_bind(token_id_text(ch.key.token_id))
                    .push_bind(hex(ch.key.wallet))
                    .push_bind(ch.block as i64)
                    .push_bind(ch.holding.balance.to_string())
                    .push_bind(ch.holding.frozen.to_string())
                    .push_bind(ch.holding.wallet_frozen);
            });
            q.push(
                " ON CONFLICT (chain_id, contract, token_id, wallet) DO UPDATE SET \
                 balance = excluded.balance, frozen = excluded.frozen, \
                 wallet_frozen = excluded.wallet_frozen, block_number = excluded.block_number",
            );
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    }

    /// Undoes every change above `block`: the history rows go, and each
    /// holding they touched gets back its latest remaining value (or goes).
    pub(crate) async fn rewind(c: &mut Conn, chain_id: i64, block: i64) -> sqlx::Result<()> {
        let keys: Vec<(String, String, String)> = query_as(
            "SELECT DISTINCT contract, token_id, wallet FROM holding_history \
             WHERE chain_id = $1 AND block_number > $2",
        )
        .bind(chain_id)
        .bind(block)
        .fetch_all(&mut *c)
        .await?;
        query("DELETE FROM holding_history WHERE chain_id = $1 AND block_number > $2")
            .bind(chain_id)
            .bind(block)
            .execute(&mut *c)
            .await?;
        for (contract, token_id, wallet) in keys {
            query(
                "DELETE FROM holdings WHERE chain_id = $1 AND contract = $2 AND token_id = $3 \
                 AND wallet = $4",
            )
            .bind(chain_id)
            .bind(&contract)
            .bind(&token_id)
            .bind(&wallet)
            .execute(&mut *c)
            .await?;
            query(
                "INSERT INTO holdings (chain_id, contract, token_id, wallet, block_number, balance, \
                 frozen, wallet_frozen) \
                 SELECT chain_id, contract, token_id, wallet, block_number, balance, frozen, \
                 wallet_frozen FROM holding_history WHERE chain_id = $1 AND contract = $2 \
                 AND token_id = $3 AND wallet = $4 ORDER BY block_number DESC LIMIT 1",
            )
            .bind(chain_id)
            .bind(&contract)
            .bind(&token_id)
            .bind(&wallet)
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    }

    /// Non-zero current balances of `contract`, by (token id, wallet) after `after`.
    pub(crate) async fn current_holders(
        pool: &Pool,
        chain_id: i64,
        contract: Address,
        after: (&str, &str),
        limit: i64,
    ) -> sqlx::Result<Vec<Row>> {
        query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM holdings WHERE chain_id = $1 AND contract = $2 \
             AND balance <> '0' AND (token_id, wallet) > ($3, $4) \
             ORDER BY token_id, wallet LIMIT $5"
        ))
        .bind(chain_id)
        .bind(hex(contract))
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    /// Non-zero balances of `contract` as of `block`, by (token id, wallet)
    /// after `after`: each holding's latest history row at or below it.
    pub(crate) async fn holders_at(
        pool: &Pool,
        chain_id: i64,
        contract: Address,
        block: i64,
        after: (&str, &str),
        limit: i64,
    ) -> sqlx::Result<Vec<Row>> {
        query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM holding_history h WHERE h.chain_id = $1 AND h.contract = $2 \
             AND (h.token_id, h.wallet) > ($4, $5) AND h.balance <> '0' \
             AND h.block_number = (SELECT max(x.block_number) FROM holding_history x \
               WHERE x.chain_id = h.chain_id AND x.contract = h.contract \
               AND x.token_id = h.token_id AND x.wallet = h.wallet AND x.block_number <= $3) \
             ORDER BY h.token_id, h.wallet LIMIT $6"
        ))
        .bind(chain_id)
        .bind(hex(contract))
        .bind(block)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(pool)
        .await
    }

    /// Current rows of `wallets` in every contract.
    pub(crate) async fn of_wallets(
        pool: &Pool,
        chain_id: i64,
        wallets: &[Address],
    ) -> sqlx::Result<Vec<Row>> {
        let mut out = Vec::new();
        for part in wallets.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new(format!(
                "SELECT {COLUMNS} FROM holdings WHERE chain_id = "
            ));
            q.push_bind(chain_id);
            q.push(" AND wallet IN (");
            let mut sep = q.separated(", ");
            for w in part {
                sep.push_bind(hex(*w));
            }
            q.push(") ORDER BY contract, token_id, wallet");
            out.extend(q.build_query_as::<Row>().fetch_all(pool).await?);
        }
        Ok(out)
    }
}
