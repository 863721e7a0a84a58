//! Access tokens: short-lived JWTs (HS256) naming a user, its organization
//! and its session, signed with the current signing key and carrying its
//! `kid`. Keys are derived from the server secret and the kid
//! ([`signing_key_material`]); only kids and dates are stored, so every
//! process signs and verifies alike. A new key starts when the current one
//! is older than the configured age (checked at each login) or on
//! `rwa auth rotate-key`; a retired key still verifies the tokens it signed
//! until they expire (its retirement plus the token lifetime), then nothing.
//!
//! A token says who the caller is, not what it may do: the role, whether the
//! user is still active and whether the session is still open are read at
//! each request (`auth.rs`), so a change takes effect at once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rwa_domain::session::{SessionRepository, SigningKey, signing_key_material};
use rwa_domain::{OrgId, RepoError, SessionId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

/// The issuer and audience every token names.
const ISSUER: &str = "rwa";

/// How an access token is made and checked.
#[derive(Clone, Debug)]
pub struct AccessSettings {
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Lifetime of a session (its refresh tokens) without a new login.
    pub session_ttl: Duration,
    /// Age after which the signing key is replaced at the next login
    /// (`None`: only `rwa auth rotate-key` replaces it).
    pub key_max_age: Option<Duration>,
    /// How failed logins lock an account.
    pub lockout: rwa_domain::user::Lockout,
}

impl Default for AccessSettings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            key_max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            lockout: rwa_domain::user::Lockout::default(),
        }
    }
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    iss: String,
    aud: String,
    /// The user.
    pub(crate) sub: UserId,
    /// The user's organization.
    pub(crate) org: OrgId,
    /// The session (login) the token belongs to.
    pub(crate) sid: SessionId,
    iat: i64,
    exp: i64,
}

/// Why a presented token was refused; the detail of the 401.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Past its `exp`.
    Expired,
    /// Anything else: malformed, bad signature, unknown or dead key.
    Invalid,
}

/// Issues and verifies access tokens.
pub struct AccessTokens {
    secret: Arc<[u8]>,
    settings: AccessSettings,
    sessions: Arc<dyn SessionRepository>,
    /// Known signing keys, newest first, and when they were read.
    keys: RwLock<KnownKeys>,
}

#[derive(Default)]
struct KnownKeys {
    keys: Vec<SigningKey>,
    read_at: Option<std::time::Instant>,
}

/// How long the known keys are trusted before a re-read: a key retired
/// meanwhile may verify this much longer than its last token's expiry.
const KEYS_FRESH: Duration = Duration::from_secs(30);
/// Fewest time between two re-reads caused by unknown kids, so tokens with
/// made-up kids cannot turn every request into a database read.
const UNKNOWN_KID_REREAD: Duration = Duration::from_secs(1);

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

impl AccessTokens {
    /// Tokens signed with keys derived from `secret`.
    pub fn new(
        secret: Arc<[u8]>,
        settings: AccessSettings,
        sessions: Arc<dyn SessionRepository>,
    ) -> Self {
        Self {
            secret,
            settings,
            sessions,
            keys: RwLock::new(KnownKeys::default()),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// A token for `user` of `org` in `session`, and its lifetime in seconds.
    pub(crate) async fn issue(
        &self,
        user: UserId,
        org: OrgId,
        session: SessionId,
    ) -> Result<(String, u64), RepoError> {
        let key = self.current_key().await?;
        let now = Utc::now().timestamp();
        let ttl = self.settings.access_ttl.as_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            sub: user,
            org,
            sid: session,
            iat: now,
            exp: now + ttl as i64,
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let material = signing_key_material(&self.secret, &key.kid);
        let encoding = EncodingKey::from_secret(&material)
            .map_err(|e| RepoError::Internal(format!("signing key: {e}")))?;
        let token = jsonwebtoken::encode(&header, &claims, &encoding)
            .map_err(|e| RepoError::Internal(format!("signing an access token: {e}")))?;
        Ok((token, ttl))
    }

    /// The key that signs now: the newest, replaced first when it is older
    /// than the configured age.
    async fn current_key(&self) -> Result<SigningKey, RepoError> {
        let mut keys = self.sessions.auth_signing_keys().await?;
        let max_age = self.settings.key_max_age.map(delta);
        let fresh = keys.first().filter(|k| {
            k.retired_at.is_none() && max_age.is_none_or(|age| k.created_at > Utc::now() - age)
        });
        let key = match fresh {
            Some(k) => k.clone(),
            None => {
                let key = self.sessions.system_rotate_signing_key(max_age).await?;
                keys = self.sessions.auth_signing_keys().await?;
                key
            }
        };
        *self.keys.write().await = KnownKeys {
            keys,
            read_at: Some(std::time::Instant::now()),
        };
        Ok(key)
    }

    /// Checks a token's signature, key, issuer and lifetime.
    pub(crate) async fn verify(&self, token: &str) -> Result<Result<Claims, Refusal>, RepoError> {
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(Err(Refusal::Invalid));
        };
        let (Some(kid), Algorithm::HS256) = (header.kid, header.alg) else {
            return Ok(Err(Refusal::Invalid));
        };
        let Some(key) = self.key(&kid).await? else {
            tracing::debug!(kid, "access token of an unknown signing key");
            return Ok(Err(Refusal::Invalid));
        };
        let ttl = delta(self.settings.access_ttl);
        let material = signing_key_material(&self.secret, &kid);
        let Ok(decoding) = DecodingKey::from_secret(&material) else {
            return Ok(Err(Refusal::Invalid));
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = match jsonwebtoken::decode::<Claims>(token, &decoding, &validation) {
            Ok(data) => data.claims,
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => {
                return Ok(Err(Refusal::Expired));
            }
            Err(e) => {
                tracing::debug!(error = ?e.kind(), "access token refused");
                return Ok(Err(Refusal::Invalid));
            }
        };
        // A retired key signed nothing after its retirement (a second of
        // slack: `iat` counts whole seconds); with the lifetime bounded
        // below, its tokens are all expired one lifetime after it retired.
        if key
            .retired_at
            .is_some_and(|r| claims.iat > r.timestamp() + 1)
        {
            tracing::debug!(kid, "access token issued after its signing key retired");
            return Ok(Err(Refusal::Invalid));
        }
        // A token may not outlive the configured lifetime, nor predate its key.
        let lived = claims.exp - claims.iat;
        if lived > ttl.num_seconds() || claims.iat < key.created_at.timestamp() - 1 {
            tracing::debug!(
                kid,
                lived,
                "access token outliving its lifetime or predating its key"
            );
            return Ok(Err(Refusal::Invalid));
        }
        Ok(Ok(claims))
    }

    /// The signing key `kid`, re-reading the stored keys when it is not known
    /// here yet (another process, or `rwa auth rotate-key`, started it).
    async fn key(&self, kid: &str) -> Result<Option<SigningKey>, RepoError> {
        {
            let known = self.keys.read().await;
            let age = known.read_at.map(|t| t.elapsed());
            let found = known.keys.iter().find(|k| k.kid == kid);
            match (found, age) {
                (Some(k), Some(age)) if age < KEYS_FRESH => return Ok(Some(k.clone())),
                (None, Some(age)) if age < UNKNOWN_KID_REREAD => return Ok(None),
                _ => {}
            }
        }
        let keys = self.sessions.auth_signing_keys().await?;
        let found = keys.iter().find(|k| k.kid == kid).cloned();
        *self.keys.write().await = KnownKeys {
            keys,
            read_at: Some(std::time::Instant::now()),
        };
        Ok(found)
    }
}
