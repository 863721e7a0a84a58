//! Sanctions lists and investors' screenings ([`SanctionsRepository`]).
//!
//! A list load is one transaction: the version row, its entries, the list's
//! pointer to it, the removal of the previous version's entries, and the
//! rescreen job. Screening reads the current versions through an in-process
//! index rebuilt whenever a list's current version changed (one small query
//! per screening tells); investors' changes screen inside their own
//! transaction (see `investors`), so a committed change is always screened.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::chain::Address;
use rwa_domain::sanctions::{
    ListEntry, ListVersion, RESCREEN_KIND, RescreenReport, SanctionsRepository, Screening,
    ScreeningIndex,
};
use rwa_domain::{RepoError, RepoResult};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// The queue the rescreen job runs on.
const RESCREEN_QUEUE: &str = "compliance-check";

/// Each list's current version, by list name.
type Versions = Vec<(String, Uuid)>;

/// The index of the current versions, with the versions it was built from.
#[derive(Default)]
pub(crate) struct IndexCache(Mutex<Option<(Versions, Arc<ScreeningIndex>)>>);

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    id: Uuid,
    list: String,
    content_hash: String,
    entries: i64,
    loaded_at: DateTime<Utc>,
}

impl From<VersionRow> for ListVersion {
    fn from(r: VersionRow) -> Self {
        ListVersion {
            list: r.list,
            version: r.id,
            content_hash: r.content_hash,
            entries: r.entries.max(0) as u64,
            loaded_at: r.loaded_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EntryRow {
    reference: String,
    name: String,
    aliases: String,
    addresses: String,
    programs: String,
}

impl TryFrom<EntryRow> for ListEntry {
    type Error = RepoError;

    fn try_from(r: EntryRow) -> RepoResult<Self> {
        let broken =
            |e: serde_json::Error| RepoError::Internal(format!("entry {}: {e}", r.reference));
        let aliases: Vec<String> = serde_json::from_str(&r.aliases).map_err(broken)?;
        let addresses: Vec<Address> = serde_json::from_str(&r.addresses).map_err(broken)?;
        Ok(ListEntry {
            reference: r.reference,
            name: r.name,
            aliases,
            addresses,
            programs: r.programs,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ScreeningRow {
    pub(crate) investor_id: Uuid,
    status: String,
    matches: String,
    lists: String,
    screened_at: DateTime<Utc>,
}

impl TryFrom<ScreeningRow> for Screening {
    type Error = RepoError;

    fn try_from(r: ScreeningRow) -> RepoResult<Self> {
        let broken =
            |e: String| RepoError::Internal(format!("screening of {}: {e}", r.investor_id));
        Ok(Screening {
            status: r.status.parse().map_err(broken)?,
            matches: serde_json::from_str(&r.matches).map_err(|e| broken(e.to_string()))?,
            lists: serde_json::from_str(&r.lists).map_err(|e| broken(e.to_string()))?,
            screened_at: r.screened_at,
        })
    }
}

/// What a screening stores.
pub(crate) struct ScreeningWrite {
    org: Uuid,
    investor: Uuid,
    status: &'static str,
    matches: String,
    lists: String,
    screened_at: DateTime<Utc>,
}

impl ScreeningWrite {
    pub(crate) fn new(org: Uuid, investor: Uuid, s: &Screening) -> RepoResult<Self> {
        let json =
            |v: serde_json::Result<String>| v.map_err(|e| RepoError::Internal(e.to_string()));
        Ok(ScreeningWrite {
            org,
            investor,
            status: s.status.as_str(),
            matches: json(serde_json::to_string(&s.matches))?,
            lists: json(serde_json::to_string(&s.lists))?,
            screened_at: s.screened_at,
        })
    }
}

/// Whether `now` has a hit that `before` did not.
pub(crate) fn new_hit(before: Option<&Screening>, now: &Screening) -> bool {
    let known: std::collections::HashSet<_> = before
        .map(|b| {
            b.matches
                .iter()
                .filter(|m| m.hit)
                .map(|m| m.key())
                .collect()
        })
        .unwrap_or_default();
    now.matches
        .iter()
        .any(|m| m.hit && !known.contains(&m.key()))
}

impl Store {
    /// The index of every list's current version (rebuilt when one changed).
    pub(crate) async fn screening_index(&self) -> RepoResult<Arc<ScreeningIndex>> {
        let current: Versions = on_reader!(self, |pool, sql| {
            sql::current_versions(pool).await.db()?
        });
        if let Some((versions, index)) = self
            .sanctions_index
            .0
            .lock()
            .expect("not poisoned")
            .as_ref()
            && *versions == current
        {
            return Ok(index.clone());
        }
        let mut lists = Vec::new();
        for (list, version) in &current {
            let rows = on_reader!(self, |pool, sql| {
                sql::entries_of(pool, *version).await.db()?
            });
            let entries = rows
                .into_iter()
                .map(ListEntry::try_from)
                .collect::<RepoResult<Vec<_>>>()?;
            lists.push((list.clone(), *version, entries));
        }
        let index = Arc::new(ScreeningIndex::new(lists));
        *self.sanctions_index.0.lock().expect("not poisoned") = Some((current, index.clone()));
        Ok(index)
    }

    /// Screenings of the organization's investors with ids from `first` to `last`.
    pub(crate) async fn screenings_between(
        &self,
        org: Uuid,
        first: Uuid,
        last: Uuid,
    ) -> RepoResult<Vec<(Uuid, Screening)>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::screenings_between(pool, org, first, last).await.db()?
        });
        rows.into_iter()
            .map(|r| {
                let id = r.investor_id;
                Screening::try_from(r).map(|s| (id, s))
            })
            .collect()
    }
}

#[async_trait]
impl SanctionsRepository for Store {
    async fn system_load_list(
        &self,
        list: &str,
        format: &str,
        content_hash: &str,
        entries: &[ListEntry],
    ) -> RepoResult<(ListVersion, bool)> {
        let (list, format, hash) = (list.to_owned(), format.to_owned(), content_hash.to_owned());
        let entries = entries.to_vec();
        let loaded: RepoResult<(ListVersion, bool)> = in_write_tx!(self, |tx, sql| {
            if let Some(current) = sql::current_of(&mut tx, &list).await.db()?
                && current.content_hash == hash
            {
                return Ok((ListVersion::from(current), false));
            }
            let id = Uuid::now_v7();
            let version =
                sql::insert_version(&mut tx, id, &list, &format, &hash, entries.len() as i64)
                    .await
                    .db()?;
            for e in &entries {
                let aliases = serde_json::to_string(&e.aliases)
                    .map_err(|e| RepoError::Internal(e.to_string()))?;
                let addresses = serde_json::to_string(&e.addresses)
                    .map_err(|e| RepoError::Internal(e.to_string()))?;
                sql::insert_entry(&mut tx, id, e, &aliases, &addresses)
                    .await
                    .db()?;
            }
            sql::point(&mut tx, &list, id).await.db()?;
            crate::jobs::Enqueue::enqueue(
                &mut *tx,
                &NewJob::new(
                    RESCREEN_QUEUE,
                    RESCREEN_KIND,
                    json!({ "list": list, "version": id }),
                )
                .unique(format!("sanctions-rescreen:{id}")),
            )
            .await?;
            Ok::<_, RepoError>((ListVersion::from(version), true))
        });
        self.wake_jobs();
        loaded
    }

    async fn system_current_lists(&self) -> RepoResult<Vec<ListVersion>> {
        let rows = on_reader!(self, |pool, sql| sql::current_lists(pool).await.db()?);
        Ok(rows.into_iter().map(ListVersion::from).collect())
    }

    async fn system_rescreen_approved(&self) -> RepoResult<RescreenReport> {
        crate::investors::rescreen_approved(self).await
    }
}

crate::dialect::statements! {
    use sqlx::query_as;
    use uuid::Uuid;
    use rwa_domain::sanctions::{ListEntry, Screening};

    use super::{EntryRow, ScreeningRow, ScreeningWrite, VersionRow};

    pub(crate) async fn current_versions(pool: &Pool) -> sqlx::Result<Vec<(String, Uuid)>> {
        query_as("SELECT list, version_id FROM sanctions_lists ORDER BY list")
            .fetch_all(pool)
            .await
    }

    pub(crate) async fn current_lists(pool: &Pool) -> sqlx::Result<Vec<VersionRow>> {
        query_as(
            "SELECT v.id, v.list, v.content_hash, v.entries, v.loaded_at FROM sanctions_lists l \
             JOIN sanctions_versions v ON v.id = l.version_id ORDER BY l.list",
        )
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn current_of(c: &mut Conn, list: &str) -> sqlx::Result<Option<VersionRow>> {
        query_as(
            "SELECT v.id, v.list, v.content_hash, v.entries, v.loaded_at FROM sanctions_lists l \
             JOIN sanctions_versions v ON v.id = l.version_id WHERE l.list = $1",
        )
        .bind(list)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn insert_version(
        c: &mut Conn,
        id: Uuid,
        list: &str,
        format: &str,
        hash: &str,
        entries: i64,
    ) -> sqlx::Result<VersionRow> {
        query_as(
            "INSERT INTO sanctions_versions (id, list, format, content_hash, entries) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, list, content_hash, entries, loaded_at",
        )
        .bind(id)
        .bind(list)
        .bind(format)
        .bind(hash)
        .bind(entries)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn insert_entry(
        c: &mut Conn,
        version: Uuid,
        e: &ListEntry,
        aliases: &str,
        addresses: &str,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO sanctions_entries (version_id, reference, name, aliases, addresses, programs) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(version)
        .bind(&e.reference)
        .bind(&e.name)
        .bind(aliases)
        .bind(addresses)
        .bind(&e.programs)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Makes `version` the list's current one and drops the entries of the
    /// one it replaces (its version row stays, for the record).
    pub(crate) async fn point(c: &mut Conn, list: &str, version: Uuid) -> sqlx::Result<()> {
        sqlx::query(
            "DELETE FROM sanctions_entries WHERE version_id IN \
             (SELECT version_id FROM sanctions_lists WHERE list = $1)",
        )
        .bind(list)
        .execute(&mut *c)
        .await?;
        sqlx::query(
            "INSERT INTO sanctions_lists (list, version_id) VALUES ($1, $2) \
             ON CONFLICT (list) DO UPDATE SET version_id = excluded.version_id",
        )
        .bind(list)
        .bind(version)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn entries_of(pool: &Pool, version: Uuid) -> sqlx::Result<Vec<EntryRow>> {
        query_as(
            "SELECT reference, name, aliases, addresses, programs \
             FROM sanctions_entries WHERE version_id = $1 ORDER BY reference",
        )
        .bind(version)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn screening_of(c: &mut Conn, investor: Uuid) -> sqlx::Result<Option<ScreeningRow>> {
        query_as(
            "SELECT investor_id, status, matches, lists, screened_at FROM investor_screenings \
             WHERE investor_id = $1",
        )
        .bind(investor)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn write_screening(c: &mut Conn, s: &ScreeningWrite) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO investor_screenings (investor_id, org_id, status, matches, lists, screened_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (investor_id) DO UPDATE SET \
             status = excluded.status, matches = excluded.matches, lists = excluded.lists, \
             screened_at = excluded.screened_at",
        )
        .bind(s.investor)
        .bind(s.org)
        .bind(s.status)
        .bind(&s.matches)
        .bind(&s.lists)
        .bind(s.screened_at)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn screenings_between(
        pool: &Pool,
        org: Uuid,
        first: Uuid,
        last: Uuid,
    ) -> sqlx::Result<Vec<ScreeningRow>> {
        query_as(
            "SELECT investor_id, status, matches, lists, screened_at FROM investor_screenings \
             WHERE org_id = $1 AND investor_id >= $2 AND investor_id <= $3 ORDER BY investor_id",
        )
        .bind(org)
        .bind(first)
        .bind(last)
        .fetch_all(pool)
        .await
    }

    /// Screens the investor (its `name`, its wallets as stored now) with
    /// `index` and stores the result; answers it with the previous one.
    pub(crate) async fn screen(
        c: &mut Conn,
        index: &rwa_domain::sanctions::ScreeningIndex,
        org: Uuid,
        investor: Uuid,
        name: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Option<Screening>, Screening), rwa_domain::RepoError> {
        use crate::error::DbResult as _;
        let wallets: Vec<String> = sqlx::query_scalar(
            "SELECT address FROM investor_wallets WHERE org_id = $1 AND investor_id = $2",
        )
        .bind(org)
        .bind(investor)
        .fetch_all(&mut *c)
        .await
        .db()?;
        let wallets: Vec<rwa_domain::chain::Address> =
            wallets.iter().filter_map(|w| w.parse().ok()).collect();
        let previous = screening_of(&mut *c, investor)
            .await
            .db()?
            .map(Screening::try_from)
            .transpose()?;
        let screening = index.screen(name, &wallets, previous.as_ref(), now);
        write_screening(&mut *c, &ScreeningWrite::new(org, investor, &screening)?)
            .await
            .db()?;
        Ok((previous, screening))
    }
}
