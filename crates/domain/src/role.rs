//! Roles of API keys (and, later, users) and what each may do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// The role a credential acts with inside its organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May do everything in the organization, including managing keys.
    Admin,
    /// Tokens, operations, transfers and jobs.
    Operator,
    /// KYC decisions and manual reviews.
    Compliance,
    /// Reads only.
    Auditor,
}

impl Role {
    /// Every role, in order of decreasing power.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Compliance, Role::Auditor];

    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Compliance => "compliance",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "role",
                    "must be one of admin, operator, compliance, auditor",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_and_reject_unknown_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        let err = "root".parse::<Role>().unwrap_err();
        assert_eq!(err.field, "role");
    }
}
