//! The `Rwa-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! t + "." + body)>`, one scheme for what rwa receives (a KYC provider's
//! callback) and, once webhooks exist, what it sends. During a rotation a
//! sender includes one `v1=` per secret; a receiver accepts the header when
//! any of them verifies.
//!
//! Verification compares in constant time and checks the timestamp against a
//! tolerance, so a captured request cannot be replayed later; a replay inside
//! the tolerance is the receiver's to refuse (it remembers the signatures it
//! accepted, see [`Verified::digest`]).

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit as _, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The header's name.
pub const HEADER: &str = "Rwa-Signature";

/// How far a signed timestamp may be from the receiver's clock.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a signature header is refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// Missing, or not `t=…,v1=…`.
    #[error("the {HEADER} header is missing or malformed (expected t=<unix>,v1=<hex>)")]
    Malformed,
    /// No `v1` matches the body under the secret.
    #[error("the {HEADER} signature does not match the body")]
    Mismatch,
    /// The timestamp is too far from now.
    #[error(
        "the {HEADER} timestamp is more than {TOLERANCE_SECONDS} seconds from the server's clock"
    )]
    Stale,
}

/// A header that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The signed timestamp.
    pub timestamp: i64,
    /// SHA-256 of the matching signature, hex: what a receiver remembers to
    /// refuse a replay (the same signature seen twice).
    pub digest: String,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at `timestamp` with each of `secrets`.
pub fn sign(secrets: &[&[u8]], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let tag = mac(secret, timestamp, body).finalize().into_bytes();
        header.push_str(",v1=");
        header.push_str(&hex::encode(tag));
    }
    header
}

/// Checks `header` against `body` under `secret` at `now`.
pub fn verify(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, SignatureError> {
    let header = header.ok_or(SignatureError::Malformed)?;
    let mut timestamp = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", tag)) => {
                tags.push(hex::decode(tag).map_err(|_| SignatureError::Malformed)?)
            }
            // Other schemes may follow; they are not ours to judge.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    // The signature first: an unauthenticated caller learns nothing about
    // the clock from the answer.
    let matching = tags
        .iter()
        .find(|tag| mac(secret, timestamp, body).verify_slice(tag).is_ok())
        .ok_or(SignatureError::Mismatch)?;
    if (now.timestamp() - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(SignatureError::Stale);
    }
    Ok(Verified {
        timestamp,
        digest: hex::encode(Sha256::digest(matching)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"provider-shared-secret";
    const BODY: &[u8] = br#"{"external_ref":"crm:1","decision":"approved"}"#;

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    #[test]
    fn a_signed_body_verifies_within_the_tolerance() {
        let header = sign(&[SECRET], 1_800_000_000, BODY);
        let ok = verify(SECRET, Some(&header), BODY, at(1_800_000_000 + 299)).unwrap();
        assert_eq!(ok.timestamp, 1_800_000_000);
        assert_eq!(ok.digest.len(), 64);
        // The same header gives the same digest: a replay is recognisable.
        let again = verify(SECRET, Some(&header), BODY, at(1_800_000_000)).unwrap();
        assert_eq!(again.digest, ok.digest);
    }

    #[test]
    fn altered_bodies_wrong_secrets_and_old_timestamps_are_refused() {
        let header = sign(&[SECRET], 1_800_000_000, BODY);
        let now = at(1_800_000_000);
        assert_eq!(
            verify(SECRET, Some(&header), b"{}", now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another secret", Some(&header), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, Some(&header), BODY, at(1_800_000_000 + 301)),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, Some(&header), BODY, at(1_800_000_000 - 301)),
            Err(SignatureError::Stale)
        );
        // A forged timestamp breaks the signature, not just the clock check.
        let moved = header.replace("t=1800000000", "t=1800000100");
        assert_eq!(
            verify(SECRET, Some(&moved), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_named_as_such() {
        let now = at(1_800_000_000);
        for bad in [
            None,
            Some(""),
            Some("v1=00"),
            Some("t=1"),
            Some("t=x,v1=00"),
            Some("t=1,v1=zz"),
            Some("garbage"),
        ] {
            assert_eq!(
                verify(SECRET, bad, BODY, now),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let header = sign(&[b"old secret", SECRET], 1_800_000_000, BODY);
        assert_eq!(header.matches("v1=").count(), 2);
        let now = at(1_800_000_000);
        assert!(verify(SECRET, Some(&header), BODY, now).is_ok());
        assert!(verify(b"old secret", Some(&header), BODY, now).is_ok());
        assert_eq!(
            verify(b"third", Some(&header), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }
}
