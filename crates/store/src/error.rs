//! Translation of sqlx errors into meanings callers can act on.

use rwa_domain::RepoError;
use thiserror::Error;

/// Failures opening or migrating the database.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The URL is neither `sqlite://…` nor `postgres://…`, or does not parse.
    #[error("RWA_DATABASE_URL: {0}")]
    InvalidUrl(String),
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed; the database is left at the last applied version.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Maps a sqlx error to the port error with the same meaning.
pub(crate) fn repo_error(e: sqlx::Error) -> RepoError {
    match &e {
        sqlx::Error::RowNotFound => RepoError::NotFound,
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            RepoError::Conflict(db.message().to_owned())
        }
        // A missing parent row: the caller referred to something that does not exist.
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => RepoError::NotFound,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => RepoError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => {
            RepoError::Unavailable(db.message().to_owned())
        }
        _ => RepoError::Internal(e.to_string()),
    }
}

/// SQLSTATE classes and SQLite codes that mean "try again later": PostgreSQL
/// connection exceptions (08), insufficient resources (53), operator intervention
/// (57, e.g. admin shutdown); SQLite BUSY (5) and LOCKED (6).
fn is_transient(code: Option<&str>) -> bool {
    match code {
        Some(c) if c.len() == 5 => matches!(&c[..2], "08" | "53" | "57"),
        Some("5" | "6") => true,
        _ => false,
    }
}

/// `.db()` turns a sqlx result into a port result.
pub(crate) trait DbResult<T> {
    fn db(self) -> Result<T, RepoError>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, RepoError> {
        self.map_err(repo_error)
    }
}
