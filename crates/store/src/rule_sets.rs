//! Versions of a token's transfer rules ([`RuleSetRepository`]) and the
//! organization's defaults.
//!
//! A version, its audit entry, its event and (when its on-chain part
//! changes the contract) its four-eyes `rule_set_change` operation are one
//! transaction under the token's lock, the lock transfers are decided under,
//! so a check sees either the old version or the new one whole. The token
//! row keeps what the rules read on the request path: the latest version and
//! its rules, and the on-chain rules in force with their version, changed when
//! the operation settles (`applied`, from the operations job's step).
//!
//! Version 1 is the deployed rules. It is stored with the first change (its
//! id the token's, so paging order is version order); until then it is
//! shown from the token, whose rules no operation has changed yet.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::compliance::RuleSet;
use rwa_domain::operation::{NewOperation, Operation, OperationKind, OperationStatus};
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::rule_set::{
    ComplianceDefaults, CurrentRules, FIRST_VERSION, Put, RuleChange, RuleSetRepository,
    RuleSetVersion,
};
use rwa_domain::token::ComplianceRules;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult, TokenId};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use crate::operations::record_request;
use crate::transfers::json_of;

/// Event and audit action of a new version.
pub(crate) const RULE_SET_CHANGED: &str = "token.rule_set_changed";
/// Event of a version's on-chain rules in force.
pub(crate) const RULE_SET_APPLIED: &str = "token.rule_set_applied";
/// Event and audit action of new organization defaults.
pub(crate) const DEFAULTS_CHANGED: &str = "org.compliance_defaults_changed";

/// Who version 1 is recorded as stored by.
const DEPLOYED_BY: &str = "deployment";

/// The token as a change reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRules {
    status: String,
    compliance: String,
    rule_version: i32,
    rules: Option<String>,
    onchain_version: i32,
    created_at: DateTime<Utc>,
}

impl TokenRules {
    fn applied(&self) -> RepoResult<ComplianceRules> {
        Ok(ComplianceRules::from_stored(&json_of(
            &self.compliance,
            "compliance rules",
        )?)?)
    }

    /// The latest version's rules.
    fn latest(&self) -> RepoResult<RuleSet> {
        match &self.rules {
            Some(raw) => json_of(raw, "rule set"),
            None => Ok(RuleSet::from(&self.applied()?)),
        }
    }

