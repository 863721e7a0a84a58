//! Sessions, refresh tokens and access-token signing keys: the statements of
//! login, rotation with replay detection, logout and each access token's
//! check. Replays and refused fingerprints revoke the session and are
//! committed with their audit entry before the refusal is answered.

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rwa_domain::actor::{Principal, RequestContext};
use rwa_domain::api_key::KeyDigest;
use rwa_domain::audit::AuditRecord;
use rwa_domain::session::{
    Fingerprint, FingerprintMode, FingerprintVerdict, NewSession, Refreshed, SessionRepository,
    SessionStanding, SigningKey,
};
use rwa_domain::user::User;
use rwa_domain::{Actor, OrgId, RepoError, RepoResult, SessionId, UserId};
use serde_json::json;
use uuid::Uuid;

use crate::Store;
use crate::connect::{in_write_tx, on_reader};
use crate::error::DbResult;

/// A refresh token with its session, its user and its organization's mode.
#[derive(sqlx::FromRow)]
pub(crate) struct TokenRow {
    session_id: Uuid,
    generation: i64,
    spent_at: Option<DateTime<Utc>>,
    org_id: Uuid,
    user_id: Uuid,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    agent: String,
    network: String,
    mode: String,
    active: bool,
}

/// A session with its user's standing and its organization's mode.
#[derive(sqlx::FromRow)]
pub(crate) struct StandingRow {
    role: String,
    active: bool,
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    agent: String,
    network: String,
    mode: String,
    allowed_cidrs: Option<String>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct KeyRow {
    kid: String,
    created_at: DateTime<Utc>,
    retired_at: Option<DateTime<Utc>>,
}

impl From<KeyRow> for SigningKey {
    fn from(r: KeyRow) -> Self {
        SigningKey {
            kid: r.kid,
            created_at: r.created_at,
            retired_at: r.retired_at,
        }
    }
}

/// How long an ended (expired or revoked) session is kept before its user's
/// next login removes it.
const KEEP_ENDED: TimeDelta = TimeDelta::days(1);

/// The advisory lock key serializing signing-key rotations across processes.
const ROTATION_LOCK: i64 = 0x0072_7761_5f6b_6964; // "rwa_kid"

fn as_user(user: Uuid, request: &RequestContext) -> Actor {
    Actor {
        principal: Principal::User(UserId::from_uuid(user)),
        request: Some(request.clone()),
    }
}

#[async_trait]
impl SessionRepository for Store {
    async fn auth_open(&self, session: &NewSession, actor: &Actor) -> RepoResult<()> {
        let (session, actor) = (session.clone(), actor.clone());
        let expires_at = Utc::now() + session.lifetime;
        in_write_tx!(self, |tx, sql, audit| {
            // The user's sessions that ended more than a day ago go, with
            // their refresh tokens: rows stay bounded per user with no
            // sweeper, and a token of a session gone is refused as unknown.
            let ended = Utc::now() - KEEP_ENDED;
            sql::drop_ended(&mut tx, session.user.as_uuid(), ended)
                .await
                .db()?;
            sql::insert_session(&mut tx, &session, expires_at)
                .await
                .db()?;
            sql::insert_refresh(&mut tx, session.refresh.as_hex(), session.id.as_uuid(), 1)
                .await
                .db()?;
            sql::touch_login(&mut tx, session.user.as_uuid())
                .await
                .db()?;
            let record = AuditRecord {
                action: "auth.login_succeeded",
                target: format!("user:{}", session.user),
                data: json!({
                    "session": session.id.to_string(),
                    "agent": session.fingerprint.agent,
                    "network": session.fingerprint.network,
                }),
            };
            audit::append_audit(&mut tx, session.org, &actor, &record)
                .await
                .db()?;
            Ok::<_, RepoError>(())
        })
    }

