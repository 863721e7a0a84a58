//! Sessions: what a login opens. A session is a family of refresh tokens:
//! each refresh spends the presented token and issues the next generation;
//! presenting a spent token again means two parties hold the family (a
//! stolen token), so the whole family is revoked. Refresh tokens are opaque
//! (`rwr_` + 48 random characters) and stored as SHA-256 digests, like API
//! keys. Access tokens are short-lived JWTs naming the session, so revoking
//! the session (logout, replay, a changed user) stops them at once too.
//!
//! A session keeps the fingerprint of the client that opened it: the
//! user-agent's family and the client's network (IPv4 /24, IPv6 /64). What a
//! different fingerprint does is the organization's choice
//! ([`FingerprintMode`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::RequestContext;
use crate::api_key::KeyDigest;
use crate::user::User;
use crate::{Actor, OrgId, RepoResult, SessionId, UserId, ValidationError};

/// Every refresh token starts with this.
pub const REFRESH_PREFIX: &str = "rwr_";
const REFRESH_RANDOM_CHARS: usize = 48;

/// A freshly generated refresh token. Its `Debug` prints nothing of it.
pub struct RefreshSecret(String);

impl RefreshSecret {
    /// Generates a token.
    pub fn generate() -> Self {
        let random = crate::api_key::random_alphanumeric(REFRESH_RANDOM_CHARS);
        Self(format!("{REFRESH_PREFIX}{random}"))
    }

    /// The token, handed to the client once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored in its place.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }
}

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(…)")
    }
}

/// What a different client fingerprint does to a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintMode {
    /// Another user-agent family or another network revokes the session.
    Strict,
    /// Another user-agent family revokes the session; another network (a
    /// laptop that moved) is allowed and recorded in the audit trail.
    #[default]
    Lenient,
    /// Not checked.
    Off,
}

impl FingerprintMode {
    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "strict",
            Self::Lenient => "lenient",
            Self::Off => "off",
        }
    }

    /// What this mode makes of a request whose fingerprint is `now`, for a
    /// session opened with `opened`.
    pub fn judge(self, opened: &Fingerprint, now: &Fingerprint) -> FingerprintVerdict {
        let agent = opened.agent == now.agent;
        let network = opened.network == now.network;
        match self {
            Self::Off => FingerprintVerdict::Accept,
            _ if agent && network => FingerprintVerdict::Accept,
            Self::Lenient if agent => FingerprintVerdict::AcceptMoved,
            _ => FingerprintVerdict::Revoke,
        }
    }
}

impl FromStr for FingerprintMode {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, ValidationError> {
        [Self::Strict, Self::Lenient, Self::Off]
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new("session_fingerprint", "must be one of strict, lenient, off")
            })
    }
}

/// What a fingerprint comparison decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FingerprintVerdict {
    /// The same client, or the mode does not look.
    Accept,
    /// The same user-agent from another network, allowed (lenient).
    AcceptMoved,
    /// Not the client that opened the session: the session is revoked.
    Revoke,
}

/// A client's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    /// The user-agent's family (`firefox`, `chrome`, `curl`, …).
    pub agent: String,
    /// The client's network (`203.0.113.0/24`, `2001:db8:1:2::/64`).
    pub network: String,
}

impl Fingerprint {
    /// The fingerprint of a request from `ip` with `user_agent`.
    pub fn of(user_agent: Option<&str>, ip: Option<IpAddr>) -> Self {
        Self {
            agent: agent_family(user_agent.unwrap_or("")),
            network: ip.map_or_else(|| "unknown".to_owned(), network_of),
        }
    }
}

