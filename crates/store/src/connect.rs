//! Opening the database: URL parsing, pool options, migrations, the health
//! probe, and the dispatch macros the repository implementations use.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use rwa_domain::RepoResult;
use rwa_domain::ports::{DatabaseProbe, PoolStats};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::error::{DbResult, StoreError};

/// Which engine a [`Store`] runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file: single process.
    Sqlite,
    /// A PostgreSQL server: any number of processes.
    Postgres,
}

impl Backend {
    /// Recognises the scheme of a database URL.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    /// `sqlite` or `postgres`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The file of a `sqlite:` URL, or `None` for another backend or an in-memory
/// database: what a process must own alone to run on it.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if Backend::of_url(url) != Some(Backend::Sqlite) {
        return None;
    }
    let opts = SqliteConnectOptions::from_str(url).ok()?;
    let path = opts.get_filename();
    let name = path.to_string_lossy();
    (!name.is_empty() && name != ":memory:" && !url.contains("mode=memory"))
        .then(|| path.to_path_buf())
}

/// How to open the database.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// `sqlite://path` or `postgres://…`.
    pub url: String,
    /// Largest pool (PostgreSQL pool, or SQLite read pool; the SQLite writer is always 1).
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long a caller waits for a free connection before `Unavailable`.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a lock held by another connection.
    pub busy_timeout: Duration,
    /// The keys that seal personal data (investors); without them the
    /// investor repository answers an error.
    pub pii: Option<std::sync::Arc<rwa_domain::pii::PiiKeys>>,
}

impl StoreOptions {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(3),
            busy_timeout: Duration::from_secs(5),
            pii: None,
        }
    }
}

#[derive(Clone)]
pub(crate) struct SqlitePools {
    pub(crate) reader: SqlitePool,
    pub(crate) writer: SqlitePool,
    /// Runs the write units of [`in_write_tx!`] on the writer, batched.
    pub(crate) group: crate::group_commit::GroupCommit,
}

#[derive(Clone)]
pub(crate) enum Pools {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// The database, implementing every repository port of the domain.
pub struct Store {
    pub(crate) pools: Pools,
    max_connections: u32,
    /// The job queue on these pools. Kept here so a repository that enqueues
    /// inside its own transaction can wake this process's workers after the
    /// commit (SQLite has no NOTIFY).
    pub(crate) queue: rwa_jobs::Queue,
    /// Sender locks held by this process (PostgreSQL).
    pub(crate) sender_locks: crate::senders::SenderLocks,
    /// Verified API keys (see `key_cache`).
    pub(crate) key_cache: std::sync::Arc<crate::key_cache::KeyCache>,
    /// The revocation listener, started by the first authentication
    /// (PostgreSQL; CLI processes that never authenticate never start it).
    pub(crate) key_listener: std::sync::OnceLock<tokio::task::JoinHandle<()>>,
    /// Stamps audit entries and events after commit (see `sequencer`).
    pub(crate) sequencer: crate::sequencer::Sequencer,
    /// Seals personal data (see `investors`).
    pub(crate) pii: Option<std::sync::Arc<rwa_domain::pii::PiiKeys>>,
    /// The sanctions lists' current versions, indexed (see `sanctions`).
    pub(crate) sanctions_index: crate::sanctions::IndexCache,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend_kind())
            .finish()
    }
}

impl Store {
    /// Opens (and for SQLite creates) the database. Does not migrate.
    pub async fn connect(opts: &StoreOptions) -> Result<Store, StoreError> {
        let backend = Backend::of_url(&opts.url).ok_or_else(|| {
            StoreError::InvalidUrl("must start with sqlite:// or postgres://".into())
        })?;
        let pools = match backend {
            Backend::Sqlite => Pools::Sqlite(open_sqlite(opts).await?),
            Backend::Postgres => Pools::Postgres(open_postgres(opts).await?),
        };
        let queue = rwa_jobs::Queue::new(job_db(&pools));
        // One SQLite process sees every revocation itself; PostgreSQL trusts
        // the cache only while its revocation listener is connected.
        let key_cache = crate::key_cache::KeyCache::new(backend == Backend::Sqlite);
        Ok(Store {
            pools,
            queue,
            key_cache,
            key_listener: std::sync::OnceLock::new(),
            sequencer: crate::sequencer::Sequencer::default(),
            pii: opts.pii.clone(),
            sanctions_index: Default::default(),
            sender_locks: crate::senders::SenderLocks::default(),
            max_connections: opts.max_connections,
        })
    }

