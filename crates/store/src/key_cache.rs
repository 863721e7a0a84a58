//! Verified API keys, cached in-process so authenticating a request costs no
//! database round trip.
//!
//! A revocation must still stop a key promptly on every process:
//! - the revoking process drops the entry as soon as its transaction commits;
//! - on PostgreSQL the revocation also sends `NOTIFY rwa_api_keys` (delivered
//!   at commit) and every process's listener drops the entry;
//! - while a process's listener is not connected it may have missed a
//!   notification, so the cache is bypassed (every lookup reads the database)
//!   and emptied when the listener comes back;
//! - a lookup that raced an invalidation (read the row before the revocation,
//!   finished after it) does not store what it read: every invalidation bumps
//!   a generation that the lookup checks before inserting.
//!
//! Entries also expire after [`TTL`], a backstop only. SQLite is one process,
//! so its cache is always live. Misses are not cached: random keys cannot
//! fill the cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use moka::sync::Cache;
use rwa_domain::api_key::StoredCredential;

/// Longest an entry lives without being used to authenticate again.
pub(crate) const TTL: Duration = Duration::from_secs(60);
/// The PostgreSQL channel revocations are announced on.
pub(crate) const CHANNEL: &str = "rwa_api_keys";
const CAPACITY: u64 = 100_000;

pub(crate) struct KeyCache {
    entries: Cache<String, StoredCredential>,
    generation: AtomicU64,
    live: AtomicBool,
}

impl KeyCache {
    /// A cache that is live from the start (SQLite) or once a listener says so.
    pub(crate) fn new(live: bool) -> Arc<Self> {
        Arc::new(Self {
            entries: Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(TTL)
                .build(),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(live),
        })
    }

    /// The cached credential for `digest`, if the cache may be trusted now.
    pub(crate) fn get(&self, digest: &str) -> Option<StoredCredential> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.get(digest)
    }

    /// The generation to pass to [`KeyCache::insert`] after reading the database.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Stores a credential read from the database, unless an invalidation
    /// happened since `generation` was taken, or the key is revoked.
    pub(crate) fn insert(&self, digest: &str, credential: &StoredCredential, generation: u64) {
        if credential.key.revoked_at.is_some() || !self.live.load(Ordering::Acquire) {
            return;
        }
        if self.generation.load(Ordering::Acquire) == generation {
            self.entries.insert(digest.to_owned(), credential.clone());
        }
    }

    /// Notes a use of the key so the cached copy does not ask to be touched again.
    pub(crate) fn touched(&self, digest: &str, at: DateTime<Utc>) {
        if let Some(mut credential) = self.entries.get(digest) {
            credential.key.last_used_at = Some(at);
            self.entries.insert(digest.to_owned(), credential);
        }
    }

    /// Drops one key (revoked here or announced by another process).
    pub(crate) fn invalidate(&self, digest: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(digest);
    }

    /// Trusts the cache again (listener up) or bypasses it (listener down);
    /// either way it starts empty.
    pub(crate) fn set_live(&self, live: bool) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.live.store(live, Ordering::Release);
        self.entries.invalidate_all();
    }
}

/// Follows revocations announced by every process on PostgreSQL. Runs for
/// the life of the store; reconnects after a lost connection.
pub(crate) async fn listen(pool: sqlx::PgPool, cache: Arc<KeyCache>) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect_with(&pool).await?;
            l.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        };
        let mut listener = match listener.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "API-key revocations unavailable; authenticating from the database");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        cache.set_live(true);
        while let Ok(Some(n)) = listener.try_recv().await {
            cache.invalidate(n.payload());
        }
        // The connection was lost: anything may have been missed.
        cache.set_live(false);
        tracing::warn!("API-key revocation listener lost its connection; reconnecting");
    }
}