    /// Version 1 as shown before it is stored.
    fn deployed(&self, token: TokenId) -> RepoResult<RuleSetVersion> {
        Ok(RuleSetVersion {
            id: token.as_uuid(),
            token_id: token,
            version: FIRST_VERSION,
            rules: RuleSet::from(&self.applied()?),
            operation: None,
            created_by: DEPLOYED_BY.into(),
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VersionRow {
    id: Uuid,
    token_id: Uuid,
    version: i32,
    rules: String,
    operation_id: Option<Uuid>,
    op_status: Option<String>,
    created_by: String,
    created_at: DateTime<Utc>,
}

impl TryFrom<VersionRow> for RuleSetVersion {
    type Error = RepoError;

    fn try_from(r: VersionRow) -> RepoResult<RuleSetVersion> {
        let operation = match (r.operation_id, r.op_status) {
            (Some(id), Some(status)) => Some((
                id,
                status
                    .parse::<OperationStatus>()
                    .map_err(|e| RepoError::Internal(e.to_string()))?,
            )),
            _ => None,
        };
        Ok(RuleSetVersion {
            id: r.id,
            token_id: TokenId::from_uuid(r.token_id),
            version: r.version as u32,
            rules: json_of(&r.rules, "rule set")?,
            operation,
            created_by: r.created_by,
            created_at: r.created_at,
        })
    }
}

/// Appends the audit entry and the event of a change, both `$action`
/// carrying `$data` (inside `in_write_tx!` with `audit` and `events`).
macro_rules! audited {
    ($tx:ident, $org:expr, $actor:expr, $action:expr, $target:expr, $data:expr) => {{
        let data: serde_json::Value = $data;
        let record = AuditRecord {
            action: $action,
            target: $target.to_string(),
            data: data.clone(),
        };
        audit::append_audit(&mut $tx, $org, $actor, &record)
            .await
            .db()?;
        events::append_event(&mut $tx, $org.as_uuid(), $action, &data)
            .await
            .db()?;
    }};
}

/// The organization's defaults as stored (none: no defaults).
pub(crate) fn parse_defaults(raw: Option<&str>) -> RepoResult<ComplianceDefaults> {
    match raw {
        Some(raw) => Ok(ComplianceDefaults::from_rule_set(json_of(
            raw,
            "compliance defaults",
        )?)),
        None => Ok(ComplianceDefaults::default()),
    }
}

/// What [`RULE_SET_APPLIED`] carries.
pub(crate) fn applied_event(
    token: TokenId,
    operation: Uuid,
    change: &RuleChange,
) -> serde_json::Value {
    json!({
        "token_id": token,
        "version": change.version,
        "operation_id": operation,
        "rules": change.to,
    })
}

fn stored(rules: &RuleSet) -> String {
    serde_json::to_string(rules).expect("rule sets serialize")
}

/// Why a new version's on-chain part cannot be stored now.
fn waiting(op: Uuid, change: &RuleChange) -> RepoError {
    RepoError::Conflict(format!(
        "version {}'s change of the on-chain rules is on its way (operation {op}): approve or \
         reject it, or wait for it to settle, before changing the on-chain rules again; \
         versions changing only the off-chain rules are accepted meanwhile",
        change.version
    ))
}

#[async_trait]
impl RuleSetRepository for Store {
    async fn current(&self, org: OrgId, token: TokenId) -> RepoResult<CurrentRules> {
        on_reader!(self, |pool, sql| {
            let mut c = pool.acquire().await.db()?;
            let t = sql::token_rules(&mut c, org.as_uuid(), token.as_uuid()).await?;
            let raw = sql::defaults(&mut *c, org.as_uuid()).await.db()?.flatten();
            let defaults = parse_defaults(raw.as_deref())?;
            let latest = sql::latest_version(&mut c, token, &t).await?;
            let in_force = t.latest()?.effective(&t.applied()?, &defaults);
            Ok(CurrentRules {
                latest,
                onchain_version: t.onchain_version as u32,
                in_force,
            })
        })
    }

    async fn put(
        &self,
        org: OrgId,
        token: TokenId,
        rules: &RuleSet,
        actor: &Actor,
    ) -> RepoResult<Put> {
        let (rules, actor) = (rules.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, operations, audit, events, sync_flag| {
            operations::lock_token(&mut tx, token.as_uuid())
                .await
                .db()?;
            let t = sql::token_rules(&mut tx, org.as_uuid(), token.as_uuid()).await?;
            if t.latest()?.same(&rules) {
                let latest = sql::latest_version(&mut tx, token, &t).await?;
                return Ok(Put::Unchanged(latest));
            }
            let applied = t.applied()?;
            let version = t.rule_version as u32 + 1;
            let to = rules.onchain();
            let pending = sql::pending_change(&mut tx, token.as_uuid()).await.db()?;
            let operation = match pending {
                Some((op, raw)) => {
                    let change = RuleChange::from_stored(&json_of(&raw, "rule change")?)?;
                    if !RuleSet::from(&change.to).same_onchain(&rules) {
                        return Err(waiting(op, &change));
                    }
                    Some(op)
                }
                None if RuleSet::from(&applied).same_onchain(&rules) => None,
                None if t.status != "deployed" => {
                    return Err(RepoError::Conflict(format!(
                        "the token is {}: its on-chain rules can change once it is deployed",
                        t.status
                    )));
                }
                None => {
                    let op = NewOperation {
                        kind: OperationKind::RuleSetChange,
                        token_id: Some(token),
                        wallet: None,
                        counterparty: None,
                        investor_id: None,
                        amount: None,
                        reason: Some(format!("rule set version {version}")),
                        four_eyes: true,
                        new_holder: false,
                        rule_change: Some(RuleChange {
                            version,
                            from: applied.clone(),
                            to,
                        }),
                    };
                    let stored: Operation =
                        record_request!(tx, operations, org, Uuid::now_v7(), &op, false, &actor);
                    Some(stored.id)
                }
            };
            if t.rules.is_none() {
                let first = t.deployed(token)?;
                sql::insert_version(&mut tx, org.as_uuid(), &first, None)
                    .await
                    .db()?;
            }
            let id = Uuid::now_v7();
            let new = RuleSetVersion {
                id,
                token_id: token,
                version,
                rules: rules.clone(),
                operation: None,
                created_by: actor.to_string(),
                created_at: t.created_at,
            };
            sql::insert_version(&mut tx, org.as_uuid(), &new, operation)
                .await
                .db()?;
            sql::set_latest(&mut tx, token.as_uuid(), version as i32, &stored(&rules))
                .await
                .db()?;
            let data = json!({
                "token_id": token,
                "version": version,
                "operation_id": operation,
                "rules": rules,
            });
            audited!(tx, org, &actor, RULE_SET_CHANGED, token, data);
            let stored = sql::version(&mut tx, token.as_uuid(), version as i32)
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            Ok::<_, RepoError>(Put::Created(RuleSetVersion::try_from(stored)?))
        })
    }

    async fn versions(
        &self,
        org: OrgId,
        token: TokenId,
        page: PageRequest,
    ) -> RepoResult<Page<RuleSetVersion>> {
        on_reader!(self, |pool, sql| {
            let mut c = pool.acquire().await.db()?;
            let t = sql::token_rules(&mut c, org.as_uuid(), token.as_uuid()).await?;
            if t.rules.is_none() {
                let first = t.deployed(token)?;
                let shown = page.after.is_none_or(|after| after < first.id);
                let items = if shown { vec![first] } else { Vec::new() };
                return Ok(Page {
                    items,
                    next_cursor: None,
                });
            }
            let rows = sql::versions(
                &mut c,
                token.as_uuid(),
                page.after,
                i64::from(page.limit) + 1,
            )
            .await
            .db()?;
            let items = rows
                .into_iter()
                .map(RuleSetVersion::try_from)
                .collect::<RepoResult<Vec<_>>>()?;
            Ok(Page::from_overfetch(items, page.limit, |v| v.id))
        })
    }

    async fn defaults(&self, org: OrgId) -> RepoResult<ComplianceDefaults> {
        let raw = on_reader!(self, |pool, sql| sql::defaults(pool, org.as_uuid())
            .await
            .db()?
            .ok_or(RepoError::NotFound)?);
        parse_defaults(raw.as_deref())
    }

    async fn set_defaults(
        &self,
        org: OrgId,
        defaults: &ComplianceDefaults,
        actor: &Actor,
    ) -> RepoResult<ComplianceDefaults> {
        let (defaults, actor) = (defaults.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit, events| {
            let rules = defaults.as_rule_set();
            sql::set_defaults(&mut tx, org.as_uuid(), &stored(&rules))
                .await
                .db()?;
            let data = json!({ "compliance_defaults": rules });
            audited!(tx, org, &actor, DEFAULTS_CHANGED, org, data);
            Ok::<_, RepoError>(defaults)
        })
    }
}

crate::dialect::statements! {
    use rwa_domain::rule_set::{RuleChange, RuleSetVersion};
    use rwa_domain::{RepoError, RepoResult, TokenId};
    use sqlx::{query, query_as, query_scalar};

    use crate::error::DbResult as _;
    use uuid::Uuid;

    use super::{TokenRules, VersionRow};

    /// The token of `org` as a change reads it (not found: none).
    pub(crate) async fn token_rules(c: &mut Conn, org: Uuid, token: Uuid) -> RepoResult<TokenRules> {
        query_as(
            "SELECT status, compliance, rule_version, rules, onchain_version, created_at \
             FROM tokens WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(token)
        .fetch_optional(c)
        .await
        .db()?
        .ok_or(RepoError::NotFound)
    }

    /// The token's latest version (version 1 shown from the token until it
    /// is stored).
    pub(crate) async fn latest_version(
        c: &mut Conn,
        token: TokenId,
        t: &TokenRules,
    ) -> RepoResult<RuleSetVersion> {
        match t.rules {
            None => t.deployed(token),
            Some(_) => RuleSetVersion::try_from(
                version(c, token.as_uuid(), t.rule_version)
                    .await
                    .db()?
                    .ok_or(RepoError::NotFound)?,
            ),
        }
    }

    macro_rules! version_columns {
        () => {
            "SELECT r.id, r.token_id, r.version, r.rules, r.operation_id, o.status AS op_status, \
             r.created_by, r.created_at FROM rule_sets r LEFT JOIN operations o ON o.id = r.operation_id "
        };
    }

    pub(crate) async fn version(c: &mut Conn, token: Uuid, version: i32) -> sqlx::Result<Option<VersionRow>> {
        query_as(concat!(version_columns!(), "WHERE r.token_id = $1 AND r.version = $2"))
            .bind(token)
            .bind(version)
            .fetch_optional(c)
            .await
    }

    pub(crate) async fn versions(
        c: &mut Conn,
        token: Uuid,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<VersionRow>> {
        query_as(concat!(
            version_columns!(),
            "WHERE r.token_id = $1 AND ($2 IS NULL OR r.id > $2) ORDER BY r.id LIMIT $3"
        ))
        .bind(token)
        .bind(after)
        .bind(fetch)
        .fetch_all(c)
        .await
    }

    /// The token's rule-set change still on its way, with its change.
    pub(crate) async fn pending_change(c: &mut Conn, token: Uuid) -> sqlx::Result<Option<(Uuid, String)>> {
        query_as(
            "SELECT id, rule_change FROM operations WHERE token_id = $1 AND kind = 'rule_set_change' \
             AND status NOT IN ('settled', 'failed', 'rejected') ORDER BY id DESC LIMIT 1",
        )
        .bind(token)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn insert_version(
        c: &mut Conn,
        org: Uuid,
        v: &RuleSetVersion,
        operation: Option<Uuid>,
    ) -> sqlx::Result<()> {
        let created_at = (v.version == rwa_domain::rule_set::FIRST_VERSION).then_some(v.created_at);
        query(concat!(
            "INSERT INTO rule_sets (id, org_id, token_id, version, rules, operation_id, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, ", now!(), "))"
        ))
        .bind(v.id)
        .bind(org)
        .bind(v.token_id.as_uuid())
        .bind(v.version as i32)
        .bind(super::stored(&v.rules))
        .bind(operation)
        .bind(&v.created_by)
        .bind(created_at)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn set_latest(c: &mut Conn, token: Uuid, version: i32, rules: &str) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE tokens SET rule_version = $2, rules = $3, updated_at = ", now!(), " WHERE id = $1"
        ))
        .bind(token)
        .bind(version)
        .bind(rules)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// A settled change in force: the token's on-chain rules become its
    /// `to`, unless a later version's already are; whether they changed.
    pub(crate) async fn applied(c: &mut Conn, token: Uuid, change: &RuleChange) -> sqlx::Result<bool> {
        let done = query(concat!(
            "UPDATE tokens SET compliance = $2, onchain_version = $3, updated_at = ", now!(),
            " WHERE id = $1 AND onchain_version < $3"
        ))
        .bind(token)
        .bind(change.to.to_stored().to_string())
        .bind(change.version as i32)
        .execute(c)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn defaults<'c, E>(e: E, org: Uuid) -> sqlx::Result<Option<Option<String>>>
    where
        E: sqlx::Executor<'c, Database = Db>,
    {
        query_scalar("SELECT compliance_defaults FROM organizations WHERE id = $1")
            .bind(org)
            .fetch_optional(e)
            .await
    }

    pub(crate) async fn set_defaults(c: &mut Conn, org: Uuid, rules: &str) -> sqlx::Result<()> {
        query("UPDATE organizations SET compliance_defaults = $2 WHERE id = $1")
            .bind(org)
            .bind(rules)
            .execute(c)
            .await
            .map(|_| ())
    }
}
