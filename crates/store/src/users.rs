//! Users: their statements, and the revocation of their sessions that a
//! change of role or state makes in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rwa_domain::audit::AuditRecord;
use rwa_domain::page::{Page, PageRequest};
use rwa_domain::password::PasswordHash;
use rwa_domain::user::{
    Email, Lockout, LoginCandidate, NewUser, User, UserChange, UserRepository, UserStanding,
};
use rwa_domain::{Actor, OrgId, RepoError, RepoResult, UserId};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;
use rwa_domain::network::AllowedNetworks;

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    id: Uuid,
    org_id: Uuid,
    email: String,
    role: String,
    password_hash: String,
    disabled: bool,
    deleted_at: Option<DateTime<Utc>>,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_login_at: Option<DateTime<Utc>>,
    #[allow(dead_code)]
    failed_logins: i32,
    locked_until: Option<DateTime<Utc>>,
    allowed_cidrs: Option<String>,
}

impl UserRow {
    fn standing(&self) -> RepoResult<UserStanding> {
        Ok(UserStanding {
            role: self.role.parse()?,
            active: !self.disabled && self.deleted_at.is_none(),
            allowed_cidrs: AllowedNetworks::from_stored(self.allowed_cidrs.as_deref()),
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = RepoError;

    fn try_from(r: UserRow) -> RepoResult<Self> {
        Ok(User {
            id: UserId::from_uuid(r.id),
            org_id: OrgId::from_uuid(r.org_id),
            email: r.email,
            role: r.role.parse()?,
            disabled: r.disabled,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
            allowed_cidrs: AllowedNetworks::from_stored(r.allowed_cidrs.as_deref()),
        })
    }
}

impl TryFrom<UserRow> for LoginCandidate {
    type Error = RepoError;

    fn try_from(mut r: UserRow) -> RepoResult<Self> {
        let hash = PasswordHash::from_stored(std::mem::take(&mut r.password_hash));
        let locked_until = r.locked_until;
        Ok(LoginCandidate {
            user: r.try_into()?,
            password_hash: hash,
            locked_until,
        })
    }
}

/// The e-mail address is the login name: taken is a conflict, said plainly
/// (the database's message would name an index).
fn taken(e: RepoError) -> RepoError {
    match e {
        RepoError::Conflict(_) => {
            RepoError::Conflict("a user with this e-mail address already exists".into())
        }
        other => other,
    }
}

#[async_trait]
impl UserRepository for Store {
    async fn create(&self, org: OrgId, user: &NewUser, actor: &Actor) -> RepoResult<User> {
        let (user, actor) = (user.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let row = sql::insert_user(&mut tx, org.as_uuid(), &user, &actor.to_string())
                .await
                .db()
                .map_err(taken)?;
            let record = AuditRecord {
                action: "user.created",
                target: format!("user:{}", user.id),
                data: json!({ "role": user.role.as_str() }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            User::try_from(row)
        })
    }

    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<User>> {
        let rows = on_reader!(self, |pool, sql| {
            sql::list_users(pool, org.as_uuid(), page.after, i64::from(page.limit) + 1)
                .await
                .db()?
        });
        let users = rows
            .into_iter()
            .map(User::try_from)
            .collect::<RepoResult<Vec<_>>>()?;
        Ok(Page::from_overfetch(users, page.limit, |u| u.id.as_uuid()))
    }

    async fn get(&self, org: OrgId, id: UserId) -> RepoResult<User> {
        let row = on_reader!(self, |pool, sql| {
            sql::get_user(pool, org.as_uuid(), id.as_uuid())
                .await
                .db()?
        });
        row.ok_or(RepoError::NotFound)?.try_into()
    }

    async fn update(
        &self,
        org: OrgId,
        id: UserId,
        change: &UserChange,
        actor: &Actor,
    ) -> RepoResult<User> {
        let (change, actor) = (change.clone(), actor.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let before = User::try_from(
                sql::lock_user(&mut tx, org.as_uuid(), id.as_uuid())
                    .await
                    .db()?
                    .ok_or(RepoError::NotFound)?,
            )?;
            let role = change.role.unwrap_or(before.role);
            let disabled = change.disabled.unwrap_or(before.disabled);
            let cidrs = change
                .allowed_cidrs
                .clone()
                .unwrap_or_else(|| before.allowed_cidrs.clone());
            // A new allow-list applies at each request; only a change of
            // role or state ends the user's sessions.
            let standing_changed = role != before.role || disabled != before.disabled;
            if !standing_changed && cidrs == before.allowed_cidrs {
                return Ok(before);
            }
            let row = sql::update_user(
                &mut tx,
                id.as_uuid(),
                role.as_str(),
                disabled,
                cidrs.to_stored().as_deref(),
            )
            .await
            .db()?;
            let reason = if disabled {
                "user_disabled"
            } else {
                "user_changed"
            };
            let revoked = if standing_changed {
                sql::revoke_user_sessions(&mut tx, id.as_uuid(), reason)
                    .await
                    .db()?
            } else {
                0
            };
            let record = AuditRecord {
                action: "user.updated",
                target: format!("user:{id}"),
                data: json!({
                    "role": { "from": before.role.as_str(), "to": role.as_str() },
                    "disabled": { "from": before.disabled, "to": disabled },
                    "allowed_cidrs": {
                        "from": before.allowed_cidrs.to_strings(),
                        "to": cidrs.to_strings(),
                    },
                    "sessions_revoked": revoked,
                }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            User::try_from(row)
        })
    }

    async fn delete(&self, org: OrgId, id: UserId, actor: &Actor) -> RepoResult<()> {
        let actor = actor.clone();
        in_write_tx!(self, |tx, sql, audit| {
            sql::lock_user(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            sql::delete_user(&mut tx, id.as_uuid()).await.db()?;
            let revoked = sql::revoke_user_sessions(&mut tx, id.as_uuid(), "user_deleted")
                .await
                .db()?;
            let record = AuditRecord {
                action: "user.deleted",
                target: format!("user:{id}"),
                data: json!({ "sessions_revoked": revoked }),
            };
            audit::append_audit(&mut tx, org, &actor, &record)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn auth_find_login(&self, email: &Email) -> RepoResult<Option<LoginCandidate>> {
        let row = on_reader!(self, |pool, sql| {
            sql::find_login(pool, email.as_str()).await.db()?
        });
        row.map(LoginCandidate::try_from).transpose()
    }

    async fn auth_login_failed(
        &self,
        org: OrgId,
        id: UserId,
        lockout: &Lockout,
        reason: &'static str,
        actor: &Actor,
    ) -> RepoResult<Option<DateTime<Utc>>> {
        let (lockout, actor) = (*lockout, actor.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let failures = sql::count_failure(&mut tx, org.as_uuid(), id.as_uuid())
                .await
                .db()?
                .ok_or(RepoError::NotFound)?;
            let failures = u32::try_from(failures).unwrap_or(u32::MAX);
            let target = format!("user:{id}");
            let failed = AuditRecord {
                action: "auth.login_failed",
                target: target.clone(),
                data: json!({ "reason": reason, "consecutive_failures": failures }),
            };
            audit::append_audit(&mut tx, org, &actor, &failed)
                .await
                .db()?;
            let Some(lock) = lockout.lock_for(failures) else {
                return Ok(None);
            };
            let until = Utc::now() + lock;
            sql::lock_logins(&mut tx, id.as_uuid(), until).await.db()?;
            let locked = AuditRecord {
                action: "auth.account_locked",
                target,
                data: json!({
                    "consecutive_failures": failures,
                    "locked_for_secs": lock.num_seconds(),
                    "locked_until": until,
                }),
            };
            audit::append_audit(&mut tx, org, &actor, &locked)
                .await
                .db()?;
            Ok::<_, RepoError>(Some(until))
        })
    }

    async fn auth_standing(&self, org: OrgId, id: UserId) -> RepoResult<Option<UserStanding>> {
        // Any user, deleted ones included: a deleted user's keys must fail
        // as inactive, not vanish into "unknown".
        let row = on_reader!(self, |pool, sql| {
            sql::any_user(pool, org.as_uuid(), id.as_uuid())
                .await
                .db()?
        });
        row.map(|r| r.standing()).transpose()
    }
}

/// The columns of [`UserRow`].
macro_rules! user_columns {
    () => {
        "id, org_id, email, role, password_hash, disabled, deleted_at, created_by, created_at, \
         updated_at, last_login_at, failed_logins, locked_until, allowed_cidrs"
    };
}

crate::dialect::statements! {
    use rwa_domain::user::NewUser;
    use sqlx::{query, query_as, query_scalar};
    use uuid::Uuid;

    use super::UserRow;

    pub(crate) async fn insert_user(
        c: &mut Conn,
        org: Uuid,
        user: &NewUser,
        created_by: &str,
    ) -> sqlx::Result<UserRow> {
        query_as(concat!(
            "INSERT INTO users (id, org_id, email, role, password_hash, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING ", user_columns!()
        ))
        .bind(user.id.as_uuid())
        .bind(org)
        .bind(user.email.as_str())
        .bind(user.role.as_str())
        .bind(user.password_hash.as_str())
        .bind(created_by)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn list_users(
        pool: &Pool,
        org: Uuid,
        after: Option<Uuid>,
        fetch: i64,
    ) -> sqlx::Result<Vec<UserRow>> {
        query_as(concat!(
            "SELECT ", user_columns!(), " FROM users \
             WHERE org_id = $1 AND deleted_at IS NULL AND ($2 IS NULL OR id > $2) \
             ORDER BY id LIMIT $3"
        ))
        .bind(org)
        .bind(after)
        .bind(fetch)
        .fetch_all(pool)
        .await
    }

    pub(crate) async fn get_user(pool: &Pool, org: Uuid, id: Uuid) -> sqlx::Result<Option<UserRow>> {
        query_as(concat!(
            "SELECT ", user_columns!(), " FROM users \
             WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn any_user(pool: &Pool, org: Uuid, id: Uuid) -> sqlx::Result<Option<UserRow>> {
        query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE org_id = $1 AND id = $2"))
            .bind(org)
            .bind(id)
            .fetch_optional(pool)
            .await
    }

    pub(crate) async fn lock_user(c: &mut Conn, org: Uuid, id: Uuid) -> sqlx::Result<Option<UserRow>> {
        query_as(concat!(
            "SELECT ", user_columns!(), " FROM users \
             WHERE org_id = $1 AND id = $2 AND deleted_at IS NULL ", lock!()
        ))
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn update_user(
        c: &mut Conn,
        id: Uuid,
        role: &str,
        disabled: bool,
        allowed_cidrs: Option<&str>,
    ) -> sqlx::Result<UserRow> {
        query_as(concat!(
            "UPDATE users SET role = $2, disabled = $3, allowed_cidrs = $4, updated_at = ", now!(),
            " WHERE id = $1 RETURNING ", user_columns!()
        ))
        .bind(id)
        .bind(role)
        .bind(disabled)
        .bind(allowed_cidrs)
        .fetch_one(c)
        .await
    }

    pub(crate) async fn delete_user(c: &mut Conn, id: Uuid) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE users SET deleted_at = ", now!(), ", updated_at = ", now!(), " WHERE id = $1"
        ))
        .bind(id)
        .execute(c)
        .await
        .map(|_| ())
    }

    /// Revokes every live session of a user; how many.
    pub(crate) async fn revoke_user_sessions(
        c: &mut Conn,
        user: Uuid,
        reason: &str,
    ) -> sqlx::Result<u64> {
        query(concat!(
            "UPDATE sessions SET revoked_at = ", now!(), ", revoked_reason = $2 \
             WHERE user_id = $1 AND revoked_at IS NULL"
        ))
        .bind(user)
        .bind(reason)
        .execute(c)
        .await
        .map(|r| r.rows_affected())
    }

    /// A user by id, inside a transaction (a refresh answers with it).
    pub(crate) async fn get_user_in(c: &mut Conn, id: Uuid) -> sqlx::Result<UserRow> {
        query_as(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id)
            .fetch_one(c)
            .await
    }

    /// One more consecutive failed login; the count now.
    pub(crate) async fn count_failure(c: &mut Conn, org: Uuid, id: Uuid) -> sqlx::Result<Option<i32>> {
        query_scalar(
            "UPDATE users SET failed_logins = failed_logins + 1 \
             WHERE org_id = $1 AND id = $2 RETURNING failed_logins",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn lock_logins(
        c: &mut Conn,
        id: Uuid,
        until: chrono::DateTime<chrono::Utc>,
    ) -> sqlx::Result<()> {
        query("UPDATE users SET locked_until = $2 WHERE id = $1")
            .bind(id)
            .bind(until)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn find_login(pool: &Pool, email: &str) -> sqlx::Result<Option<UserRow>> {
        query_as(concat!(
            "SELECT ", user_columns!(), " FROM users WHERE email = $1 AND deleted_at IS NULL"
        ))
        .bind(email)
        .fetch_optional(pool)
        .await
    }
}