    /// Applies pending migrations. Safe to run concurrently from several
    /// processes: sqlx takes an advisory lock on PostgreSQL, and SQLite's writer
    /// lock serializes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pools {
            Pools::Sqlite(p) => sqlx::migrate!("./migrations/sqlite").run(&p.writer).await?,
            Pools::Postgres(p) => sqlx::migrate!("./migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Which engine this is.
    pub fn backend_kind(&self) -> Backend {
        match self.pools {
            Pools::Sqlite(_) => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// The job queue's view of this database: the same pools, so jobs and
    /// business rows share transactions.
    pub fn job_db(&self) -> rwa_jobs::Db {
        job_db(&self.pools)
    }

    /// The job queue on this database, shared by every caller of this store, so
    /// jobs enqueued by the store's own transactions wake its workers.
    pub fn job_queue(&self) -> rwa_jobs::Queue {
        self.queue.clone()
    }

    /// What SQLite's group committer has done (`None` on PostgreSQL, where
    /// every unit is its own transaction).
    pub fn group_commit_stats(&self) -> Option<crate::GroupCommitStats> {
        match &self.pools {
            Pools::Sqlite(p) => Some(p.group.stats()),
            Pools::Postgres(_) => None,
        }
    }

    /// Wakes this process's workers after a commit that enqueued jobs.
    pub(crate) fn wake_jobs(&self) {
        self.queue.wake();
    }

    /// Releases the sender locks this process holds, then closes every pool,
    /// waiting for checked-out connections to return.
    pub async fn close(&self) {
        if let Some(listener) = self.key_listener.get() {
            listener.abort();
        }
        self.sequencer.stop();
        self.sender_locks.release_all().await;
        match &self.pools {
            Pools::Sqlite(p) => {
                p.group.stop();
                p.reader.close().await;
                p.writer.close().await;
            }
            Pools::Postgres(p) => p.close().await,
        }
    }
}

async fn open_sqlite(opts: &StoreOptions) -> Result<SqlitePools, StoreError> {
    let base = SqliteConnectOptions::from_str(&opts.url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(opts.busy_timeout)
        .log_statements(tracing::log::LevelFilter::Trace);
    if let Some(dir) = Path::new(base.get_filename()).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Connect(sqlx::Error::Io(e)))?;
    }
    // The writer opens first: it creates the file and switches it to WAL, which
    // read-only connections cannot do.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(base.clone().create_if_missing(true))
        .await
        .map_err(StoreError::Connect)?;
    let reader = SqlitePoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .min_connections(opts.min_connections)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(base.read_only(true))
        .await
        .map_err(StoreError::Connect)?;
    let group = crate::group_commit::GroupCommit::start(writer.clone());
    Ok(SqlitePools {
        reader,
        writer,
        group,
    })
}

async fn open_postgres(opts: &StoreOptions) -> Result<PgPool, StoreError> {
    let connect = PgConnectOptions::from_str(&opts.url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
        .application_name("rwa")
        .log_statements(tracing::log::LevelFilter::Trace);
    PgPoolOptions::new()
        .max_connections(opts.max_connections.max(1))
        .min_connections(opts.min_connections)
        .acquire_timeout(opts.acquire_timeout)
        .connect_with(connect)
        .await
        .map_err(StoreError::Connect)
}

/// Runs `$body` against the read pool with `$sql` bound to the calling
/// repository module's statements for the backend (its `sqlite` or `postgres`
/// submodule, see `dialect.rs`).
macro_rules! on_reader {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match &$store.pools {
            $crate::connect::Pools::Sqlite(p) => {
                let $pool = &p.reader;
                use self::sqlite as $sql;
                $body
            }
            $crate::connect::Pools::Postgres(p) => {
                let $pool = p;
                use self::postgres as $sql;
                $body
            }
        }
    };
}

/// Runs `$body` as one unit of work and commits it if `$body` returns `Ok`,
/// then wakes the sequencer (`$store.after_commit()`). `$body` evaluates to a
/// `RepoResult`; an `Err` (or an early `?`) rolls the unit back, and a
/// `return` ends the unit (not the calling function) on both backends.
///
/// On PostgreSQL the unit is its own transaction on a pool connection. On
/// SQLite it is handed to the group committer (`group_commit.rs`), which may
/// run it in a savepoint of a transaction shared with other units: `$body`
/// then runs on another task, so it must own what it uses (`move` semantics;
/// clone borrowed arguments before the macro), and `$tx` is the writer
/// connection wrapped like a transaction. Statements take `&mut $tx` or
/// `&mut *$tx` on both.
///
/// `$sql` binds the calling module's statements; each further name binds the
/// statements of the repository module of that name, for the same backend, so a
/// change that also writes another concept's tables (an audit entry, an event,
/// a job) says which in one place and does it in the same transaction.
macro_rules! in_write_tx {
    ($store:expr, |$tx:ident, $sql:ident $(, $other:ident)*| $body:expr) => {
        match &$store.pools {
            $crate::connect::Pools::Sqlite(p) => {
                #[allow(unused_imports)]
                use $crate::error::DbResult as _;
                let out = p
                    .group
                    .run(move |conn: &mut sqlx::SqliteConnection| -> $crate::group_commit::UnitFuture<'_, _> {
                        Box::pin(async move {
                            #[allow(unused_mut)]
                            let mut $tx = $crate::group_commit::UnitConn(conn);
                            use self::sqlite as $sql;
                            $(use $crate::$other::sqlite as $other;)*
                            $body
                        })
                    })
                    .await?;
                $store.after_commit();
                Ok(out)
            }
            $crate::connect::Pools::Postgres(p) => {
                use $crate::error::DbResult as _;
                let mut $tx = p.begin().await.db()?;
                use self::postgres as $sql;
                $(use $crate::$other::postgres as $other;)*
                // An async block, as SQLite's closure: a `return` in `$body`
                // ends the unit (committing an `Ok`), not the caller.
                #[allow(unused_mut)]
                let out = async { $body }.await?;
                $tx.commit().await.db()?;
                $store.after_commit();
                Ok(out)
            }
        }
    };
}

/// Runs `$body` against the pool that may write (the SQLite writer), outside an
/// explicit transaction: for single statements. `$sql` as in [`on_reader!`].
macro_rules! on_writer {
    ($store:expr, |$pool:ident, $sql:ident| $body:expr) => {
        match &$store.pools {
            $crate::connect::Pools::Sqlite(p) => {
                let $pool = &p.writer;
                use self::sqlite as $sql;
                $body
            }
            $crate::connect::Pools::Postgres(p) => {
                let $pool = p;
                use self::postgres as $sql;
                $body
            }
        }
    };
}

pub(crate) use {in_write_tx, on_reader, on_writer};

#[async_trait]
impl DatabaseProbe for Store {
    async fn ping(&self) -> RepoResult<()> {
        on_reader!(self, |pool, sql| sql::ping(pool).await.db())
    }

