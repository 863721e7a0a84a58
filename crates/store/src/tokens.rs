//! Tokens ([`TokenRepository`]) and each organization's identity registry.
//!
//! A new token, its deployment job and its audit entry are one transaction: a
//! token is never stored without the job that deploys it, and a job never runs
//! for a token that was rolled back. Marking a token deployed or failed appends
//! its event in the same transaction as the status change.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::amount::Amount;
use rwa_domain::audit::AuditRecord;
use rwa_domain::chain::{Address, B256};
use rwa_domain::event;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::token::{
    ComplianceRules, DEPLOYMENT_KIND, DEPLOYMENT_QUEUE, NewToken, Token, TokenDeployment,
    TokenRepository, TokenStatus,
};
use rwa_domain::{Actor, OrgId, RepoError, RepoResult, TokenId};
use rwa_jobs::NewJob;
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// Attempts of a deployment job before the token is marked failed. Only
/// failures to reach the node or the database use attempts (waiting for
/// confirmations snoozes), and the backoff doubles from 1 s, so the last
/// attempt comes about 68 minutes after the first: an outage shorter than
/// that never fails a token.
pub const DEPLOYMENT_ATTEMPTS: i32 = 13;

/// Columns of `tokens`, in [`TokenRow`] order.
macro_rules! token_columns {
    () => {
        "id, org_id, name, symbol, decimals, compliance, status, chain_id, address, deploy_tx_hash, \
         deploy_block, identity_registry, compliance_address, failure_reason, four_eyes_mint_threshold, \
         created_at, updated_at"
    };
}

#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    id: Uuid,
    org_id: Uuid,
    name: String,
    symbol: String,
    decimals: i32,
    compliance: String,
    status: String,
    chain_id: Option<i64>,
    address: Option<String>,
    deploy_tx_hash: Option<String>,
    deploy_block: Option<i64>,
    identity_registry: Option<String>,
    compliance_address: Option<String>,
    failure_reason: Option<String>,
    four_eyes_mint_threshold: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> RepoResult<T> {
    s.parse()
        .map_err(|_| RepoError::Internal(format!("stored {what} {s:?} does not parse")))
}

impl TryFrom<TokenRow> for Token {
    type Error = RepoError;

