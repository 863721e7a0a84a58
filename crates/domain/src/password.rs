//! Users' passwords: the policy a new password must meet, and its storage as
//! an argon2id hash (PHC string, random salt, the crate's default cost:
//! 19 MiB, two passes), the only form in which a password is kept.
//!
//! The policy is a length (12 to 256 characters; the upper bound keeps a
//! hash from being an easy way to burn CPU) and zxcvbn's estimate of how
//! many guesses the password would take, with its own dictionaries, keyboard
//! patterns and the user's e-mail address as hints: a score under 3 (fewer
//! than about 10^8 guesses) is refused with zxcvbn's reason.

use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::ValidationError;

/// Fewest characters accepted.
pub const MIN_CHARS: usize = 12;
/// Most characters accepted.
pub const MAX_CHARS: usize = 256;
/// Lowest zxcvbn score accepted (0 to 4).
pub const MIN_SCORE: u8 = 3;

/// A password as received. Its `Debug` prints nothing of it.
#[derive(Clone)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

impl Password {
    /// Wraps a presented password (at login: no policy, any length is
    /// compared, up to the policy's bound, beyond which none can match).
    pub fn presented(raw: &str) -> Self {
        Self(raw.to_owned())
    }

    /// Checks a new password against the policy; `hints` (the user's e-mail
    /// address and its parts) count against it. Errors name `password`.
    pub fn new(raw: &str, hints: &[&str]) -> Result<Self, ValidationError> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at least {MIN_CHARS} characters"),
            ));
        }
        if chars > MAX_CHARS {
            return Err(ValidationError::new(
                "password",
                format!("must be at most {MAX_CHARS} characters"),
            ));
        }
        let estimate = zxcvbn::zxcvbn(raw, hints);
        if (estimate.score() as u8) < MIN_SCORE {
            let why = estimate
                .feedback()
                .and_then(|f| {
                    f.warning()
                        .map(|w| w.to_string())
                        .or_else(|| f.suggestions().first().map(|s| s.to_string()))
                })
                .unwrap_or_else(|| "it would be guessed too quickly".to_owned());
            return Err(ValidationError::new(
                "password",
                format!("is too weak: {why}"),
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The argon2id hash to store.
    pub fn hash(&self) -> PasswordHash {
        let phc = Argon2::default()
            .hash_password(self.0.as_bytes())
            .expect("argon2 with its default parameters and a generated salt cannot fail");
        PasswordHash(phc.to_string())
    }

    /// Whether this password is the one `stored` was made from. A stored
    /// value that is not a valid hash matches nothing.
    pub fn matches(&self, stored: &PasswordHash) -> bool {
        if self.0.chars().count() > MAX_CHARS {
            return false;
        }
        Argon2::default()
            .verify_password(self.0.as_bytes(), stored.0.as_str())
            .is_ok()
    }

    /// Spends the time of one verification against a hash no password
    /// matches, so that an unknown e-mail address answers as slowly as a
    /// wrong password.
    pub fn burn_one_verification(&self) {
        static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
        let dummy = DUMMY.get_or_init(|| Password("rwa: no user has this".into()).hash());
        let _ = self.matches(dummy);
    }
}

/// A stored argon2id hash in PHC format (`$argon2id$v=19$m=…`).
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored hash.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, to store.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_long_and_guessable_passwords_are_refused_naming_the_field() {
        let short = Password::new("Tr0ub4dor&3", &[]).unwrap_err();
        assert_eq!(short.field, "password");
        assert!(short.message.contains("at least 12"), "{}", short.message);
        assert!(Password::new(&"x".repeat(257), &[]).is_err());
        for weak in [
            "password1234",
            "qwertyuiopas",
            "aaaaaaaaaaaa",
            "123456789012",
        ] {
            let e = Password::new(weak, &[]).unwrap_err();
            assert!(
                e.message.starts_with("is too weak"),
                "{weak}: {}",
                e.message
            );
        }
        let email = crate::user::Email::parse("alice.martin@fund.example").unwrap();
        assert!(
            Password::new(email.as_str(), &[]).is_ok(),
            "alone it would pass"
        );
        let e = Password::new(email.as_str(), &email.hints()).unwrap_err();
        assert!(
            e.message.starts_with("is too weak"),
            "the e-mail counts against it"
        );
    }

    #[test]
    fn a_strong_password_hashes_to_argon2id_and_verifies_only_itself() {
        let p = Password::new("correct horse battery staple vault", &[]).unwrap();
        let h = p.hash();
        assert!(h.as_str().starts_with("$argon2id$"), "{}", h.as_str());
        assert!(p.matches(&h));
        assert!(!Password::presented("correct horse battery staple").matches(&h));
        assert!(!p.matches(&PasswordHash::from_stored("not a hash".into())));
        assert_ne!(p.hash(), h, "each hash has its own salt");
        assert!(!format!("{p:?}{h:?}").contains("horse"));
    }
}