    fn pool_stats(&self) -> Vec<PoolStats> {
        let stat = |name, size: u32, idle: usize, max| PoolStats {
            name,
            size,
            idle: idle as u32,
            max,
        };
        match &self.pools {
            Pools::Sqlite(p) => vec![
                stat(
                    "sqlite_reader",
                    p.reader.size(),
                    p.reader.num_idle(),
                    self.max_connections,
                ),
                stat("sqlite_writer", p.writer.size(), p.writer.num_idle(), 1),
            ],
            Pools::Postgres(p) => vec![stat(
                "postgres",
                p.size(),
                p.num_idle(),
                self.max_connections,
            )],
        }
    }

    fn backend(&self) -> &'static str {
        self.backend_kind().as_str()
    }
}

fn job_db(pools: &Pools) -> rwa_jobs::Db {
    match pools {
        Pools::Sqlite(p) => rwa_jobs::Db::Sqlite {
            writer: p.writer.clone(),
            reader: p.reader.clone(),
        },
        Pools::Postgres(p) => rwa_jobs::Db::Postgres(p.clone()),
    }
}

crate::dialect::statements! {
    use sqlx::query;

    pub(crate) async fn ping(pool: &Pool) -> sqlx::Result<()> {
        query("SELECT 1").execute(pool).await.map(|_| ())
    }
}
