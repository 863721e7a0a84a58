//! Domain events: every state change is appended to `events` with a `seq`
//! assigned in commit order (DESIGN §4), so a reader asking for `after=seq`
//! never skips a row that commits late. Types are `<noun>.<state>`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{EventId, OrgId};

/// A token's contracts are settled on-chain.
pub const TOKEN_DEPLOYED: &str = "token.deployed";
/// A token's deployment gave up.
pub const TOKEN_FAILED: &str = "token.failed";

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
