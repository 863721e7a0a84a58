//! Idempotency keys, shared by every POST that takes one (operations now,
//! transfers later): the first request with a key claims it in a short
//! transaction; the change it makes records its response under the key in
//! the change's own transaction, conditioned on still holding the claim. So
//! a response is stored exactly when its change committed, a retry of the
//! same request gets that response back, and a second request racing the
//! first is told to come back instead of doing the work twice.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{OrgId, RepoResult, ValidationError};

/// The request header carrying the key.
pub const HEADER: &str = "Idempotency-Key";

/// How long a key and its response are kept.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);

/// [`IdempotencyKey::parse`]'s rule as a regular expression.
pub const KEY_PATTERN: &str = r"^[\x21-\x7e]{1,255}$";

/// A client's idempotency key: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a received key; the error names the header.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(ValidationError::new(
                HEADER,
                "must be 1 to 255 visible ASCII characters (a UUID is a good choice)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request" under one key: the method, the path
/// and the body as the server understood it (re-serialized, so spacing and
/// key order do not matter), hashed.
pub fn fingerprint(method: &str, path: &str, canonical_body: &str) -> String {
    let mut h = Sha256::new();
    for part in [method, path, canonical_body] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A response recorded under a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// The outcome of claiming a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds the key: this request does the work under this claim.
    Granted(Uuid),
    /// The same request completed before: its response.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The same request is being processed; try again after this long.
    InProgress {
        /// Seconds until its claim lapses (at least 1).
        retry_after_secs: u64,
    },
}

/// What a change records under the key it was claimed with: the status and
/// the body it answers, rendered from what it stored.
pub struct Completion<T> {
    /// The key.
    pub key: IdempotencyKey,
    /// The claim [`IdempotencyStore::claim`] granted.
    pub claim: Uuid,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Renders the answer's body from the stored record.
    pub render: Arc<dyn Fn(&T) -> String + Send + Sync>,
}

impl<T> Clone for Completion<T> {
    fn clone(&self) -> Self {
        Self {
            key: self.key.clone(),
            claim: self.claim,
            status: self.status,
            render: self.render.clone(),
        }
    }
}

/// Storage of idempotency keys, per organization.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with `fingerprint`, for `lease` (after which
    /// a claim whose holder vanished, a crashed process, may be taken over).
    /// A key older than [`KEEP`] is claimed afresh.
    async fn claim(
        &self,
        org: OrgId,
        key: &IdempotencyKey,
        fingerprint: &str,
        lease: Duration,
    ) -> RepoResult<Claim>;

    /// Gives up a claim whose request failed without changing anything, so
    /// a corrected retry may proceed.
    async fn release(&self, org: OrgId, key: &IdempotencyKey, claim: Uuid) -> RepoResult<()>;

    /// Deletes keys older than [`KEEP`]; answers how many.
    async fn system_prune(&self) -> RepoResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("0b9c2f1e-4a6d-7c3b-9e8f-1a2b3c4d5e6f").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(256)] {
            let e = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!(e.field, HEADER);
        }
        let re = regex::Regex::new(KEY_PATTERN).unwrap();
        assert!(re.is_match("abc-123"));
        assert!(!re.is_match("a b"));
    }

    #[test]
    fn fingerprints_separate_their_parts() {
        let a = fingerprint("POST", "/v1/a", "{}");
        assert_eq!(a, fingerprint("POST", "/v1/a", "{}"));
        assert_ne!(a, fingerprint("POST", "/v1/a{", "}"));
        assert_ne!(a, fingerprint("POST", "/v1/b", "{}"));
    }
}