    async fn auth_refresh(
        &self,
        presented: &KeyDigest,
        next: &KeyDigest,
        fingerprint: &Fingerprint,
        request: &RequestContext,
    ) -> RepoResult<Refreshed> {
        let (presented, next) = (presented.as_hex().to_owned(), next.as_hex().to_owned());
        let (fingerprint, request) = (fingerprint.clone(), request.clone());
        in_write_tx!(self, |tx, sql, audit, users| {
            let Some(t) = sql::token(&mut tx, &presented).await.db()? else {
                return Ok(Refreshed::Refused);
            };
            let org = OrgId::from_uuid(t.org_id);
            let actor = as_user(t.user_id, &request);
            let session = t.session_id.to_string();
            let revoke = |reason: &'static str, data: serde_json::Value| AuditRecord {
                action: reason,
                target: format!("session:{session}"),
                data,
            };
            if t.spent_at.is_some() {
                // Someone else holds a token of this family: end it.
                if t.revoked_at.is_none() {
                    sql::revoke(&mut tx, t.session_id, "refresh_replayed")
                        .await
                        .db()?;
                }
                let record = revoke(
                    "auth.refresh_replayed",
                    json!({ "generation": t.generation, "already_revoked": t.revoked_at.is_some() }),
                );
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                return Ok(Refreshed::Replayed);
            }
            if t.revoked_at.is_some() || t.expires_at <= Utc::now() || !t.active {
                return Ok(Refreshed::Refused);
            }
            let mode: FingerprintMode = t.mode.parse()?;
            let opened = Fingerprint {
                agent: t.agent.clone(),
                network: t.network.clone(),
            };
            match mode.judge(&opened, &fingerprint) {
                FingerprintVerdict::Accept => {}
                FingerprintVerdict::AcceptMoved => {
                    let record = AuditRecord {
                        action: "auth.session_moved",
                        target: format!("session:{session}"),
                        data: json!({ "from": opened.network, "to": fingerprint.network }),
                    };
                    audit::append_audit(&mut tx, org, &actor, &record)
                        .await
                        .db()?;
                }
                FingerprintVerdict::Revoke => {
                    sql::revoke(&mut tx, t.session_id, "fingerprint_mismatch")
                        .await
                        .db()?;
                    let record = revoke(
                        "auth.session_fingerprint_mismatch",
                        json!({
                            "mode": mode.as_str(),
                            "opened": { "agent": opened.agent, "network": opened.network },
                            "seen": { "agent": fingerprint.agent, "network": fingerprint.network },
                        }),
                    );
                    audit::append_audit(&mut tx, org, &actor, &record)
                        .await
                        .db()?;
                    return Ok(Refreshed::FingerprintMismatch);
                }
            }
            if !sql::spend(&mut tx, &presented).await.db()? {
                // Spent by a concurrent refresh since it was read: a replay.
                sql::revoke(&mut tx, t.session_id, "refresh_replayed")
                    .await
                    .db()?;
                let record = revoke(
                    "auth.refresh_replayed",
                    json!({ "generation": t.generation, "concurrent": true }),
                );
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
                return Ok(Refreshed::Replayed);
            }
            let generation = t.generation + 1;
            sql::insert_refresh(&mut tx, &next, t.session_id, generation)
                .await
                .db()?;
            let user = users::get_user_in(&mut tx, t.user_id).await.db()?;
            Ok::<_, RepoError>(Refreshed::Rotated {
                session: SessionId::from_uuid(t.session_id),
                user: User::try_from(user)?,
                generation,
            })
        })
    }