    fn try_from(r: TokenRow) -> RepoResult<Token> {
        let status: TokenStatus = r.status.parse()?;
        let deployment = match (status, r.chain_id, r.address.as_deref()) {
            (TokenStatus::Deployed, Some(chain_id), Some(address)) => Some(TokenDeployment {
                chain_id: chain_id as u64,
                address: parse::<Address>(address, "token address")?,
                deploy_tx_hash: parse::<B256>(
                    r.deploy_tx_hash.as_deref().unwrap_or_default(),
                    "deploy tx hash",
                )?,
                identity_registry: parse::<Address>(
                    r.identity_registry.as_deref().unwrap_or_default(),
                    "identity registry",
                )?,
                compliance: parse::<Address>(
                    r.compliance_address.as_deref().unwrap_or_default(),
                    "compliance address",
                )?,
                block_number: r.deploy_block.unwrap_or_default() as u64,
            }),
            _ => None,
        };
        let rules: serde_json::Value = serde_json::from_str(&r.compliance)
            .map_err(|e| RepoError::Internal(format!("stored compliance is not JSON: {e}")))?;
        Ok(Token {
            id: TokenId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            name: r.name,
            symbol: r.symbol,
            decimals: u8::try_from(r.decimals)
                .map_err(|_| RepoError::Internal(format!("stored decimals {}", r.decimals)))?,
            compliance: ComplianceRules::from_stored(&rules)?,
            status,
            deployment,
            failure_reason: r.failure_reason,
            four_eyes_mint_threshold: r
                .four_eyes_mint_threshold
                .as_deref()
                .map(|a| {
                    Amount::parse(a, "four_eyes_mint_threshold")
                        .map_err(|e| RepoError::Internal(e.to_string()))
                })
                .transpose()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The deployment job of a token: unique per token, working for its organization.
pub fn deployment_job(org: OrgId, token: TokenId) -> NewJob {
    NewJob::new(
        DEPLOYMENT_QUEUE,
        DEPLOYMENT_KIND,
        json!({ "token_id": token.as_uuid() }),
    )
    .for_org(org.as_uuid())
    .unique(format!("token:{token}:deploy"))
    .max_attempts(DEPLOYMENT_ATTEMPTS)
}

/// What `token.*` events carry: the token as the API shows it.
fn event_data(token: &Token) -> serde_json::Value {
    json!({ "token": token })
}

fn symbol_taken(e: RepoError, symbol: &str) -> RepoError {
    match e {
        RepoError::Conflict(_) => RepoError::Conflict(format!(
            "symbol {symbol} is already used by a token of this organization that has not failed"
        )),
        other => other,
    }
}

/// Moves a token out of `pending_deployment` with `$update` (a
/// `mark_token_*` statement returning the row it changed, or none when the
/// token had already moved) and appends `$event` in the same transaction. A
/// token that had already moved is returned as it is, so a repeated step
/// changes nothing.
macro_rules! transition {
    ($store:ident, $id:ident, $event:expr, |$tx:ident, $sql:ident| $update:expr) => {{
        let changed: RepoResult<Option<Token>> = in_write_tx!($store, |$tx, $sql, events| {
            match $update.await.db()? {
                None => Ok::<_, RepoError>(None),
                Some(row) => {
                    let token = Token::try_from(row)?;
                    events::append_event(
                        &mut $tx,
                        token.org_id.as_uuid(),
                        $event,
                        &event_data(&token),
                    )
                    .await
                    .db()?;
                    Ok(Some(token))
                }
            }
        });
        match changed? {
            Some(token) => Ok(token),
            None => $store.system_get($id).await,
        }
    }};
}

/// PostgreSQL: the token, its deployment job with its queue's wake-up, and
/// its audit entry in one statement, so one round trip (in its own implicit
/// transaction: all or nothing).
static CREATE_POSTGRES: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH token AS (INSERT INTO tokens (id, org_id, name, symbol, decimals, compliance, status) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending_deployment') RETURNING {columns}), {job}, {audit} \
         SELECT token.* FROM token, job_wake",
        columns = token_columns!(),
        job = rwa_jobs::enqueue_cte_postgres(7),
        audit = crate::audit::append_audit_cte(7 + rwa_jobs::ENQUEUE_CTE_PARAMS),
    )
});

async fn create_in_one_statement(
    pool: &sqlx::PgPool,
    org: OrgId,
    token: &NewToken,
    actor: &Actor,
    record: &AuditRecord,
    job: &NewJob,
) -> RepoResult<Token> {
    let q = sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(CREATE_POSTGRES.as_str()))
        .bind(token.id.as_uuid())
        .bind(org.as_uuid())
        .bind(token.name.as_str().to_owned())
        .bind(token.symbol.as_str().to_owned())
        .bind(i32::from(token.decimals))
        .bind(token.compliance.to_stored().to_string());
    let q = rwa_jobs::bind_enqueue_cte(q, job)?;
    let q = crate::audit::bind_audit_cte(q, org, actor, record);
    Token::try_from(q.fetch_one(pool).await.db()?)
}

#[async_trait]
impl TokenRepository for Store {
    async fn create(&self, org: OrgId, token: &NewToken, actor: &Actor) -> RepoResult<Token> {
        let record = AuditRecord {
            action: "token.created",
            target: format!("token:{}", token.id),
            data: json!({
                "name": token.name.as_str(),
                "symbol": token.symbol.as_str(),
                "decimals": token.decimals,
                "compliance": token.compliance.to_stored(),
            }),
        };
        let job = deployment_job(org, token.id);
        if let crate::connect::Pools::Postgres(pool) = &self.pools {
            let created = create_in_one_statement(pool, org, token, actor, &record, &job).await;
            let created = created.map_err(|e| symbol_taken(e, token.symbol.as_str()))?;
            self.after_commit();
            return Ok(created);
        }
        let symbol = token.symbol.clone();
        // The unit may run on the SQLite writer's task: it owns its inputs.
        let (token, actor) = (token.clone(), actor.clone());
        // SQLite: three statements in a group-commit unit (it has no
        // data-modifying CTEs); the macro's PostgreSQL arm is not reached.
        // The block keeps the macro's `?`s inside, so every failure of the
        // transaction passes through `symbol_taken`.
        let created: RepoResult<Token> = async {
            in_write_tx!(self, |tx, sql, jobs, audit| {
                let row = sql::insert_token(&mut tx, org.as_uuid(), &token)
                    .await
                    .db()?;
                jobs::enqueue_job(&mut tx, &job).await?;
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                Token::try_from(row)
            })
        }
        .await;
        let created = created.map_err(|e| symbol_taken(e, symbol.as_str()))?;
        // Workers in this process poll; on SQLite nothing else would wake them.
        self.wake_jobs();
        Ok(created)
    }

