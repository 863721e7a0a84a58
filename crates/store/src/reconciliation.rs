//! Settled operations and transfers against the index ([`Reconciliation`]):
//! a mint, burn, forced transfer or transfer the transaction manager
//! settled must have its `Transfer` among the indexed events once the
//! indexer has passed its block, and a settled transfer one with its
//! sender, receiver and amount (checked once per transfer, then marked).
//! Each disagreement is raised once (a row in `indexer_alarms` and an
//! `operation.unindexed`, `transfer.unindexed` or `transfer.mismatched`
//! event, in one transaction) and reported while it lasts.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rwa_domain::chain::{Address, U256};
use rwa_domain::onchain::{EventKind, Reconciliation, Unreconciled};
use rwa_domain::{OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::in_write_tx;

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    subject: String,
    id: Uuid,
    org_id: Uuid,
    tx_hash: String,
    block_number: i64,
}

/// A settled transfer whose amount is not checked yet.
#[derive(sqlx::FromRow)]
pub(crate) struct Unchecked {
    id: Uuid,
    org_id: Uuid,
    tx_hash: String,
    block_number: i64,
    contract: String,
    from_wallet: String,
    to_wallet: String,
    amount: String,
}

/// Settled transfers checked per round.
const CHECKS_PER_ROUND: i64 = 1000;

/// The `(from, to, value)` of each indexed ERC-20 `Transfer`.
fn moves(data: &[String]) -> Vec<(Address, Address, U256)> {
    data.iter()
        .filter_map(|d| match serde_json::from_str::<EventKind>(d) {
            Ok(EventKind::Erc20Transfer { from, to, value }) => Some((from, to, value)),
            _ => None,
        })
        .collect()
}

/// Whether the transfer is among `moves` (taking it out: two equal
/// transfers of one batch need two equal moves).
fn take(moves: &mut Vec<(Address, Address, U256)>, t: &Unchecked) -> RepoResult<bool> {
    let bad = |what: &str| RepoError::Internal(format!("transfer {}: stored {what}", t.id));
    let from: Address = t.from_wallet.parse().map_err(|_| bad("sender"))?;
    let to: Address = t.to_wallet.parse().map_err(|_| bad("receiver"))?;
    let value: U256 = t.amount.parse().map_err(|_| bad("amount"))?;
    Ok(match moves.iter().position(|m| *m == (from, to, value)) {
        Some(i) => {
            moves.swap_remove(i);
            true
        }
        None => false,
    })
}

#[async_trait]
impl Reconciliation for Store {
    async fn system_reconcile_settlements(
        &self,
        chain_id: u64,
        below: u64,
    ) -> RepoResult<Vec<Unreconciled>> {
        let id = chain_id as i64;
        let rows: RepoResult<Vec<(Row, &'static str)>> = in_write_tx!(self, |tx, sql, events| {
            let mut open: Vec<(Row, &'static str)> = sql::unindexed(&mut tx, id, below as i64)
                .await
                .db()?
                .into_iter()
                .map(|r| (r, "unindexed"))
                .collect();
            // Amounts: each settled transfer once its transaction's
            // Transfers are indexed (one not indexed at all is raised above).
            let unchecked = sql::unchecked(&mut tx, id, below as i64, CHECKS_PER_ROUND)
                .await
                .db()?;
            let mut by_tx: BTreeMap<(String, String), Vec<Unchecked>> = BTreeMap::new();
            for t in unchecked {
                by_tx
                    .entry((t.tx_hash.clone(), t.contract.clone()))
                    .or_default()
                    .push(t);
            }
            for ((hash, contract), transfers) in by_tx {
                let data = sql::transfers_in(&mut tx, id, &hash, &contract)
                    .await
                    .db()?;
                if data.is_empty() {
                    continue;
                }
                let mut moves = moves(&data);
                for t in transfers {
                    if take(&mut moves, &t)? {
                        sql::amount_checked(&mut tx, t.id).await.db()?;
                    } else {
                        let row = Row {
                            subject: "transfer".into(),
                            id: t.id,
                            org_id: t.org_id,
                            tx_hash: t.tx_hash,
                            block_number: t.block_number,
                        };
                        open.push((row, "mismatched"));
                    }
                }
            }
            for (r, reason) in &open {
                if sql::raise(&mut tx, r, id).await.db()? {
                    let data = serde_json::json!({
                        format!("{}_id", r.subject): r.id,
                        "tx_hash": r.tx_hash,
                        "block_number": r.block_number,
                        "chain_id": chain_id,
                    });
                    let kind = format!("{}.{reason}", r.subject);
                    events::append_event(&mut tx, r.org_id, &kind, &data)
                        .await
                        .db()?;
                }
            }
            Ok::<_, RepoError>(open)
        });
        rows?
            .into_iter()
            .map(|(r, reason)| {
                Ok(Unreconciled {
                    subject: if r.subject == "transfer" {
                        "transfer"
                    } else {
                        "operation"
                    },
                    reason,
                    id: r.id,
                    org_id: OrgId::from_uuid(r.org_id),
                    tx_hash: r
                        .tx_hash
                        .parse()
                        .map_err(|_| RepoError::Internal(format!("stored hash {:?}", r.tx_hash)))?,
                    block_number: r.block_number as u64,
                })
            })
            .collect()
    }
}

