//! Organizations: the tenants. Every business row belongs to one, and every
//! repository method other than the `system_*` ones is scoped to one.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{OrgId, ValidationError};

/// A validated organization name: trimmed, 1 to 200 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct OrgName(String);

impl OrgName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 200;

    /// Parses a name; the error names the field `name`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        crate::error::display_name(raw, "name", Self::MAX_CHARS).map(Self)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stored organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrgId,
    /// Its display name.
    pub name: String,
    /// What a session's changed fingerprint does.
    pub session_fingerprint: crate::session::FingerprintMode,
    /// Its rate-limit tier (`None`: the configured default).
    pub rate_tier: Option<String>,
    /// When it was created (database time).
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            OrgName::parse("  Acme Fund  ").unwrap().as_str(),
            "Acme Fund"
        );
        assert_eq!(OrgName::parse("   ").unwrap_err().field, "name");
        assert!(OrgName::parse(&"x".repeat(201)).is_err());
        assert!(OrgName::parse("a\u{0}b").is_err());
    }
}
