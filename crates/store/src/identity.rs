//! On-chain identity registrations ([`IdentityRepository`]): the wanted and
//! the settled registry entry of every wallet, the batches carrying the
//! difference, and the per-organization flag that keeps exactly one sync job
//! running while there is work.
//!
//! Investor changes call [`plan`] (through the statements below) inside their
//! own transaction, so a committed change always has its registry work
//! recorded and its sync job enqueued, and a rolled-back one has neither.
//!
//! One `identity-sync` job per organization runs while there is work, kept
//! so by the organization's flag in `flow_syncs` (see `sync_flag.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::chain::Address;
use rwa_domain::country::Country;
use rwa_domain::identity::{
    BatchItem, EXPIRY_SWEEP_KIND, Entry, IDENTITY_QUEUE, IdentityAction, IdentityBatch,
    IdentityRepository, Registration, SYNC_KIND, SweepReport,
};
use rwa_domain::investor::{Investor, KycStatus};
use rwa_domain::tx::TxId;
use rwa_domain::{InvestorId, OrgId, RepoError, RepoResult};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use crate::sync_flag::{self, Flow};

/// Attempts of a sync job before it is discarded (backoff reaches its 6-hour
/// cap long before); the expiry sweep revives an organization's sync that
/// has no job left.
const SYNC_ATTEMPTS: i32 = 60;

/// The identity sync flow, one job per organization.
pub(crate) const FLOW: Flow = Flow {
    name: "identity",
    namespace: 0x1d3e_7a11_0000_0000,
    kind: SYNC_KIND,
    job: sync_job,
};

/// The job that carries `org`'s registry changes to the chain.
pub(crate) fn sync_job(org: Uuid) -> NewJob {
    NewJob::new(IDENTITY_QUEUE, SYNC_KIND, json!({ "org_id": org }))
        .for_org(org)
        .max_attempts(SYNC_ATTEMPTS)
}

/// The periodic expiry sweep.
pub fn expiry_sweep_job() -> NewJob {
    NewJob::new(IDENTITY_QUEUE, EXPIRY_SWEEP_KIND, json!({})).max_attempts(3)
}

