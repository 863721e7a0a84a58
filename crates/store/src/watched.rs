//! Watched contracts ([`WatchedContracts`]): external ERC-20, ERC-721 and
//! ERC-1155 contracts an organization asked the indexer to follow. The
//! indexer picks a new one up as a source and lets it catch up from its
//! start block. Unwatching the last follower of an address forgets what
//! was indexed of it, in the same transaction (holding the index's cursor
//! row, so no batch of the indexer interleaves): watched again later, it is
//! indexed afresh, never counted twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::onchain::{NewWatchedContract, Standard, WatchedContract, WatchedContracts};
use rwa_domain::{OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    id: Uuid,
    org_id: Uuid,
    chain_id: i64,
    address: String,
    standard: String,
    start_block: i64,
    name: Option<String>,
    created_at: DateTime<Utc>,
}

impl Row {
    fn into_contract(self) -> RepoResult<WatchedContract> {
        Ok(WatchedContract {
            id: self.id,
            org_id: OrgId::from_uuid(self.org_id),
            chain_id: self.chain_id as u64,
            address: self.address.parse().map_err(|_| {
                RepoError::Internal(format!("stored address {:?} does not parse", self.address))
            })?,
            standard: Standard::parse(&self.standard).ok_or_else(|| {
                RepoError::Internal(format!("stored standard {:?}", self.standard))
            })?,
            start_block: self.start_block as u64,
            name: self.name,
            created_at: self.created_at,
        })
    }
}

#[async_trait]
impl WatchedContracts for Store {
    async fn watch(
        &self,
        org: OrgId,
        chain_id: u64,
        contract: &NewWatchedContract,
    ) -> RepoResult<WatchedContract> {
        let contract = contract.clone();
        let row: RepoResult<Option<Row>> = in_write_tx!(self, |tx, sql| {
            let id = Uuid::now_v7();
            let inserted = sql::insert(&mut tx, id, org.as_uuid(), chain_id as i64, &contract)
                .await
                .db()?;
            if !inserted {
                return Err(RepoError::Conflict(format!(
                    "the organization already watches {:#x}",
                    contract.address
                )));
            }
            sql::get(&mut *tx, org.as_uuid(), id).await.db()
        });
        row?.ok_or_else(|| RepoError::Internal("watched contract vanished".into()))?
            .into_contract()
    }

    async fn watched(&self, org: OrgId) -> RepoResult<Vec<WatchedContract>> {
        let rows = on_reader!(self, |pool, sql| sql::list(pool, org.as_uuid()).await.db())?;
        rows.into_iter().map(Row::into_contract).collect()
    }

    async fn watched_one(&self, org: OrgId, id: Uuid) -> RepoResult<WatchedContract> {
        on_reader!(self, |pool, sql| sql::get(pool, org.as_uuid(), id)
            .await
            .db())?
        .ok_or(RepoError::NotFound)?
        .into_contract()
    }

    async fn unwatch(&self, org: OrgId, id: Uuid) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| {
            let Some(row) = sql::get(&mut *tx, org.as_uuid(), id).await.db()? else {
                return Err(RepoError::NotFound);
            };
            sql::lock_index(&mut tx, row.chain_id).await.db()?;
            sql::delete(&mut tx, id).await.db()?;
            if !sql::still_followed(&mut tx, row.chain_id, &row.address)
                .await
                .db()?
            {
                sql::forget(&mut tx, row.chain_id, &row.address)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(())
        })
    }
}

crate::dialect::statements! {
    use rwa_domain::onchain::NewWatchedContract;
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::Row;

    macro_rules! columns {
        () => {
            "id, org_id, chain_id, address, standard, start_block, name, created_at"
        };
    }

    pub(crate) async fn insert(
        c: &mut Conn,
        id: Uuid,
        org: Uuid,
        chain_id: i64,
        w: &NewWatchedContract,
    ) -> sqlx::Result<bool> {
        query(
            "INSERT INTO watched_contracts (id, org_id, chain_id, address, standard, start_block, name) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (org_id, chain_id, address) DO NOTHING",
        )
        .bind(id)
        .bind(org)
        .bind(chain_id)
        .bind(format!("{:#x}", w.address))
        .bind(w.standard.as_str())
        .bind(w.start_block as i64)
        .bind(w.name.as_deref())
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    pub(crate) async fn get<'c, E>(c: E, org: Uuid, id: Uuid) -> sqlx::Result<Option<Row>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM watched_contracts WHERE org_id = $1 AND id = $2"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn list(pool: &Pool, org: Uuid) -> sqlx::Result<Vec<Row>> {
        query_as(concat!(
            "SELECT ",
            columns!(),
            " FROM watched_contracts WHERE org_id = $1 ORDER BY id"
        ))
        .bind(org)
        .fetch_all(pool)
        .await
    }

    /// Holds the index's cursor row (PostgreSQL): no batch commits meanwhile.
    pub(crate) async fn lock_index(c: &mut Conn, chain_id: i64) -> sqlx::Result<()> {
        query(concat!("SELECT chain_id FROM indexer_state WHERE chain_id = $1 ", lock!()))
            .bind(chain_id)
            .fetch_optional(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn delete(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        query("DELETE FROM watched_contracts WHERE id = $1")
            .bind(id)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Whether another watch, or a platform token, follows `address`.
    pub(crate) async fn still_followed(c: &mut Conn, chain_id: i64, address: &str) -> sqlx::Result<bool> {
        query_scalar(
            "SELECT EXISTS (SELECT 1 FROM watched_contracts WHERE chain_id = $1 AND address = $2) \
             OR EXISTS (SELECT 1 FROM tokens WHERE chain_id = $1 \
               AND (address = $2 OR compliance_address = $2)) \
             OR EXISTS (SELECT 1 FROM identity_registries WHERE chain_id = $1 AND address = $2)",
        )
        .bind(chain_id)
        .bind(address)
        .fetch_one(c)
        .await
    }

    /// Forgets what was indexed of `address`.
    pub(crate) async fn forget(c: &mut Conn, chain_id: i64, address: &str) -> sqlx::Result<()> {
        for statement in [
            "DELETE FROM onchain_events WHERE chain_id = $1 AND contract = $2",
            "DELETE FROM holdings WHERE chain_id = $1 AND contract = $2",
            "DELETE FROM holding_history WHERE chain_id = $1 AND contract = $2",
        ] {
            query(statement)
                .bind(chain_id)
                .bind(address)
                .execute(&mut *c)
                .await?;
        }
        query("DELETE FROM indexer_sources WHERE chain_id = $1 AND address = $2")
            .bind(chain_id)
            .bind(address)
            .execute(c)
            .await
            .map(|_| ())
    }
}