crate::dialect::statements! {
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::{Row, Unchecked};

    /// Settled transfers of followed tokens at or below `below` whose
    /// amount is not checked yet, oldest first.
    pub(crate) async fn unchecked(c: &mut Conn, chain_id: i64, below: i64, limit: i64) -> sqlx::Result<Vec<Unchecked>> {
        query_as(
            "SELECT x.id, x.org_id, x.tx_hash, x.block_number, t.address AS contract, \
             x.from_wallet, x.to_wallet, x.amount FROM transfers x \
             JOIN tokens t ON t.id = x.token_id \
             JOIN indexer_sources s ON s.chain_id = $1 AND s.address = t.address \
               AND s.synced_to IS NULL \
             WHERE x.status = 'settled' AND NOT x.amount_checked AND x.block_number <= $2 \
               AND t.chain_id = $1 AND x.tx_hash IS NOT NULL \
             ORDER BY x.block_number LIMIT $3",
        )
        .bind(chain_id)
        .bind(below)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    /// The indexed ERC-20 `Transfer`s of `contract` in a transaction.
    pub(crate) async fn transfers_in(c: &mut Conn, chain_id: i64, tx_hash: &str, contract: &str) -> sqlx::Result<Vec<String>> {
        query_scalar(
            "SELECT data FROM onchain_events WHERE chain_id = $1 AND tx_hash = $2 \
             AND contract = $3 AND kind = 'erc20_transfer'",
        )
        .bind(chain_id)
        .bind(tx_hash)
        .bind(contract)
        .fetch_all(c)
        .await
    }

    pub(crate) async fn amount_checked(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        query("UPDATE transfers SET amount_checked = true WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Settled operations and transfers of followed tokens, at or below
    /// `below`, with no indexed `Transfer` of the token in their
    /// transaction.
    pub(crate) async fn unindexed(c: &mut Conn, chain_id: i64, below: i64) -> sqlx::Result<Vec<Row>> {
        query_as(
            "SELECT 'operation' AS subject, o.id, o.org_id, b.tx_hash, b.block_number FROM operations o \
             JOIN operation_batches b ON b.id = o.batch_id \
             JOIN tokens t ON t.id = o.token_id \
             JOIN indexer_sources s ON s.chain_id = $1 AND s.address = t.address \
               AND s.synced_to IS NULL \
             WHERE t.chain_id = $1 AND o.status = 'settled' \
               AND o.kind IN ('mint', 'burn', 'forced_transfer') \
               AND b.tx_hash IS NOT NULL AND b.block_number <= $2 \
               AND NOT EXISTS (SELECT 1 FROM onchain_events e WHERE e.chain_id = $1 \
                 AND e.tx_hash = b.tx_hash AND e.contract = t.address \
                 AND e.kind = 'erc20_transfer') \
             UNION ALL \
             SELECT 'transfer' AS subject, x.id, x.org_id, b.tx_hash, b.block_number FROM transfers x \
             JOIN transfer_batches b ON b.id = x.batch_id \
             JOIN tokens t ON t.id = x.token_id \
             JOIN indexer_sources s ON s.chain_id = $1 AND s.address = t.address \
               AND s.synced_to IS NULL \
             WHERE t.chain_id = $1 AND x.status = 'settled' \
               AND b.tx_hash IS NOT NULL AND b.block_number <= $2 \
               AND NOT EXISTS (SELECT 1 FROM onchain_events e WHERE e.chain_id = $1 \
                 AND e.tx_hash = b.tx_hash AND e.contract = t.address \
                 AND e.kind = 'erc20_transfer') \
             ORDER BY block_number",
        )
        .bind(chain_id)
        .bind(below)
        .fetch_all(c)
        .await
    }

    /// Records the alarm (`operation_id` holds a transfer's id for a
    /// transfer: both are UUIDv7); whether it is new.
    pub(crate) async fn raise(c: &mut Conn, r: &Row, chain_id: i64) -> sqlx::Result<bool> {
        query(
            "INSERT INTO indexer_alarms (operation_id, org_id, chain_id, tx_hash) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (operation_id) DO NOTHING",
        )
        .bind(r.id)
        .bind(r.org_id)
        .bind(chain_id)
        .bind(&r.tx_hash)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }
}
