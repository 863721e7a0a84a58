//! Domain events: every state change is appended to `events` with a `seq`
//! assigned in commit order (DESIGN §4), so a reader asking for `after=seq`
//! never skips a row that commits late. Types are `<noun>.<state>`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{EventId, OrgId};

/// A token's contracts are settled on-chain.
pub const TOKEN_DEPLOYED: &str = "token.deployed";
/// A token's settings changed.
pub const TOKEN_UPDATED: &str = "token.updated";
/// A token's deployment gave up.
pub const TOKEN_FAILED: &str = "token.failed";

/// Which event types a reader wants: one type (`investor.kyc_approved`) or
/// every type of a noun (`investor.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this type.
    Exact(String),
    /// Every type starting `<noun>.`.
    Noun(String),
}

/// [`TypeFilter::parse`]'s rule as a regular expression.
pub const TYPE_FILTER_PATTERN: &str = r"^[a-z][a-z0-9_]*\.([a-z][a-z0-9_]*|\*)$";

impl TypeFilter {
    /// `<noun>.<state>` or `<noun>.*`, lower-case letters, digits and `_`.
    pub fn parse(raw: &str) -> Result<TypeFilter, crate::ValidationError> {
        let word = |w: &str| {
            w.starts_with(|c: char| c.is_ascii_lowercase())
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        match raw.split_once('.') {
            Some((noun, "*")) if word(noun) => Ok(TypeFilter::Noun(noun.to_owned())),
            Some((noun, state)) if word(noun) && word(state) => {
                Ok(TypeFilter::Exact(raw.to_owned()))
            }
            _ => Err(crate::ValidationError::new(
                "type",
                "must be <noun>.<state> or <noun>.* (lower-case letters, digits, _)",
            )),
        }
    }
}

/// A stored event.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Position in commit order, from 1, without gaps.
    pub seq: i64,
    /// Id.
    pub id: EventId,
    /// `<noun>.<state>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The organization it concerns.
    pub org_id: OrgId,
    /// Database time of the append.
    pub created_at: DateTime<Utc>,
    /// The subject as it is after the change.
    pub data: serde_json::Value,
}
