//! The sequencer: numbers committed events and chains committed audit entries.
//!
//! A write appends its audit entry and events unstamped, in one insert each,
//! and takes no shared lock, so writers never queue behind one another's
//! commits. After commit it wakes this process's sequencer, which in one
//! transaction of its own locks the audit chain's head row, then gives every
//! committed unstamped event the next `seq` and every committed unstamped
//! audit entry the next `seq`, `prev_hash` and `hash`, in insertion order.
//!
//! Why this keeps both guarantees without a lock held by requests:
//! - Only committed rows are visible to the stamping transaction, and stamping
//!   transactions run one at a time (the head row lock on PostgreSQL, across
//!   processes; SQLite has one writer). A number is therefore only ever given
//!   after every smaller number is committed, so a reader of "after `seq`"
//!   never skips a row that commits late: that row gets a later number. A
//!   request acknowledged before another was sent is numbered before it.
//! - Readers (`EventLog::list`, `AuditTrail::list`, `rwa audit verify`) see
//!   stamped rows only, and stamp what is pending first, so a caller reads its
//!   own writes.
//! - Nothing is lost if the process dies between a commit and its stamping:
//!   the rows are committed, and the next stamping in any process (after a
//!   wake, on the poll below, or before a read) takes them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rwa_domain::RepoResult;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::connect::{Pools, in_write_tx};

/// Rows of each kind stamped per transaction.
const BATCH: i64 = 1_000;

/// How often the sequencer looks for rows nobody woke it for: rows committed
/// by another process that died before stamping, or by a CLI command.
const POLL: Duration = Duration::from_secs(1);

/// This process's sequencer task and the signal that wakes it.
#[derive(Default)]
pub(crate) struct Sequencer {
    wake: Arc<Notify>,
    task: OnceLock<JoinHandle<()>>,
    /// Counts events this process numbered: what the notification
    /// deliveries wait on instead of polling.
    stamped: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Sequencer {
    /// Stops the task (at any point: an interrupted stamping rolls back).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// What the stamping transaction needs: the pools.
#[derive(Clone)]
pub(crate) struct Stamper {
    pub(crate) pools: Pools,
    stamped: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Stamper {
    /// The dispatch macros wake the sequencer after a commit; stamping itself
    /// has nothing to wake.
    pub(crate) fn after_commit(&self) {}

    /// Stamps everything pending, in batches; answers how many rows.
    pub(crate) async fn stamp_all(&self) -> RepoResult<u64> {
        let mut total = 0;
        loop {
            let (events, entries) = self.stamp_batch().await?;
            if events > 0 {
                self.stamped.send_modify(|n| *n += events);
            }
            total += events + entries;
            if events < BATCH as u64 && entries < BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn stamp_batch(&self) -> RepoResult<(u64, u64)> {
        in_write_tx!(self, |tx, sql, audit, events| {
            // The head row lock comes first: it is what makes stamping
            // transactions take turns on PostgreSQL.
            let head = audit::lock_audit_head(&mut tx).await.db()?;
            let numbered = events::number_pending_events(&mut tx, BATCH).await.db()?;
            let pending = audit::pending_audit(&mut tx, BATCH).await.db()?;
            if !pending.is_empty() {
                let (stamps, head) = crate::audit::chain_pending(head, &pending);
                sql::write_audit_stamps(&mut tx, &stamps).await.db()?;
                audit::set_audit_head(&mut tx, &head).await.db()?;
            }
            Ok::<_, rwa_domain::RepoError>((numbered, pending.len() as u64))
        })
    }
}

pub(crate) mod sqlite {
    pub(crate) use crate::audit::stamp::sqlite as write_audit_stamps;
}

pub(crate) mod postgres {
    pub(crate) use crate::audit::stamp::postgres as write_audit_stamps;
}

impl crate::Store {
    /// Stamps every committed audit entry and event that is not stamped yet
    /// (see the module header); answers how many rows it stamped. Readers call
    /// it first; so does `rwa audit verify`.
    pub async fn stamp_pending(&self) -> RepoResult<u64> {
        self.stamper().stamp_all().await
    }

    fn stamper(&self) -> Stamper {
        Stamper {
            pools: self.pools.clone(),
            stamped: self.sequencer.stamped.clone(),
        }
    }

    /// Changes whenever this process numbers events (a count): the
    /// notification deliveries wake on it. Events numbered by another
    /// process are not signalled here; readers poll for those.
    pub fn events_numbered(&self) -> tokio::sync::watch::Receiver<u64> {
        self.sequencer.stamped.subscribe()
    }

    /// Called after every write commit: wakes this process's sequencer,
    /// starting it on first use (CLI commands that never write never start it).
    pub(crate) fn after_commit(&self) {
        let seq = &self.sequencer;
        seq.wake.notify_one();
        if seq.task.get().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let (stamper, wake) = (self.stamper(), seq.wake.clone());
            seq.task.get_or_init(|| runtime.spawn(run(stamper, wake)));
        }
    }
}

async fn run(stamper: Stamper, wake: Arc<Notify>) {
    loop {
        if let Err(e) = stamper.stamp_all().await {
            // Nothing is lost: the rows stay pending until the next attempt.
            tracing::warn!(error = %e, "stamping audit entries and events failed; will retry");
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}
