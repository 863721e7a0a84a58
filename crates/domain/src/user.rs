//! Users: the people of an organization who log in with an e-mail address
//! and a password, each with one role. A user may be disabled (it cannot log
//! in, its tokens and the API keys it created stop working at their next
//! request) or deleted (the same, for good; the row stays so the audit trail
//! keeps naming it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::page::{Page, PageRequest};
use crate::password::PasswordHash;
use crate::{Actor, OrgId, RepoResult, Role, UserId, ValidationError};

/// A validated e-mail address, lower-cased: the login name, unique across
/// organizations (logging in names no organization).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest accepted address (RFC 5321's path limit).
    pub const MAX_CHARS: usize = 254;

    /// Parses an address; errors name `email`.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let raw = raw.trim();
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "email",
                format!("must be at most {} characters", Self::MAX_CHARS),
            ));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            raw,
            email_address::Options::default()
                .without_display_text()
                .without_domain_literal(),
        )
        .map_err(|e| ValidationError::new("email", format!("is not an e-mail address: {e}")))?;
        if !parsed.domain().contains('.') {
            return Err(ValidationError::new(
                "email",
                "is not an e-mail address: its domain has no dot",
            ));
        }
        Ok(Self(parsed.as_str().to_lowercase()))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What a password must not be built from: the address and its parts.
    pub fn hints(&self) -> Vec<&str> {
        let mut hints = vec![self.0.as_str()];
        hints.extend(
            self.0
                .split(['@', '.', '_', '-', '+'])
                .filter(|p| p.len() > 2),
        );
        hints
    }
}

/// What the store needs to create a user.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Id to give it.
    pub id: UserId,
    /// Login name.
    pub email: Email,
    /// Its role.
    pub role: Role,
    /// Its password's argon2id hash.
    pub password_hash: PasswordHash,
}

/// A stored user, without its password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its organization.
    pub org_id: OrgId,
    /// Login name.
    pub email: String,
    /// Its role.
    pub role: Role,
    /// Disabled users cannot log in and nothing of theirs authenticates.
    pub disabled: bool,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change of role or state.
    pub updated_at: DateTime<Utc>,
    /// Last successful login.
    pub last_login_at: Option<DateTime<Utc>>,
    /// The networks it may log in and act from (empty: anywhere).
    pub allowed_cidrs: crate::network::AllowedNetworks,
}

/// A change to a user: each field set replaces the current value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    /// New role.
    pub role: Option<Role>,
    /// Disable (`true`) or enable again (`false`).
    pub disabled: Option<bool>,
    /// New allow-list (an empty one allows every address).
    pub allowed_cidrs: Option<crate::network::AllowedNetworks>,
}

/// A user found by e-mail at login, with what the password is checked against.
#[derive(Clone, Debug)]
pub struct LoginCandidate {
    /// The user.
    pub user: User,
    /// Its password hash.
    pub password_hash: PasswordHash,
    /// Until when its logins are refused after too many failures.
    pub locked_until: Option<DateTime<Utc>>,
}

/// How failed logins lock an account: from the `after`-th consecutive
/// failure on, each failure locks it for `base`, doubled for every failure
/// past `after`, at most `max`. A successful login starts the count afresh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    /// Consecutive failures before the first lock.
    pub after: u32,
    /// The first lock's length.
    pub base: chrono::TimeDelta,
    /// The longest lock.
    pub max: chrono::TimeDelta,
}

impl Default for Lockout {
    fn default() -> Self {
        Self {
            after: 5,
            base: chrono::TimeDelta::minutes(1),
            max: chrono::TimeDelta::days(1),
        }
    }
}

impl Lockout {
    /// A policy from whole seconds (the configuration's unit); values are
    /// bounded (100 failures, 30 days) so no arithmetic can overflow.
    pub fn from_secs(after: u64, base_secs: u64, max_secs: u64) -> Self {
        let secs = |s: u64| chrono::TimeDelta::seconds(s.min(30 * 86_400) as i64);
        Self {
            after: after.clamp(1, 100) as u32,
            base: secs(base_secs),
            max: secs(max_secs),
        }
    }

