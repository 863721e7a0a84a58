//! Idempotency keys ([`IdempotencyStore`]): claimed in a short transaction
//! of their own, completed by the change they guard in the change's own
//! transaction ([`sql::complete`], called by the repository making the
//! change), released when the request fails without changing anything.
//!
//! Times are the service's clock, bound as parameters: a lease only decides
//! when a vanished holder's claim may be taken over, and keys are kept a day.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::idempotency::{Claim, IdempotencyKey, IdempotencyStore, KEEP, StoredResponse};
use rwa_domain::{OrgId, RepoError, RepoResult};
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_writer};
use crate::error::DbResult;

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    fingerprint: String,
    state: String,
    locked_until: DateTime<Utc>,
    response_status: Option<i32>,
    response_body: Option<String>,
    created_at: DateTime<Utc>,
}

fn delta(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

/// What a stored key answers to a request with `fingerprint` at `now`, or
/// `None` when the key may be claimed afresh (expired, or its holder's
/// lease ran out).
fn answer(row: &KeyRow, fingerprint: &str, now: DateTime<Utc>) -> RepoResult<Option<Claim>> {
    if row.created_at + delta(KEEP) <= now {
        return Ok(None);
    }
    if row.fingerprint != fingerprint {
        return Ok(Some(Claim::Mismatch));
    }
    match row.state.as_str() {
        "done" => {
            let status = row
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| {
                    RepoError::Internal("idempotency key done without a status".into())
                })?;
            Ok(Some(Claim::Replay(StoredResponse {
                status,
                body: row.response_body.clone().unwrap_or_default(),
            })))
        }
        _ if row.locked_until > now => {
            let left = (row.locked_until - now).num_milliseconds().max(0) as u64;
            Ok(Some(Claim::InProgress {
                retry_after_secs: left.div_ceil(1000).max(1),
            }))
        }
        _ => Ok(None),
    }
}

#[async_trait]
impl IdempotencyStore for Store {
    async fn claim(
        &self,
        org: OrgId,
        key: &IdempotencyKey,
        fingerprint: &str,
        lease: Duration,
    ) -> RepoResult<Claim> {
        let (key, fingerprint) = (key.as_str().to_owned(), fingerprint.to_owned());
        in_write_tx!(self, |tx, sql| {
            let now = Utc::now();
            let claim = Uuid::now_v7();
            let until = now + delta(lease);
            let org = org.as_uuid();
            let inserted = sql::insert(&mut tx, org, &key, &fingerprint, claim, until, now)
                .await
                .db()?;
            let outcome = if inserted {
                Claim::Granted(claim)
            } else {
                let row = sql::get(&mut tx, org, &key).await.db()?;
                match answer(&row, &fingerprint, now)? {
                    Some(answer) => answer,
                    // Expired, or its holder vanished: take it over
                    // (conditioned on the row being as read, so two
                    // takers cannot both win).
                    None => {
                        let taken = sql::take_over(
                            &mut tx,
                            org,
                            &key,
                            &fingerprint,
                            claim,
                            until,
                            now,
                            row.locked_until,
                        )
                        .await
                        .db()?;
                        if taken {
                            Claim::Granted(claim)
                        } else {
                            Claim::InProgress {
                                retry_after_secs: 1,
                            }
                        }
                    }
                }
            };
            Ok::<_, RepoError>(outcome)
        })
    }

    async fn release(&self, org: OrgId, key: &IdempotencyKey, claim: Uuid) -> RepoResult<()> {
        let key = key.as_str().to_owned();
        on_writer!(self, |pool, sql| {
            sql::release(pool, org.as_uuid(), &key, claim).await.db()
        })
    }

    async fn system_prune(&self) -> RepoResult<u64> {
        let before = Utc::now() - delta(KEEP);
        on_writer!(self, |pool, sql| sql::prune(pool, before).await.db())
    }
}

crate::dialect::statements! {
    use chrono::{DateTime, Utc};
    use sqlx::{query, query_as};
    use uuid::Uuid;

    use super::KeyRow;

    /// Claims a key no row holds; answers whether it did.
    pub(crate) async fn insert(
        c: &mut Conn,
        org: Uuid,
        key: &str,
        fingerprint: &str,
        claim: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        query(
            "INSERT INTO idempotency_keys (org_id, key, fingerprint, claim, state, locked_until, created_at) \
             VALUES ($1, $2, $3, $4, 'in_flight', $5, $6) ON CONFLICT (org_id, key) DO NOTHING",
        )
        .bind(org)
        .bind(key)
        .bind(fingerprint)
        .bind(claim)
        .bind(until)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    pub(crate) async fn get(c: &mut Conn, org: Uuid, key: &str) -> sqlx::Result<KeyRow> {
        query_as(
            "SELECT fingerprint, state, locked_until, response_status, response_body, created_at \
             FROM idempotency_keys WHERE org_id = $1 AND key = $2",
        )
        .bind(org)
        .bind(key)
        .fetch_one(c)
        .await
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn take_over(
        c: &mut Conn,
        org: Uuid,
        key: &str,
        fingerprint: &str,
        claim: Uuid,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        seen_until: DateTime<Utc>,
    ) -> sqlx::Result<bool> {
        query(
            "UPDATE idempotency_keys SET fingerprint = $3, claim = $4, state = 'in_flight', \
             locked_until = $5, created_at = $6, response_status = NULL, response_body = NULL \
             WHERE org_id = $1 AND key = $2 AND locked_until = $7",
        )
        .bind(org)
        .bind(key)
        .bind(fingerprint)
        .bind(claim)
        .bind(until)
        .bind(now)
        .bind(seen_until)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    /// Records the response under the key, inside the change's transaction;
    /// a conflict (rolling the change back) when the claim was lost.
    pub(crate) async fn complete(
        c: &mut Conn,
        org: Uuid,
        key: &str,
        claim: Uuid,
        status: u16,
        body: &str,
    ) -> Result<(), rwa_domain::RepoError> {
        use crate::error::DbResult as _;
        let done = query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $4, response_body = $5 \
             WHERE org_id = $1 AND key = $2 AND claim = $3 AND state = 'in_flight'",
        )
        .bind(org)
        .bind(key)
        .bind(claim)
        .bind(i32::from(status))
        .bind(body)
        .execute(c)
        .await
        .db()?
        .rows_affected();
        if done == 1 {
            Ok(())
        } else {
            Err(rwa_domain::RepoError::Conflict(
                "the idempotency key's claim lapsed and another request took it over".into(),
            ))
        }
    }

    pub(crate) async fn release(pool: &Pool, org: Uuid, key: &str, claim: Uuid) -> sqlx::Result<()> {
        query(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2 AND claim = $3 \
             AND state = 'in_flight'",
        )
        .bind(org)
        .bind(key)
        .bind(claim)
        .execute(pool)
        .await
        .map(|_| ())
    }

    pub(crate) async fn prune(pool: &Pool, before: DateTime<Utc>) -> sqlx::Result<u64> {
        query("DELETE FROM idempotency_keys WHERE created_at < $1")
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    }
}