/// What an investor's wallets should say in the registry (numeric country,
/// expiry in unix seconds): `None` when they should not be there (not
/// approved).
pub(crate) fn wanted(
    status: KycStatus,
    expires: Option<DateTime<Utc>>,
    country: Country,
) -> Option<(i32, i64)> {
    match (status, expires) {
        (KycStatus::Approved, Some(expires)) => {
            Some((i32::from(country.numeric()), expires.timestamp().max(0)))
        }
        _ => None,
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct RegistrationRow {
    investor_id: Uuid,
    address: String,
    status: String,
    error: Option<String>,
    updated_at: DateTime<Utc>,
}

/// Gives each investor its registrations (rows ordered by investor).
pub(crate) fn attach(investors: &mut [Investor], rows: Vec<RegistrationRow>) -> RepoResult<()> {
    for row in rows {
        let registration = Registration {
            address: parse_address(&row.address)?,
            status: row.status.parse().map_err(RepoError::Internal)?,
            error: row.error,
            updated_at: row.updated_at,
        };
        if let Some(i) = investors
            .iter_mut()
            .find(|i| i.id.as_uuid() == row.investor_id)
        {
            i.registrations.push(registration);
        }
    }
    Ok(())
}

fn parse_address(a: &str) -> RepoResult<Address> {
    a.parse()
        .map_err(|_| RepoError::Internal(format!("stored wallet {a:?} does not parse")))
}

/// A registration waiting for a batch.
#[derive(sqlx::FromRow)]
pub(crate) struct TodoRow {
    address: String,
    investor_id: Uuid,
    want_present: bool,
    want_country: i32,
    want_expires: i64,
    chain_investor: Option<Uuid>,
    chain_country: Option<i32>,
    chain_expires: Option<i64>,
    isolate: bool,
}

fn entry(investor: Uuid, country: i32, expires: i64) -> RepoResult<Entry> {
    Ok(Entry {
        investor_id: InvestorId::from_uuid(investor),
        country: u16::try_from(country)
            .map_err(|_| RepoError::Internal(format!("stored country {country}")))?,
        expires_at: u64::try_from(expires)
            .map_err(|_| RepoError::Internal(format!("stored expiry {expires}")))?,
    })
}

impl TodoRow {
    fn want(&self) -> RepoResult<Option<Entry>> {
        self.want_present
            .then(|| entry(self.investor_id, self.want_country, self.want_expires))
            .transpose()
    }

    fn chain(&self) -> RepoResult<Option<Entry>> {
        match (self.chain_investor, self.chain_country, self.chain_expires) {
            (Some(i), Some(c), Some(e)) => entry(i, c, e).map(Some),
            _ => Ok(None),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct BatchRow {
    id: Uuid,
    org_id: Uuid,
    action: String,
    items: String,
    tx_id: Option<Uuid>,
}

impl TryFrom<BatchRow> for IdentityBatch {
    type Error = RepoError;

    fn try_from(r: BatchRow) -> RepoResult<Self> {
        Ok(IdentityBatch {
            id: r.id,
            org_id: OrgId::from_uuid(r.org_id),
            action: r.action.parse().map_err(RepoError::Internal)?,
            items: serde_json::from_str(&r.items)
                .map_err(|e| RepoError::Internal(format!("batch {} items: {e}", r.id)))?,
            tx_id: r.tx_id.map(TxId),
        })
    }
}

/// Splits pending registrations into batches: isolated wallets alone, the
/// others by action in chunks of `max_items`. A registration whose chain
/// entry already matches needs no batch (answered apart).
fn group(
    org: OrgId,
    rows: Vec<TodoRow>,
    max_items: usize,
) -> RepoResult<(Vec<IdentityBatch>, Vec<String>)> {
    let mut batches: Vec<IdentityBatch> = Vec::new();
    let mut settled = Vec::new();
    let mut open: [Option<usize>; 3] = [None; 3];
    for row in rows {
        let (want, chain) = (row.want()?, row.chain()?);
        let Some(action) = IdentityAction::needed(want, chain) else {
            settled.push(row.address);
            continue;
        };
        let item = BatchItem {
            address: parse_address(&row.address)?,
            entry: match action {
                IdentityAction::Remove => chain,
                _ => want,
            }
            .expect("an action has the entry it acts on"),
        };
        let new_batch = |items| IdentityBatch {
            id: Uuid::now_v7(),
            org_id: org,
            action,
            items,
            tx_id: None,
        };
        if row.isolate {
            batches.push(new_batch(vec![item]));
            continue;
        }
        let slot = &mut open[action as usize];
        match slot {
            Some(i) if batches[*i].items.len() < max_items => batches[*i].items.push(item),
            _ => {
                *slot = Some(batches.len());
                batches.push(new_batch(vec![item]));
            }
        }
    }
    Ok((batches, settled))
}

#[async_trait]
impl IdentityRepository for Store {
    async fn system_open_batches(&self, org: OrgId) -> RepoResult<Vec<IdentityBatch>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::open_batches(pool, org.as_uuid()).await.db()?
        });
        rows.into_iter().map(IdentityBatch::try_from).collect()
    }

    async fn system_form_batches(
        &self,
        org: OrgId,
        max_items: usize,
    ) -> RepoResult<Vec<IdentityBatch>> {
        // Enough rows for more full batches than a block holds; the rest
        // waits for the next step.
        let fetch = (max_items * 8) as i64;
        in_write_tx!(self, |tx, sql| {
            let rows = sql::todo(&mut tx, org.as_uuid(), fetch).await.db()?;
            let (batches, settled) = group(org, rows, max_items)?;
            for address in settled {
                sql::refresh(&mut tx, org.as_uuid(), &address).await.db()?;
            }
            for batch in &batches {
                let items = serde_json::to_string(&batch.items)
                    .map_err(|e| RepoError::Internal(e.to_string()))?;
                sql::insert_batch(&mut tx, batch, &items).await.db()?;
                for item in &batch.items {
                    sql::carry(
                        &mut tx,
                        org.as_uuid(),
                        &format!("{:#x}", item.address),
                        batch.id,
                    )
                    .await
                    .db()?;
                }
            }
            Ok::<_, RepoError>(batches)
        })
    }

    async fn system_record_batch_tx(&self, batch: Uuid, tx_id: TxId) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| {
            sql::record_batch_tx(&mut tx, batch, tx_id.0).await.db()
        })
    }

    async fn system_settle_batch(&self, batch: Uuid) -> RepoResult<()> {
        in_write_tx!(self, |tx, sql| {
            let Some(row) = sql::lock_open_batch(&mut tx, batch).await.db()? else {
                return Ok(()); // settled or failed already (a repeated step)
            };
            let batch = IdentityBatch::try_from(row)?;
            let org = batch.org_id.as_uuid();
            for item in &batch.items {
                let address = format!("{:#x}", item.address);
                let chain = match batch.action {
                    IdentityAction::Remove => None,
                    _ => Some(item.entry),
                };
                sql::apply_chain(&mut tx, org, &address, batch.id, chain)
                    .await
                    .db()?;
            }
            sql::finish_batch(&mut tx, batch.id, "settled", None)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn system_fail_batch(&self, batch: Uuid, error: &str) -> RepoResult<()> {
        let error = error.to_owned();
        in_write_tx!(self, |tx, sql| {
            let Some(row) = sql::lock_open_batch(&mut tx, batch).await.db()? else {
                return Ok(());
            };
            let batch = IdentityBatch::try_from(row)?;
            let alone = batch.items.len() == 1;
            for item in &batch.items {
                let address = format!("{:#x}", item.address);
                sql::release(
                    &mut tx,
                    batch.org_id.as_uuid(),
                    &address,
                    batch.id,
                    alone,
                    &error,
                )
                .await
                .db()?;
            }
            sql::finish_batch(&mut tx, batch.id, "failed", Some(&error))
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn system_finish_sync(&self, org: OrgId) -> RepoResult<bool> {
        in_write_tx!(self, |tx, sql, sync_flag| {
            sync_flag::lock(&mut tx, &FLOW, org.as_uuid()).await.db()?;
            if sql::has_work(&mut tx, org.as_uuid()).await.db()? {
                return Ok(false);
            }
            sync_flag::stop(&mut tx, &FLOW, org.as_uuid()).await.db()?;
            Ok::<_, RepoError>(true)
        })
    }

    async fn system_sweep_expiries(&self) -> RepoResult<SweepReport> {
        crate::investors::sweep_expiries(self).await
    }
}

/// Enqueues a sync job for every organization whose sync is on but has no
/// job left.
pub(crate) async fn revive_syncs(store: &Store) -> RepoResult<u64> {
    sync_flag::revive(store, &FLOW).await
}

impl Store {
    /// Registrations of the organization's investors with ids from `first`
    /// to `last`, by investor then address.
    pub(crate) async fn registrations_between(
        &self,
        org: OrgId,
        first: Uuid,
        last: Uuid,
    ) -> RepoResult<Vec<RegistrationRow>> {
        Ok(on_reader!(self, |pool, sql| {
            sql::registrations_between(pool, org.as_uuid(), first, last)
                .await
                .db()?
        }))
    }
}

crate::dialect::statements! {
    use sqlx::query_as;
    use uuid::Uuid;
    use rwa_domain::identity::{Entry, IdentityBatch};

    use super::{BatchRow, RegistrationRow, TodoRow};

    /// Records, inside the caller's transaction, what the registry should say
    /// about `investor`'s wallets (`want`: country and expiry, or `None` when
    /// they should not be there) and about wallets it no longer has; starts
    /// the organization's sync when there is work. A wallet never registered
    /// and no longer wanted loses its row; one whose wanted entry changed is
    /// `pending` again (a `failed` one is tried again).
    pub(crate) async fn plan(
        c: &mut Conn,
        org: Uuid,
        investor: Uuid,
        want: Option<(i32, i64)>,
    ) -> Result<(), rwa_domain::RepoError> {
        use crate::error::DbResult as _;
        sqlx::query(concat!(
            "UPDATE identity_registrations SET want_present = false, status = 'pending', \
             error = NULL, updated_at = ", now!(),
            " WHERE org_id = $1 AND investor_id = $2 AND want_present AND ($3 OR NOT EXISTS \
             (SELECT 1 FROM investor_wallets w WHERE w.org_id = $1 AND w.investor_id = $2 \
              AND w.address = identity_registrations.address))"
        ))
        .bind(org)
        .bind(investor)
        .bind(want.is_none())
        .execute(&mut *c)
        .await
        .db()?;
        if let Some((country, expires)) = want {
            sqlx::query(concat!(
                "INSERT INTO identity_registrations (org_id, address, investor_id, want_present, \
                 want_country, want_expires, status) \
                 SELECT org_id, address, investor_id, true, $3, $4, 'pending' FROM investor_wallets \
                 WHERE org_id = $1 AND investor_id = $2 \
                 ON CONFLICT (org_id, address) DO UPDATE SET investor_id = excluded.investor_id, \
                 want_present = true, want_country = excluded.want_country, \
                 want_expires = excluded.want_expires, status = 'pending', error = NULL, \
                 updated_at = ", now!(),
                " WHERE NOT identity_registrations.want_present \
                 OR identity_registrations.investor_id <> excluded.investor_id \
                 OR identity_registrations.want_country <> excluded.want_country \
                 OR identity_registrations.want_expires <> excluded.want_expires"
            ))
            .bind(org)
            .bind(investor)
            .bind(country)
            .bind(expires)
            .execute(&mut *c)
            .await
            .db()?;
        }
        // Never registered, no longer wanted, not being carried: forget it.
        sqlx::query(
            "DELETE FROM identity_registrations WHERE org_id = $1 AND investor_id = $2 \
             AND NOT want_present AND chain_investor IS NULL AND batch_id IS NULL",
        )
        .bind(org)
        .bind(investor)
        .execute(&mut *c)
        .await
        .db()?;
        let work: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM identity_registrations \
             WHERE org_id = $1 AND status = 'pending' AND batch_id IS NULL)",
        )
        .bind(org)
        .fetch_one(&mut *c)
        .await
        .db()?;
        if work {
            crate::sync_flag::Trigger::request_flow(&mut *c, &super::FLOW, org).await?;
        }
        Ok(())
    }

    pub(crate) async fn has_work(c: &mut Conn, org: Uuid) -> sqlx::Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM identity_registrations \
             WHERE org_id = $1 AND status = 'pending' AND batch_id IS NULL) \
             OR EXISTS (SELECT 1 FROM identity_batches WHERE org_id = $1 AND state = 'open')",
        )
        .bind(org)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn todo(c: &mut Conn, org: Uuid, limit: i64) -> sqlx::Result<Vec<TodoRow>> {
        query_as(concat!(
            "SELECT address, investor_id, want_present, want_country, want_expires, \
             chain_investor, chain_country, chain_expires, isolate FROM identity_registrations \
             WHERE org_id = $1 AND status = 'pending' AND batch_id IS NULL \
             ORDER BY updated_at, address LIMIT $2 ",
            lock!()
        ))
        .bind(org)
        .bind(limit)
        .fetch_all(c)
        .await
    }

    /// A pending registration whose chain entry already matches: settled.
    pub(crate) async fn refresh(c: &mut Conn, org: Uuid, address: &str) -> sqlx::Result<()> {
        sqlx::query(concat!(
            "UPDATE identity_registrations SET status = CASE WHEN want_present \
             THEN 'registered' ELSE 'removed' END, updated_at = ", now!(),
            " WHERE org_id = $1 AND address = $2"
        ))
        .bind(org)
        .bind(address)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn insert_batch(
        c: &mut Conn,
        b: &IdentityBatch,
        items: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO identity_batches (id, org_id, action, items) VALUES ($1, $2, $3, $4)",
        )
        .bind(b.id)
        .bind(b.org_id.as_uuid())
        .bind(b.action.as_str())
        .bind(items)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn carry(c: &mut Conn, org: Uuid, address: &str, batch: Uuid) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE identity_registrations SET batch_id = $3 WHERE org_id = $1 AND address = $2",
        )
        .bind(org)
        .bind(address)
        .bind(batch)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn record_batch_tx(c: &mut Conn, batch: Uuid, tx: Uuid) -> sqlx::Result<()> {
        sqlx::query("UPDATE identity_batches SET tx_id = $2 WHERE id = $1 AND tx_id IS NULL")
            .bind(batch)
            .bind(tx)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn open_batches(pool: &Pool, org: Uuid) -> sqlx::Result<Vec<BatchRow>> {
        query_as(
            "SELECT id, org_id, action, items, tx_id FROM identity_batches \
             WHERE org_id = $1 AND state = 'open' ORDER BY created_at, id",
        )
        .bind(org)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn lock_open_batch(c: &mut Conn, batch: Uuid) -> sqlx::Result<Option<BatchRow>> {
        query_as(concat!(
            "SELECT id, org_id, action, items, tx_id FROM identity_batches \
             WHERE id = $1 AND state = 'open' ",
            lock!()
        ))
        .bind(batch)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn finish_batch(
        c: &mut Conn,
        batch: Uuid,
        state: &str,
        error: Option<&str>,
    ) -> sqlx::Result<()> {
        sqlx::query(concat!(
            "UPDATE identity_batches SET state = $2, error = $3, finished_at = ", now!(),
            " WHERE id = $1"
        ))
        .bind(batch)
        .bind(state)
        .bind(error)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// The chain now holds `chain` for the wallet (`None`: nothing); its
    /// status follows from comparing that with what is wanted.
    pub(crate) async fn apply_chain(
        c: &mut Conn,
        org: Uuid,
        address: &str,
        batch: Uuid,
        chain: Option<Entry>,
    ) -> sqlx::Result<()> {
        let investor = chain.map(|e| e.investor_id.as_uuid());
        let country = chain.map(|e| i32::from(e.country));
        let expires = chain.map(|e| e.expires_at as i64);
        sqlx::query(concat!(
            "UPDATE identity_registrations SET chain_investor = $4, chain_country = $5, \
             chain_expires = $6, batch_id = NULL, isolate = false, error = NULL, \
             status = CASE \
               WHEN want_present AND $4 = investor_id AND $5 = want_country AND $6 = want_expires \
                 THEN 'registered' \
               WHEN NOT want_present AND $7 THEN 'removed' \
               ELSE 'pending' END, \
             updated_at = ", now!(),
            " WHERE org_id = $1 AND address = $2 AND batch_id = $3"
        ))
        .bind(org)
        .bind(address)
        .bind(batch)
        .bind(investor)
        .bind(country)
        .bind(expires)
        .bind(chain.is_none())
        .execute(c)
        .await
        .map(|_| ())
    }

    /// The wallet's batch failed: alone, it is `failed` with the reason;
    /// otherwise it goes alone next time.
    pub(crate) async fn release(
        c: &mut Conn,
        org: Uuid,
        address: &str,
        batch: Uuid,
        alone: bool,
        error: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(concat!(
            "UPDATE identity_registrations SET batch_id = NULL, isolate = NOT $4, \
             status = CASE WHEN $4 THEN 'failed' ELSE 'pending' END, \
             error = CASE WHEN $4 THEN $5 ELSE NULL END, updated_at = ", now!(),
            " WHERE org_id = $1 AND address = $2 AND batch_id = $3"
        ))
        .bind(org)
        .bind(address)
        .bind(batch)
        .bind(alone)
        .bind(error)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn registrations_between(
        pool: &Pool,
        org: Uuid,
        first: Uuid,
        last: Uuid,
    ) -> sqlx::Result<Vec<RegistrationRow>> {
        query_as(
            "SELECT investor_id, address, status, error, updated_at FROM identity_registrations \
             WHERE org_id = $1 AND investor_id >= $2 AND investor_id <= $3 \
             ORDER BY investor_id, address",
        )
        .bind(org)
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await
    }
}