    async fn get(&self, org: OrgId, id: TokenId) -> RepoResult<Token> {
        let row = on_reader!(self, |pool, sql| {
            sql::get_token(pool, Some(org.as_uuid()), id.as_uuid())
                .await
                .db()?
        });
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<Token>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_tokens(pool, org.as_uuid(), page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let tokens = rows
            .into_iter()
            .map(Token::try_from)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(tokens, page.limit, |t| t.id.as_uuid()))
    }

    async fn system_get(&self, id: TokenId) -> RepoResult<Token> {
        let row = on_reader!(self, |pool, sql| {
            sql::get_token(pool, None, id.as_uuid()).await.db()?
        });
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn system_mark_deployed(
        &self,
        id: TokenId,
        deployment: &TokenDeployment,
    ) -> RepoResult<Token> {
        let deployment = deployment.clone();
        transition!(self, id, event::TOKEN_DEPLOYED, |tx, sql| {
            sql::mark_token_deployed(&mut tx, id.as_uuid(), &deployment)
        })
    }

    async fn system_mark_failed(&self, id: TokenId, reason: &str) -> RepoResult<Token> {
        let reason = reason.to_owned();
        transition!(self, id, event::TOKEN_FAILED, |tx, sql| {
            sql::mark_token_failed(&mut tx, id.as_uuid(), &reason)
        })
    }

    async fn set_mint_threshold(
        &self,
        org: OrgId,
        id: TokenId,
        threshold: Option<Amount>,
        actor: &Actor,
    ) -> RepoResult<Token> {
        let actor = actor.clone();
        let stored = threshold.map(|t| t.to_string());
        let row: RepoResult<TokenRow> = in_write_tx!(self, |tx, sql, audit, events| {
            let Some(row) =
                sql::set_mint_threshold(&mut tx, org.as_uuid(), id.as_uuid(), stored.as_deref())
                    .await
                    .db()?
            else {
                return Err(RepoError::NotFound);
            };
            let record = AuditRecord {
                action: "token.updated",
                target: id.to_string(),
                data: json!({ "four_eyes_mint_threshold": stored }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            events::append_event(
                &mut tx,
                org.as_uuid(),
                event::TOKEN_UPDATED,
                &json!({
                    "id": id.as_uuid(),
                    "four_eyes_mint_threshold": stored,
                }),
            )
            .await
            .db()?;
            Ok::<_, RepoError>(row)
        });
        Token::try_from(row?)
    }

    async fn system_identity_registry(
        &self,
        org: OrgId,
        chain_id: u64,
    ) -> RepoResult<Option<Address>> {
        let stored = on_reader!(self, |pool, sql| {
            sql::get_identity_registry(pool, org.as_uuid(), chain_id as i64)
                .await
                .db()?
        });
        stored
            .as_deref()
            .map(|a| parse::<Address>(a, "registry address"))
            .transpose()
    }

    async fn system_record_identity_registry(
        &self,
        org: OrgId,
        chain_id: u64,
        address: Address,
        deploy_block: u64,
    ) -> RepoResult<Address> {
        let stored: RepoResult<String> = in_write_tx!(self, |tx, sql| {
            sql::insert_identity_registry(
                &mut tx,
                org.as_uuid(),
                chain_id as i64,
                &format!("{address:#x}"),
                deploy_block as i64,
            )
            .await
            .db()
        });
        parse(&stored?, "registry address")
    }
}

crate::dialect::statements! {
    use rwa_domain::token::{NewToken, TokenDeployment};
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::TokenRow;

    pub(crate) async fn insert_token(
        c: &mut Conn,
        org: Uuid,
        t: &NewToken,
    ) -> sqlx::Result<TokenRow> {
        query_as(concat!(
            "INSERT INTO tokens (id, org_id, name, symbol, decimals, compliance, status) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending_deployment') RETURNING ",
            token_columns!()
        ))
        .bind(t.id.as_uuid())
        .bind(org)
        .bind(t.name.as_str())
        .bind(t.symbol.as_str())
        .bind(i32::from(t.decimals))
        .bind(t.compliance.to_stored().to_string())
        .fetch_one(c)
        .await
    }

    pub(crate) async fn set_mint_threshold(
        c: &mut Conn,
        org: Uuid,
        id: Uuid,
        threshold: Option<&str>,
    ) -> sqlx::Result<Option<TokenRow>> {
        query_as(concat!(
            "UPDATE tokens SET four_eyes_mint_threshold = $3, updated_at = ", now!(),
            " WHERE org_id = $1 AND id = $2 RETURNING ",
            token_columns!()
        ))
        .bind(org)
        .bind(id)
        .bind(threshold)
        .fetch_optional(c)
        .await
    }

    /// One token; `org` scopes it unless `None` (system callers).
    pub(crate) async fn get_token(
        pool: &Pool,
        org: Option<Uuid>,
        id: Uuid,
    ) -> sqlx::Result<Option<TokenRow>> {
        query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE id = $1 AND ($2 IS NULL OR org_id = $2)"
        ))
        .bind(id)
        .bind(org)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn list_tokens(
        pool: &Pool,
        org: Uuid,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<TokenRow>> {
        query_as(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE org_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        ))
        .bind(org)
        .bind(after)
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    /// Moves a pending token to `deployed`; `None` if it was not pending.
    pub(crate) async fn mark_token_deployed(
        c: &mut Conn,
        id: Uuid,
        d: &TokenDeployment,
    ) -> sqlx::Result<Option<TokenRow>> {
        query_as(concat!(
            "UPDATE tokens SET status = 'deployed', chain_id = $2, address = $3, \
             deploy_tx_hash = $4, deploy_block = $5, identity_registry = $6, \
             compliance_address = $7, updated_at = ",
            now!(),
            " WHERE id = $1 AND status = 'pending_deployment' RETURNING ",
            token_columns!()
        ))
        .bind(id)
        .bind(d.chain_id as i64)
        .bind(format!("{:#x}", d.address))
        .bind(format!("{:#x}", d.deploy_tx_hash))
        .bind(d.block_number as i64)
        .bind(format!("{:#x}", d.identity_registry))
        .bind(format!("{:#x}", d.compliance))
        .fetch_optional(c)
        .await
    }

    /// Moves a pending token to `failed`; `None` if it was not pending.
    pub(crate) async fn mark_token_failed(
        c: &mut Conn,
        id: Uuid,
        reason: &str,
    ) -> sqlx::Result<Option<TokenRow>> {
        query_as(concat!(
            "UPDATE tokens SET status = 'failed', failure_reason = $2, updated_at = ",
            now!(),
            " WHERE id = $1 AND status = 'pending_deployment' RETURNING ",
            token_columns!()
        ))
        .bind(id)
        .bind(reason)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn get_identity_registry(
        pool: &Pool,
        org: Uuid,
        chain_id: i64,
    ) -> sqlx::Result<Option<String>> {
        query_scalar("SELECT address FROM identity_registries WHERE org_id = $1 AND chain_id = $2")
            .bind(org)
            .bind(chain_id)
            .fetch_optional(pool)
            .await
    }

    /// Records an organization's registry; the first record wins and is returned.
    pub(crate) async fn insert_identity_registry(
        c: &mut Conn,
        org: Uuid,
        chain_id: i64,
        address: &str,
        deploy_block: i64,
    ) -> sqlx::Result<String> {
        query(
            "INSERT INTO identity_registries (org_id, chain_id, address, deploy_block) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (org_id, chain_id) DO NOTHING",
        )
        .bind(org)
        .bind(chain_id)
        .bind(address)
        .bind(deploy_block)
        .execute(&mut *c)
        .await?;
        query_scalar("SELECT address FROM identity_registries WHERE org_id = $1 AND chain_id = $2")
            .bind(org)
            .bind(chain_id)
            .fetch_one(c)
            .await
    }
}
