//! Identifiers: UUIDv7 newtypes so an organization id can never be passed where an
//! API key id is expected. UUIDv7 sorts by creation time, which makes ids usable as
//! list cursors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID (read from storage or a request).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// An organization (tenant): every business row belongs to exactly one.
    OrgId
);
uuid_id!(
    /// An API key record (not the secret).
    ApiKeyId
);
uuid_id!(
    /// An entry of the hash-chained audit trail.
    AuditId
);
uuid_id!(
    /// A security token issued by an organization.
    TokenId
);
uuid_id!(
    /// A domain event (`token.deployed`, ...).
    EventId
);
uuid_id!(
    /// An investor of an organization (a person or an entity that may hold tokens).
    InvestorId
);
uuid_id!(
    /// A user of an organization (a person who logs in with a password).
    UserId
);
uuid_id!(
    /// A session: one login's family of rotating refresh tokens.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = OrgId::new();
        let b = OrgId::new();
        assert!(a < b, "UUIDv7 ids sort by creation");
        assert_eq!(a.to_string().parse::<OrgId>().unwrap(), a);
        assert!("not-a-uuid".parse::<OrgId>().is_err());
    }
}