/// The family of a user-agent: browsers by their distinguishing token
/// (checked in the order that tells them apart: Edge and Opera also say
/// Chrome, Chrome also says Safari), anything else by its first product
/// name (`curl/8.5` → `curl`). Versions are left out so an update does not
/// look like another client.
fn agent_family(ua: &str) -> String {
    const BROWSERS: [(&str, &str); 6] = [
        ("Edg/", "edge"),
        ("OPR/", "opera"),
        ("Firefox/", "firefox"),
        ("Chrome/", "chrome"),
        ("CriOS/", "chrome"),
        ("Safari/", "safari"),
    ];
    if let Some((_, family)) = BROWSERS.iter().find(|(token, _)| ua.contains(token)) {
        return (*family).to_owned();
    }
    let product = ua.split(['/', ' ']).next().unwrap_or("").trim();
    if product.is_empty() {
        "none".to_owned()
    } else {
        product
            .chars()
            .take(40)
            .collect::<String>()
            .to_ascii_lowercase()
    }
}

fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
    }
}

/// A session to open at login.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// Its id (the access tokens' `sid`).
    pub id: SessionId,
    /// The user who logged in.
    pub user: UserId,
    /// The user's organization.
    pub org: OrgId,
    /// The client that logged in.
    pub fingerprint: Fingerprint,
    /// Digest of its first refresh token.
    pub refresh: KeyDigest,
    /// How long the session lasts without logging in again.
    pub lifetime: chrono::TimeDelta,
}

/// What presenting a refresh token led to.
#[derive(Clone, Debug)]
pub enum Refreshed {
    /// The token was spent and the next generation issued.
    Rotated {
        /// The session.
        session: SessionId,
        /// Its user, as it is now.
        user: User,
        /// The new token's generation (the login's is 1).
        generation: i64,
    },
    /// Unknown token, or its session revoked or expired, or its user no
    /// longer active.
    Refused,
    /// A spent token presented again: the session is now revoked.
    Replayed,
    /// The fingerprint did not match under the organization's mode: the
    /// session is now revoked.
    FingerprintMismatch,
}

/// A session's state, read at each request made with one of its access tokens.
#[derive(Clone, Debug)]
pub struct SessionStanding {
    /// Its user's role now.
    pub role: crate::Role,
    /// Whether the session still authenticates (not revoked or expired, its
    /// user active).
    pub live: bool,
    /// The client that opened it.
    pub fingerprint: Fingerprint,
    /// The organization's fingerprint mode.
    pub mode: FingerprintMode,
    /// The networks its user may act from.
    pub allowed_cidrs: crate::network::AllowedNetworks,
}

/// A key that signs access tokens, derived from the server secret and its
/// `kid`. Only the `kid` and its dates are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    /// Key id, in each token's header.
    pub kid: String,
    /// When it started signing.
    pub created_at: DateTime<Utc>,
    /// When a newer key replaced it; it verifies the tokens it signed until
    /// they expire.
    pub retired_at: Option<DateTime<Utc>>,
}

