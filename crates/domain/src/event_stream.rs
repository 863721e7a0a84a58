//! The event stream: every organization's events published to a message
//! broker (RabbitMQ, `RWA_AMQP_URL`) in `seq` order, from one cursor over
//! the whole event log that moves only over what the broker confirmed. A
//! publish the broker never confirmed (a restart, a lost connection) is
//! sent again from the cursor: at least once, in order, and consumers
//! de-duplicate by the message id (the event's id).

use async_trait::async_trait;

use crate::{OrgId, RepoResult};

/// The routing key of an event on the topic exchange: `<org_id>.<type>`,
/// so a consumer binds `<org_id>.#` for one organization, `*.transfer.*`
/// for one noun across organizations, or `#` for everything.
pub fn routing_key(org: OrgId, kind: &str) -> String {
    format!("{org}.{kind}")
}

/// The stream's cursor, kept beside the event log.
#[async_trait]
pub trait StreamCursor: Send + Sync {
    /// The cursor of the stream `name`: the highest `seq` the broker
    /// confirmed. The first time, the stream is created after the newest
    /// numbered event, so turning it on does not replay the history.
    async fn system_stream_open(&self, name: &str) -> RepoResult<i64>;

    /// Moves the cursor from `from` to `through` (compare-and-set);
    /// answers whether it moved.
    async fn system_stream_advance(&self, name: &str, from: i64, through: i64) -> RepoResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_lead_with_the_organization() {
        let org = OrgId::from_uuid(uuid::Uuid::nil());
        assert_eq!(
            routing_key(org, "transfer.settled"),
            "00000000-0000-0000-0000-000000000000.transfer.settled"
        );
    }
}