    async fn auth_logout(
        &self,
        presented: &KeyDigest,
        request: &RequestContext,
    ) -> RepoResult<bool> {
        let (presented, request) = (presented.as_hex().to_owned(), request.clone());
        in_write_tx!(self, |tx, sql, audit| {
            let Some(t) = sql::token(&mut tx, &presented).await.db()? else {
                return Ok(false);
            };
            if t.revoked_at.is_none() {
                sql::revoke(&mut tx, t.session_id, "logout").await.db()?;
                let record = AuditRecord {
                    action: "auth.logout",
                    target: format!("session:{}", t.session_id),
                    data: json!({}),
                };
                let actor = as_user(t.user_id, &request);
                audit::append_audit(&mut tx, OrgId::from_uuid(t.org_id), &actor, &record)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(true)
        })
    }

    async fn auth_standing(
        &self,
        org: OrgId,
        user: UserId,
        session: SessionId,
    ) -> RepoResult<Option<SessionStanding>> {
        let row = on_reader!(self, |pool, sql| {
            sql::standing(pool, org.as_uuid(), user.as_uuid(), session.as_uuid())
                .await
                .db()?
        });
        row.map(|r| {
            Ok(SessionStanding {
                role: r.role.parse()?,
                live: r.active && r.revoked_at.is_none() && r.expires_at > Utc::now(),
                fingerprint: Fingerprint {
                    agent: r.agent,
                    network: r.network,
                },
                mode: r.mode.parse()?,
                allowed_cidrs: rwa_domain::network::AllowedNetworks::from_stored(
                    r.allowed_cidrs.as_deref(),
                ),
            })
        })
        .transpose()
    }

    async fn auth_revoke_mismatched(
        &self,
        org: OrgId,
        session: SessionId,
        actor: &Actor,
        seen: &Fingerprint,
    ) -> RepoResult<()> {
        let (actor, seen) = (actor.clone(), seen.clone());
        in_write_tx!(self, |tx, sql, audit| {
            if sql::revoke(&mut tx, session.as_uuid(), "fingerprint_mismatch")
                .await
                .db()?
            {
                let record = AuditRecord {
                    action: "auth.session_fingerprint_mismatch",
                    target: format!("session:{session}"),
                    data: json!({ "seen": { "agent": seen.agent, "network": seen.network } }),
                };
                audit::append_audit(&mut tx, org, &actor, &record)
                    .await
                    .db()?;
            }
            Ok::<_, RepoError>(())
        })
    }

    async fn auth_signing_keys(&self) -> RepoResult<Vec<SigningKey>> {
        let rows = on_reader!(self, |pool, sql| sql::signing_keys(pool).await.db()?);
        Ok(rows.into_iter().map(SigningKey::from).collect())
    }

    async fn system_rotate_signing_key(
        &self,
        older_than: Option<TimeDelta>,
    ) -> RepoResult<SigningKey> {
        in_write_tx!(self, |tx, sql| {
            sql::lock_rotation(&mut tx).await.db()?;
            let current = sql::current_key(&mut tx).await.db()?;
            if let (Some(current), Some(age)) = (&current, older_than)
                && current.created_at > Utc::now() - age
            {
                return Ok(SigningKey::from(KeyRow {
                    kid: current.kid.clone(),
                    created_at: current.created_at,
                    retired_at: None,
                }));
            }
            sql::retire_keys(&mut tx).await.db()?;
            let kid = Uuid::now_v7().simple().to_string();
            let row = sql::insert_key(&mut tx, &kid).await.db()?;
            Ok::<_, RepoError>(SigningKey::from(row))
        })
    }
}

crate::dialect::statements! {
    use chrono::{DateTime, Utc};
    use rwa_domain::session::NewSession;
    use sqlx::{query, query_as};
    use uuid::Uuid;

    use super::{KeyRow, ROTATION_LOCK, StandingRow, TokenRow};

    pub(crate) async fn insert_session(
        c: &mut Conn,
        s: &NewSession,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        query(
            "INSERT INTO sessions (id, org_id, user_id, agent, network, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(s.id.as_uuid())
        .bind(s.org.as_uuid())
        .bind(s.user.as_uuid())
        .bind(&s.fingerprint.agent)
        .bind(&s.fingerprint.network)
        .bind(expires_at)
        .execute(c)
        .await
        .map(|_| ())
    }

    pub(crate) async fn insert_refresh(
        c: &mut Conn,
        digest: &str,
        session: Uuid,
        generation: i64,
    ) -> sqlx::Result<()> {
        query("INSERT INTO refresh_tokens (digest, session_id, generation) VALUES ($1, $2, $3)")
            .bind(digest)
            .bind(session)
            .bind(generation)
            .execute(c)
            .await
            .map(|_| ())
    }

    /// Deletes the user's sessions that ended before `ended`, and their tokens.
    pub(crate) async fn drop_ended(
        c: &mut Conn,
        user: Uuid,
        ended: DateTime<Utc>,
    ) -> sqlx::Result<()> {
        query(
            "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions \
             WHERE user_id = $1 AND (expires_at < $2 OR revoked_at < $2))",
        )
        .bind(user)
        .bind(ended)
        .execute(&mut *c)
        .await?;
        query("DELETE FROM sessions WHERE user_id = $1 AND (expires_at < $2 OR revoked_at < $2)")
            .bind(user)
            .bind(ended)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn touch_login(c: &mut Conn, user: Uuid) -> sqlx::Result<()> {
        query(concat!(
            "UPDATE users SET last_login_at = ", now!(),
            ", failed_logins = 0, locked_until = NULL WHERE id = $1"
        ))
            .bind(user)
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn token(c: &mut Conn, digest: &str) -> sqlx::Result<Option<TokenRow>> {
        query_as(
            "SELECT t.session_id, t.generation, t.spent_at, s.org_id, s.user_id, s.revoked_at, \
             s.expires_at, s.agent, s.network, o.session_fingerprint AS mode, \
             (u.disabled = FALSE AND u.deleted_at IS NULL) AS active \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             JOIN users u ON u.id = s.user_id JOIN organizations o ON o.id = s.org_id \
             WHERE t.digest = $1",
        )
        .bind(digest)
        .fetch_optional(c)
        .await
    }

    /// Spends a token unless it is spent already; whether this call spent it.
    pub(crate) async fn spend(c: &mut Conn, digest: &str) -> sqlx::Result<bool> {
        query(concat!(
            "UPDATE refresh_tokens SET spent_at = ", now!(), " WHERE digest = $1 AND spent_at IS NULL"
        ))
        .bind(digest)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    /// Revokes a session unless it is revoked already; whether this call did.
    pub(crate) async fn revoke(c: &mut Conn, session: Uuid, reason: &str) -> sqlx::Result<bool> {
        query(concat!(
            "UPDATE sessions SET revoked_at = ", now!(), ", revoked_reason = $2 \
             WHERE id = $1 AND revoked_at IS NULL"
        ))
        .bind(session)
        .bind(reason)
        .execute(c)
        .await
        .map(|r| r.rows_affected() == 1)
    }

    pub(crate) async fn standing(
        pool: &Pool,
        org: Uuid,
        user: Uuid,
        session: Uuid,
    ) -> sqlx::Result<Option<StandingRow>> {
        query_as(
            "SELECT u.role, (u.disabled = FALSE AND u.deleted_at IS NULL) AS active, \
             s.revoked_at, s.expires_at, s.agent, s.network, o.session_fingerprint AS mode, \
             u.allowed_cidrs \
             FROM sessions s JOIN users u ON u.id = s.user_id \
             JOIN organizations o ON o.id = s.org_id \
             WHERE s.id = $1 AND s.user_id = $2 AND s.org_id = $3",
        )
        .bind(session)
        .bind(user)
        .bind(org)
        .fetch_optional(pool)
        .await
    }

    pub(crate) async fn signing_keys(pool: &Pool) -> sqlx::Result<Vec<KeyRow>> {
        query_as("SELECT kid, created_at, retired_at FROM signing_keys ORDER BY created_at DESC")
            .fetch_all(pool)
            .await
    }

    pub(crate) async fn lock_rotation(c: &mut Conn) -> sqlx::Result<()> {
        query(exclusive_lock!()).bind(ROTATION_LOCK).execute(c).await.map(|_| ())
    }

    pub(crate) async fn current_key(c: &mut Conn) -> sqlx::Result<Option<KeyRow>> {
        query_as(
            "SELECT kid, created_at, retired_at FROM signing_keys WHERE retired_at IS NULL \
             ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(c)
        .await
    }

    pub(crate) async fn retire_keys(c: &mut Conn) -> sqlx::Result<()> {
        query(concat!("UPDATE signing_keys SET retired_at = ", now!(), " WHERE retired_at IS NULL"))
            .execute(c)
            .await
            .map(|_| ())
    }

    pub(crate) async fn insert_key(c: &mut Conn, kid: &str) -> sqlx::Result<KeyRow> {
        query_as(
            "INSERT INTO signing_keys (kid) VALUES ($1) RETURNING kid, created_at, retired_at",
        )
        .bind(kid)
        .fetch_one(c)
        .await
    }
}