/// The HMAC-SHA256 key of signing key `kid`: derived from the server secret
/// and the kid, so no key material is stored and every process derives the
/// same key.
pub fn signing_key_material(server_secret: &[u8], kid: &str) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(server_secret)
        .expect("HMAC takes keys of any length");
    mac.update(b"rwa access-token signing key\0");
    mac.update(kid.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Sessions, refresh tokens and signing keys. Everything here is on the
/// authentication path, before an organization is known, hence `auth_`.
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Opens a session after a successful login (its first refresh token,
    /// the user's `last_login_at`, the audit entry), in one transaction.
    async fn auth_open(&self, session: &NewSession, actor: &Actor) -> RepoResult<()>;

    /// Spends `presented` and stores `next` as the following generation,
    /// judging the client's fingerprint under the organization's mode. A
    /// replay or a refused fingerprint revokes the session (committed, and
    /// audited as a security event) before the answer is returned.
    async fn auth_refresh(
        &self,
        presented: &KeyDigest,
        next: &KeyDigest,
        fingerprint: &Fingerprint,
        request: &RequestContext,
    ) -> RepoResult<Refreshed>;

    /// Revokes the session of a refresh token (logout). `false` if no
    /// session has that token.
    async fn auth_logout(
        &self,
        presented: &KeyDigest,
        request: &RequestContext,
    ) -> RepoResult<bool>;

    /// A session's standing for a request with its access token; `None` if
    /// no such session of `user` exists in `org`.
    async fn auth_standing(
        &self,
        org: OrgId,
        user: UserId,
        session: SessionId,
    ) -> RepoResult<Option<SessionStanding>>;

    /// Revokes a session whose access token came from another client (strict
    /// or lenient fingerprint), audited as a security event.
    async fn auth_revoke_mismatched(
        &self,
        org: OrgId,
        session: SessionId,
        actor: &Actor,
        seen: &Fingerprint,
    ) -> RepoResult<()>;

    /// Every signing key, newest first.
    async fn auth_signing_keys(&self) -> RepoResult<Vec<SigningKey>>;

    /// Starts a new signing key and retires the current one, when the
    /// current one is older than `older_than` (always with `None`, and when
    /// there is none). Returns the key that signs from now on.
    async fn system_rotate_signing_key(
        &self,
        older_than: Option<chrono::TimeDelta>,
    ) -> RepoResult<SigningKey>;
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";

    #[test]
    fn agent_families_ignore_versions_and_tell_browsers_apart() {
        assert_eq!(agent_family(FIREFOX), "firefox");
        assert_eq!(agent_family(CHROME), "chrome");
        assert_eq!(agent_family(EDGE), "edge");
        assert_eq!(agent_family("curl/8.5.0"), agent_family("curl/7.1"));
        assert_eq!(agent_family("python-requests/2.31"), "python-requests");
        assert_eq!(agent_family(""), "none");
    }

    #[test]
    fn networks_are_the_v4_slash_24_and_the_v6_slash_64() {
        let n = |s: &str| network_of(s.parse().unwrap());
        assert_eq!(n("203.0.113.77"), "203.0.113.0/24");
        assert_eq!(n("203.0.113.77"), n("203.0.113.1"));
        assert_ne!(n("203.0.113.77"), n("203.0.114.77"));
        assert_eq!(n("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(n("::ffff:203.0.113.9"), "203.0.113.0/24");
    }

    #[test]
    fn modes_judge_agent_and_network_changes() {
        let ip = |s: &str| Some(s.parse().unwrap());
        let opened = Fingerprint::of(Some(FIREFOX), ip("10.1.2.3"));
        let same = Fingerprint::of(Some(FIREFOX), ip("10.1.2.99"));
        let moved = Fingerprint::of(Some(FIREFOX), ip("10.9.9.9"));
        let other_agent = Fingerprint::of(Some(CHROME), ip("10.1.2.3"));
        use FingerprintMode::*;
        use FingerprintVerdict::*;
        for (mode, now, verdict) in [
            (Strict, &same, Accept),
            (Strict, &moved, Revoke),
            (Strict, &other_agent, Revoke),
            (Lenient, &same, Accept),
            (Lenient, &moved, AcceptMoved),
            (Lenient, &other_agent, Revoke),
            (Off, &moved, Accept),
            (Off, &other_agent, Accept),
        ] {
            assert_eq!(mode.judge(&opened, now), verdict, "{mode:?} {now:?}");
        }
        assert_eq!("strict".parse::<FingerprintMode>().unwrap(), Strict);
        assert_eq!(
            "loose".parse::<FingerprintMode>().unwrap_err().field,
            "session_fingerprint"
        );
    }

    #[test]
    fn each_kid_derives_its_own_key_from_the_secret() {
        let a = signing_key_material(b"server secret of 32 bytes or more", "k1");
        assert_eq!(
            a,
            signing_key_material(b"server secret of 32 bytes or more", "k1")
        );
        assert_ne!(
            a,
            signing_key_material(b"server secret of 32 bytes or more", "k2")
        );
        assert_ne!(
            a,
            signing_key_material(b"another server secret of 32 bytes", "k1")
        );
    }

    #[test]
    fn refresh_tokens_are_long_random_and_never_printed() {
        let a = RefreshSecret::generate();
        assert!(a.expose().starts_with(REFRESH_PREFIX));
        assert_eq!(a.expose().len(), 52);
        assert_ne!(a.expose(), RefreshSecret::generate().expose());
        assert!(!format!("{a:?}").contains(&a.expose()[4..]));
    }
}
