//! The audit trail: every change made through rwa is appended, in the same database
//! transaction as the change, to one hash chain. Each entry's hash covers the
//! previous entry's hash and every field of the entry, so editing, deleting or
//! reordering any stored entry breaks verification from that point on.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{AuditId, OrgId};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a store method records about the change it makes.
#[derive(Clone, Debug)]
pub struct AuditRecord {
    /// `<noun>.<verb>`, e.g. `api_key.created`.
    pub action: &'static str,
    /// What was changed, e.g. `api_key:<id>`.
    pub target: String,
    /// Details; never secrets.
    pub data: serde_json::Value,
}

/// A stored, chained entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, gap-free.
    pub seq: i64,
    /// Entry id.
    pub id: AuditId,
    /// Organization concerned.
    pub org_id: OrgId,
    /// Who made the change ([`crate::Actor`] as text).
    pub actor: String,
    /// `<noun>.<verb>`.
    pub action: String,
    /// What was changed.
    pub target: String,
    /// Details as stored JSON text (hashed byte for byte).
    pub data: String,
    /// Database time of the change.
    pub created_at: DateTime<Utc>,
    /// The HTTP request the change came in, if any.
    pub request_id: Option<String>,
    /// The client's address, if known.
    pub ip: Option<String>,
    /// Hash of the previous entry.
    pub prev_hash: String,
    /// Hash of this entry.
    pub hash: String,
}

/// The fields an entry's hash covers, besides the previous hash.
#[derive(Clone, Copy, Debug)]
pub struct HashInput<'a> {
    /// Position in the chain.
    pub seq: i64,
    /// Entry id.
    pub id: AuditId,
    /// Organization.
    pub org_id: OrgId,
    /// Actor text.
    pub actor: &'a str,
    /// Action.
    pub action: &'a str,
    /// Target.
    pub target: &'a str,
    /// Stored JSON text.
    pub data: &'a str,
    /// Time of the change.
    pub created_at: DateTime<Utc>,
    /// Request id, if any.
    pub request_id: Option<&'a str>,
    /// Client address, if any.
    pub ip: Option<&'a str>,
}

/// Hash of an entry chained to `prev_hash`. Fields are length-prefixed so no two
/// different entries can serialize to the same bytes. The request's id and
/// address, recorded since users arrived, are covered when present, each
/// behind a tag byte; entries without them hash as they always did, so
/// chains written before still verify.
pub fn chain_hash(prev_hash: &str, input: &HashInput<'_>) -> String {
    let mut h = Sha256::new();
    let created_at = input
        .created_at
        .to_rfc3339_opts(SecondsFormat::Micros, true);
    let seq = input.seq.to_string();
    let id = input.id.to_string();
    let org = input.org_id.to_string();
    for field in [
        prev_hash,
        &seq,
        &id,
        &org,
        input.actor,
        input.action,
        input.target,
        input.data,
        &created_at,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    for (tag, field) in [(b'r', input.request_id), (b'i', input.ip)] {
        if let Some(field) = field {
            h.update([tag]);
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
    }
    hex::encode(h.finalize())
}

/// Which entries of an organization to list; every field set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The action, exactly (`user.created`) or by its noun (`user.*`).
    pub action: Option<String>,
    /// The actor, exactly (`user:<id>`, `api_key:<id>`, `cli`).
    pub actor: Option<String>,
    /// The target, exactly.
    pub target: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// Entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub until: Option<DateTime<Utc>>,
}

/// Result of walking the whole chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainVerification {
    /// Entries checked.
    pub entries: u64,
    /// The first entry that does not verify, if any, with the reason.
    pub first_broken: Option<BrokenLink>,
}

/// Where and why the chain breaks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    /// Sequence number of the offending entry.
    pub seq: i64,
    /// What does not match.
    pub reason: String,
}

/// Checks a run of entries in `seq` order, continuing from `prev_hash` and
/// `prev_seq` (the genesis values for the first run).
pub fn verify_run(
    entries: &[AuditEntry],
    prev_hash: &mut String,
    prev_seq: &mut i64,
) -> Option<BrokenLink> {
    for e in entries {
        let broken = |reason: String| Some(BrokenLink { seq: e.seq, reason });
        if e.seq != *prev_seq + 1 {
            return broken(format!("sequence jumps from {} to {}", prev_seq, e.seq));
        }
        if e.prev_hash != *prev_hash {
            return broken("prev_hash does not match the previous entry".into());
        }
        let expected = chain_hash(
            prev_hash,
            &HashInput {
                seq: e.seq,
                id: e.id,
                org_id: e.org_id,
                actor: &e.actor,
                action: &e.action,
                target: &e.target,
                data: &e.data,
                created_at: e.created_at,
                request_id: e.request_id.as_deref(),
                ip: e.ip.as_deref(),
            },
        );
        if expected != e.hash {
            return broken("hash does not match the entry's contents".into());
        }
        prev_hash.clone_from(&e.hash);
        *prev_seq = e.seq;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str) -> AuditEntry {
        let id = AuditId::new();
        let org_id = OrgId::new();
        let created_at = Utc::now();
        let hash = chain_hash(
            prev,
            &HashInput {
                seq,
                id,
                org_id,
                actor: "cli",
                action: "org.created",
                target: "org",
                data: "{}",
                created_at,
                request_id: None,
                ip: None,
            },
        );
        AuditEntry {
            seq,
            id,
            org_id,
            actor: "cli".into(),
            action: "org.created".into(),
            target: "org".into(),
            data: "{}".into(),
            created_at,
            request_id: None,
            ip: None,
            prev_hash: prev.into(),
            hash,
        }
    }

    #[test]
    fn an_intact_chain_verifies_and_any_edit_breaks_it() {
        let a = entry(1, GENESIS_HASH);
        let b = entry(2, &a.hash);
        let (mut h, mut s) = (GENESIS_HASH.to_string(), 0);
        assert_eq!(verify_run(&[a.clone(), b.clone()], &mut h, &mut s), None);

        let mut tampered = b.clone();
        tampered.data = "{\"x\":1}".into();
        let (mut h, mut s) = (GENESIS_HASH.to_string(), 0);
        let broken = verify_run(&[a.clone(), tampered], &mut h, &mut s).unwrap();
        assert_eq!(broken.seq, 2);

        let (mut h, mut s) = (GENESIS_HASH.to_string(), 0);
        assert_eq!(
            verify_run(&[b], &mut h, &mut s).unwrap().seq,
            2,
            "a deleted first entry is detected"
        );
    }

    #[test]
    fn the_request_id_and_address_are_covered_when_present() {
        let a = entry(1, GENESIS_HASH);
        let input = |request_id, ip| HashInput {
            seq: a.seq,
            id: a.id,
            org_id: a.org_id,
            actor: &a.actor,
            action: &a.action,
            target: &a.target,
            data: &a.data,
            created_at: a.created_at,
            request_id,
            ip,
        };
        assert_eq!(chain_hash(GENESIS_HASH, &input(None, None)), a.hash);
        let with = chain_hash(GENESIS_HASH, &input(Some("req-1"), Some("10.0.0.1")));
        assert_ne!(with, a.hash);
        assert_ne!(
            with,
            chain_hash(GENESIS_HASH, &input(Some("req-1"), Some("10.0.0.2")))
        );
        assert_ne!(
            chain_hash(GENESIS_HASH, &input(Some("x"), None)),
            chain_hash(GENESIS_HASH, &input(None, Some("x"))),
            "the tags keep the two apart"
        );
    }
}
