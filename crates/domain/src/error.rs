//! Errors that cross port boundaries. Adapters translate their own errors (a
//! `sqlx::Error`, an HTTP failure) into these, so callers can decide on meaning
//! (not found, conflict, unavailable) without knowing the adapter.

use thiserror::Error;

/// What a repository port can fail with.
#[derive(Clone, Debug, Error)]
pub enum RepoError {
    /// The row does not exist, or belongs to another organization.
    #[error("not found")]
    NotFound,
    /// A uniqueness or state rule refused the write.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backing store cannot be reached right now; retrying may succeed.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or corrupted data. The message is for logs only.
    #[error("storage error: {0}")]
    Internal(String),
}

/// Result alias for repository ports.
pub type RepoResult<T> = Result<T, RepoError>;

/// A value failed validation; `field` names what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The input field, as the caller named it (`name`, `role`, ...).
    pub field: String,
    /// What is wrong with it, phrased as what to fix.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks a display name (of an organization, a token, ...) for `field`:
/// trimmed, 1 to `max_chars` characters, no control characters. Returns the
/// trimmed name.
pub(crate) fn display_name(
    raw: &str,
    field: &str,
    max_chars: usize,
) -> Result<String, ValidationError> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    // The limit counts what was sent, surrounding spaces included, as the
    // API's declared `maxLength` does; the stored name is trimmed.
    if raw.chars().count() > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}
