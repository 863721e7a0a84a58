//! Settled operations and transfers against the index ([`Reconciliation`]):
//! a mint, burn, forced transfer or transfer the transaction manager
//! settled must have its `Transfer` among the indexed events once the
//! indexer has passed its block. Each disagreement is raised once (a row in
//! `indexer_alarms` and an `operation.unindexed` or `transfer.unindexed`
//! event, in one transaction) and reported while it lasts.

use async_trait::async_trait;
use rwa_domain::onchain::{Reconciliation, Unreconciled};
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

#[async_trait]
impl Reconciliation for Store {
    async fn system_reconcile_settlements(
        &self,
        chain_id: u64,
        below: u64,
    ) -> RepoResult<Vec<Unreconciled>> {
        let id = chain_id as i64;
        let rows: RepoResult<Vec<Row>> = in_write_tx!(self, |tx, sql, events| {
            let rows = sql::unindexed(&mut tx, id, below as i64).await.db()?;
            for r in &rows {
                if sql::raise(&mut tx, r, id).await.db()? {
                    let data = serde_json::json!({
                        format!("{}_id", r.subject): r.id,
                        "tx_hash": r.tx_hash,
                        "block_number": r.block_number,
                        "chain_id": chain_id,
                    });
                    let kind = format!("{}.unindexed", r.subject);
                    events::append_event(&mut tx, r.org_id, &kind, &data)
                        .await
                        .db()?;
                }
            }
            Ok::<_, RepoError>(rows)
        });
        rows?
            .into_iter()
            .map(|r| {
                Ok(Unreconciled {
                    subject: if r.subject == "transfer" {
                        "transfer"
                    } else {
                        "operation"
                    },
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
    use sqlx::{query, query_as};

    use super::Row;

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