    /// How long the `failures`-th consecutive failure locks the account.
    pub fn lock_for(&self, failures: u32) -> Option<chrono::TimeDelta> {
        let past = failures.checked_sub(self.after)?;
        let factor = 1_i32.checked_shl(past.min(30)).unwrap_or(i32::MAX);
        Some(
            self.base
                .checked_mul(factor)
                .map_or(self.max, |d| d.min(self.max)),
        )
    }
}

/// The state of a user that decides, at each request, whether its
/// credentials still work and with which role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserStanding {
    /// Its current role.
    pub role: Role,
    /// Whether it may act at all (neither disabled nor deleted).
    pub active: bool,
    /// The networks it may act from.
    pub allowed_cidrs: crate::network::AllowedNetworks,
}

/// Users of an organization.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user; [`crate::RepoError::Conflict`] if the e-mail
    /// address is taken (in any organization).
    async fn create(&self, org: OrgId, user: &NewUser, actor: &Actor) -> RepoResult<User>;

    /// Users of `org` (deleted ones left out), in creation order.
    async fn list(&self, org: OrgId, page: PageRequest) -> RepoResult<Page<User>>;

    /// One user of `org`.
    async fn get(&self, org: OrgId, id: UserId) -> RepoResult<User>;

    /// Changes a user's role or state; a change of either revokes its
    /// sessions in the same transaction.
    async fn update(
        &self,
        org: OrgId,
        id: UserId,
        change: &UserChange,
        actor: &Actor,
    ) -> RepoResult<User>;

    /// Deletes a user for good and revokes its sessions.
    async fn delete(&self, org: OrgId, id: UserId, actor: &Actor) -> RepoResult<()>;

    /// Authentication path (no organization known yet): the live user with
    /// this login name, in whichever organization.
    async fn auth_find_login(&self, email: &Email) -> RepoResult<Option<LoginCandidate>>;

    /// Authentication path: records a failed login of `id` (in `org`), and
    /// locks the account as `lockout` says, audited with `actor` (the
    /// failure, and the lock when there is one) in one transaction. Answers
    /// until when it is locked, if it is.
    async fn auth_login_failed(
        &self,
        org: OrgId,
        id: UserId,
        lockout: &Lockout,
        reason: &'static str,
        actor: &Actor,
    ) -> RepoResult<Option<DateTime<Utc>>>;

    /// Authentication path: a user's standing, read at each request made
    /// with one of its credentials; `None` if it does not exist in `org`.
    async fn auth_standing(&self, org: OrgId, id: UserId) -> RepoResult<Option<UserStanding>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_start_after_the_threshold_double_and_are_capped() {
        let l = Lockout::default();
        assert_eq!(l.lock_for(4), None);
        assert_eq!(l.lock_for(5), Some(chrono::TimeDelta::minutes(1)));
        assert_eq!(l.lock_for(6), Some(chrono::TimeDelta::minutes(2)));
        assert_eq!(l.lock_for(8), Some(chrono::TimeDelta::minutes(8)));
        assert_eq!(l.lock_for(40), Some(chrono::TimeDelta::days(1)));
        assert_eq!(l.lock_for(u32::MAX), Some(chrono::TimeDelta::days(1)));
    }

    #[test]
    fn addresses_are_trimmed_lower_cased_and_validated_naming_the_field() {
        assert_eq!(
            Email::parse("  Alice.Martin@Fund.Example ")
                .unwrap()
                .as_str(),
            "alice.martin@fund.example"
        );
        for bad in [
            "",
            "alice",
            "alice@",
            "@fund.example",
            "alice@localhost",
            "a b@c.d",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad}");
        }
        let long = format!("{}@fund.example", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
        let e = Email::parse("jo.ann-lee@fund.example").unwrap();
        assert!(e.hints().contains(&"fund"));
        assert!(e.hints().contains(&"ann"));
    }
}
