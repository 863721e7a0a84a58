//! API keys: `rwa_` followed by 40 random alphanumeric characters (about 238 bits).
//! Only the SHA-256 digest is stored: the keys carry enough entropy that a slow
//! password hash would add latency to every request and no security. The secret is
//! shown once, at creation.

use std::fmt;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::network::AllowedNetworks;
use crate::{ApiKeyId, OrgId, Role, UserId, ValidationError};

/// Every key starts with this, so leaked keys are easy to recognise in scanners.
pub const KEY_PREFIX: &str = "rwa_";
const RANDOM_CHARS: usize = 40;
/// How many leading characters are kept in clear to tell keys apart in listings.
pub const DISPLAY_PREFIX_CHARS: usize = 12;

/// `n` random alphanumeric characters (about 5.95 bits each), from the
/// thread's CSPRNG: the secret part of API keys and refresh tokens.
pub(crate) fn random_alphanumeric(n: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A freshly generated key. Its `Debug` never prints the secret.
pub struct ApiKeySecret(String);

impl ApiKeySecret {
    /// Generates a new random key.
    pub fn generate() -> Self {
        Self(format!("{KEY_PREFIX}{}", random_alphanumeric(RANDOM_CHARS)))
    }

    /// The key, to hand to its owner exactly once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest stored in place of the key.
    pub fn digest(&self) -> KeyDigest {
        KeyDigest::of(&self.0)
    }

    /// The clear prefix kept for display (`rwa_` and 8 characters).
    pub fn display_prefix(&self) -> String {
        self.0.chars().take(DISPLAY_PREFIX_CHARS).collect()
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

/// SHA-256 digest of a presented key, hex encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDigest(String);

impl KeyDigest {
    /// Digest of any presented bearer value (it may not even look like a key).
    pub fn of(presented: &str) -> Self {
        Self(hex::encode(Sha256::digest(presented.as_bytes())))
    }

    /// Wraps a digest read from storage.
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// Hex text, as stored.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// Compares in constant time, so response timing says nothing about how much
    /// of a digest matched.
    pub fn matches(&self, other: &KeyDigest) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// Whether a bearer value has the shape of an API key (as opposed to, later, an
/// access token).
pub fn looks_like_api_key(bearer: &str) -> bool {
    bearer.len() == KEY_PREFIX.len() + RANDOM_CHARS
        && bearer.starts_with(KEY_PREFIX)
        && bearer[KEY_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// A validated optional label for a key ("ci deploys", "fund admin laptop").
pub fn parse_label(raw: Option<&str>) -> Result<Option<String>, ValidationError> {
    // The limit counts what was sent, as the API's declared `maxLength` does.
    if raw.is_some_and(|l| l.chars().count() > 100) {
        return Err(ValidationError::new(
            "label",
            "must be at most 100 characters",
        ));
    }
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(l) if l.chars().any(char::is_control) => Err(ValidationError::new(
            "label",
            "must not contain control characters",
        )),
        Some(l) => Ok(Some(l.to_owned())),
    }
}

/// What the store needs to create a key; the secret itself never reaches storage.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    /// Id to give the key.
    pub id: ApiKeyId,
    /// Role it acts with.
    pub role: Role,
    /// Optional label.
    pub label: Option<String>,
    /// Clear display prefix.
    pub prefix: String,
    /// SHA-256 digest of the secret.
    pub digest: KeyDigest,
    /// The user who created it, as whom it acts (`None`: created with
    /// another API key or at the command line).
    pub user: Option<UserId>,
    /// The networks it may be used from (empty: anywhere).
    pub allowed_cidrs: AllowedNetworks,
    /// The client certificate subject it is bound to (mutual TLS).
    pub cert_subject: Option<String>,
}

impl NewApiKey {
    /// Generates a secret and the record that stands for it.
    pub fn generate(role: Role, label: Option<String>) -> (Self, ApiKeySecret) {
        let secret = ApiKeySecret::generate();
        let record = Self {
            id: ApiKeyId::new(),
            role,
            label,
            prefix: secret.display_prefix(),
            digest: secret.digest(),
            user: None,
            allowed_cidrs: AllowedNetworks::default(),
            cert_subject: None,
        };
        (record, secret)
    }
}

/// A stored API key, without its secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// Organization it belongs to.
    pub org_id: OrgId,
    /// Role it acts with.
    pub role: Role,
    /// Optional label.
    pub label: Option<String>,
    /// Clear display prefix (`rwa_` + 8 characters).
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last authenticated use, updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time; a revoked key authenticates nothing.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The user it acts as, if a user created it.
    pub user_id: Option<UserId>,
    /// The networks it may be used from (empty: anywhere).
    pub allowed_cidrs: AllowedNetworks,
    /// The client certificate subject it is bound to: that verified
    /// certificate authenticates as the key, and the key's secret works only
    /// over a connection that presented it.
    pub cert_subject: Option<String>,
}

/// A key found by digest, for authentication.
#[derive(Clone, Debug)]
pub struct StoredCredential {
    /// The key record.
    pub key: ApiKey,
    /// The stored digest, compared in constant time with the presented one.
    pub digest: KeyDigest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape() {
        let (record, secret) = NewApiKey::generate(Role::Admin, None);
        assert!(looks_like_api_key(secret.expose()));
        assert_eq!(record.prefix.len(), DISPLAY_PREFIX_CHARS);
        assert!(secret.expose().starts_with(&record.prefix));
        assert!(record.digest.matches(&KeyDigest::of(secret.expose())));
        assert!(!record.digest.matches(&KeyDigest::of("rwa_other")));
        assert!(!format!("{secret:?}").contains(&secret.expose()[DISPLAY_PREFIX_CHARS..]));
    }

    #[test]
    fn labels_are_validated() {
        assert_eq!(parse_label(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_label(Some(&"x".repeat(101))).unwrap_err().field,
            "label"
        );
    }
}
