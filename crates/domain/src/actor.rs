//! Who performed a change; recorded in the audit trail with every write.

use std::fmt;

use crate::ApiKeyId;

/// The author of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A request authenticated with this API key.
    ApiKey(ApiKeyId),
    /// An operator at the command line (`rwa org create`, `rwa keys create`).
    Cli,
    /// The service itself (a worker, the scheduler); the name says which part.
    System(&'static str),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Cli => f.write_str("cli"),
            Actor::System(part) => write!(f, "system:{part}"),
        }
    }
}
