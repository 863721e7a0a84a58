//! The queue's SQL, written once and rendered per dialect. The only
//! differences between SQLite and PostgreSQL are the clock expression, "now
//! plus n seconds", the claim statement (PostgreSQL locks with `FOR UPDATE SKIP
//! LOCKED`; SQLite's single writer already serializes claims) and how a JSON
//! array grows.

/// Dialect fragments.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dialect {
    pub(crate) postgres: bool,
}

pub(crate) const COLUMNS: &str = "id, org_id, queue, kind, args, state, priority, attempt, max_attempts, \
     scheduled_at, attempted_at, attempted_by, lease_expires_at, errors, unique_key, created_at, finalized_at";

const RUNNABLE: &str = "('scheduled', 'available', 'retryable')";
const ACTIVE: &str = "('scheduled', 'available', 'running', 'retryable')";
const FINAL: &str = "('completed', 'discarded', 'cancelled')";

/// PostgreSQL: one job's enqueue as two common table expressions for a
/// caller's single-statement unit of work: `job` (the insert, skipped when its
/// unique key is active, as in [`Dialect::enqueue`]) and `job_wake` (the
/// queue's `NOTIFY`, delivered at commit; the caller's final `SELECT` must
/// read it, or PostgreSQL never evaluates it). Its parameters are `$first`
/// to `$first + 8`, in the order `bind_enqueue_cte` binds them.
pub(crate) fn enqueue_cte_postgres(first: usize) -> String {
    let p: Vec<String> = (first..first + 9).map(|i| format!("${i}")).collect();
    format!(
        "job AS (INSERT INTO jobs (id, queue, kind, args, state, priority, max_attempts, scheduled_at, unique_key, org_id) \
         VALUES ({id}, {queue}, {kind}, {args}, CASE WHEN {delay} > 0 THEN 'scheduled' ELSE 'available' END, \
         {priority}, {max_attempts}, (now() + make_interval(secs => {delay})), {unique_key}, {org_id}) \
         ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN {ACTIVE} DO NOTHING), \
         job_wake AS (SELECT pg_notify('rwa_jobs', {queue}))",
        id = p[0],
        queue = p[1],
        kind = p[2],
        args = p[3],
        delay = p[4],
        priority = p[5],
        max_attempts = p[6],
        unique_key = p[7],
        org_id = p[8],
    )
}

impl Dialect {
    pub(crate) fn now(self) -> &'static str {
        if self.postgres {
            "now()"
        } else {
            "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')"
        }
    }

    /// The database's now plus the seconds bound at `param` (a float).
    pub(crate) fn later(self, param: &str) -> String {
        if self.postgres {
            format!("(now() + make_interval(secs => {param}))")
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ({param}) || ' seconds')")
        }
    }

    ///
    /// On PostgreSQL the same statement also sends the wake-up `NOTIFY` for
    /// the queue (delivered at commit), saving a round trip per enqueue.
    pub(crate) fn enqueue(self) -> String {
        let insert = format!(
            "INSERT INTO jobs (id, queue, kind, args, state, priority, max_attempts, scheduled_at, unique_key, org_id) \
             VALUES ($1, $2, $3, $4, CASE WHEN $5 > 0 THEN 'scheduled' ELSE 'available' END, $6, $7, {later}, $8, $9) \
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN {ACTIVE} DO NOTHING \
             RETURNING {COLUMNS}",
            later = self.later("$5"),
        );
        if self.postgres {
            format!("WITH ins AS ({insert}) SELECT ins.* FROM ins, pg_notify('rwa_jobs', $2)")
        } else {
            insert
        }
    }

    /// PostgreSQL: many jobs in one statement, one array per column. Rows
    /// whose unique key is active are skipped, as in [`Dialect::enqueue`].
    pub(crate) fn enqueue_many_postgres() -> String {
        format!(
            "INSERT INTO jobs (id, queue, kind, args, state, priority, max_attempts, scheduled_at, unique_key, org_id) \
             SELECT id, queue, kind, args, CASE WHEN delay > 0 THEN 'scheduled' ELSE 'available' END, \
               priority, max_attempts, now() + make_interval(secs => delay), unique_key, org_id \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::int2[], \
               $7::int4[], $8::text[], $9::uuid[]) \
               AS t(id, queue, kind, args, delay, priority, max_attempts, unique_key, org_id) \
             ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND state IN {ACTIVE} DO NOTHING \
             RETURNING {COLUMNS}"
        )
    }

    pub(crate) fn active_by_unique_key(self) -> String {
        format!("SELECT {COLUMNS} FROM jobs WHERE unique_key = $1 AND state IN {ACTIVE}")
    }

    pub(crate) fn notify(self) -> Option<&'static str> {
        self.postgres.then_some("SELECT pg_notify('rwa_jobs', $1)")
    }

    /// Claims up to `$2` runnable jobs of queue `$1` for worker `$3` with a
    /// lease of `$4` seconds.
    pub(crate) fn claim(self) -> String {
        let now = self.now();
        let lease = self.later("$4");
        if self.postgres {
            let qualified = COLUMNS
                .split(", ")
                .map(|c| format!("jobs.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "WITH picked AS MATERIALIZED (\
                   SELECT id FROM jobs WHERE queue = $1 AND state IN {RUNNABLE} AND scheduled_at <= now() \
                   ORDER BY priority, scheduled_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE jobs SET state = 'running', attempt = attempt + 1, attempted_at = now(), \
                   attempted_by = $3, lease_expires_at = {lease} \
                 FROM picked WHERE jobs.id = picked.id RETURNING {qualified}"
            )
        } else {
            format!(
                "UPDATE jobs SET state = 'running', attempt = attempt + 1, attempted_at = {now}, \
                   attempted_by = $3, lease_expires_at = {lease} \
                 WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state IN {RUNNABLE} \
                   AND scheduled_at <= {now} ORDER BY priority, scheduled_at, id LIMIT $2) \
                 RETURNING {COLUMNS}"
            )
        }
    }

    /// Completion, fenced: only the worker holding the lease moves the job.
    pub(crate) fn complete(self) -> String {
        format!(
            "UPDATE jobs SET state = 'completed', finalized_at = {now}, lease_expires_at = NULL \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            now = self.now()
        )
    }

    /// Completion of `n` jobs (`$2`..`$n+1`) held by worker `$1`, fenced.
    pub(crate) fn complete_many(self, n: usize) -> String {
        let ids: Vec<String> = (2..n + 2).map(|i| format!("${i}")).collect();
        format!(
            "UPDATE jobs SET state = 'completed', finalized_at = {now}, lease_expires_at = NULL \
             WHERE id IN ({ids}) AND state = 'running' AND attempted_by = $1 RETURNING id",
            now = self.now(),
            ids = ids.join(", ")
        )
    }

    /// A failed attempt: retryable after `$3` seconds, or discarded when out of
    /// attempts; `$4` is the new errors array. Fenced.
    pub(crate) fn fail(self) -> String {
        format!(
            "UPDATE jobs SET \
               state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END, \
               scheduled_at = CASE WHEN attempt >= max_attempts THEN scheduled_at ELSE {later} END, \
               finalized_at = CASE WHEN attempt >= max_attempts THEN {now} ELSE NULL END, \
               errors = $4, lease_expires_at = NULL \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            later = self.later("$3"),
            now = self.now()
        )
    }

    /// Back to `scheduled` after `$3` seconds without using up the attempt. Fenced.
    pub(crate) fn snooze(self) -> String {
        format!(
            "UPDATE jobs SET state = 'scheduled', scheduled_at = {later}, attempt = attempt - 1, \
               lease_expires_at = NULL \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            later = self.later("$3")
        )
    }

    /// Handed back at shutdown: available again, attempt not counted. Fenced.
    pub(crate) fn hand_back(self) -> String {
        format!(
            "UPDATE jobs SET state = 'available', scheduled_at = {now}, attempt = attempt - 1, \
               lease_expires_at = NULL \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            now = self.now()
        )
    }

    /// Ends a job as `$3` (`cancelled` or `discarded`) with errors `$4`. Fenced.
    pub(crate) fn finish(self) -> String {
        format!(
            "UPDATE jobs SET state = $3, finalized_at = {now}, errors = $4, lease_expires_at = NULL \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            now = self.now()
        )
    }

    pub(crate) fn heartbeat(self) -> String {
        format!(
            "UPDATE jobs SET lease_expires_at = {later} \
             WHERE id = $1 AND state = 'running' AND attempted_by = $2",
            later = self.later("$3")
        )
    }

    fn append_error(self, message: &str) -> String {
        let now = self.now();
        if self.postgres {
            format!(
                "(errors::jsonb || jsonb_build_array(jsonb_build_object(\
                 'attempt', attempt, 'at', to_char({now} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), \
                 'message', {message})))::text"
            )
        } else {
            format!(
                "json_insert(errors, '$[#]', json_object('attempt', attempt, 'at', {now}, 'message', {message}))"
            )
        }
    }

    /// Returns jobs whose lease expired to `retryable` (or `discarded` when out
    /// of attempts), recording the lost attempt.
    pub(crate) fn rescue(self) -> String {
        let now = self.now();
        format!(
            "UPDATE jobs SET \
               state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END, \
               scheduled_at = {now}, \
               finalized_at = CASE WHEN attempt >= max_attempts THEN {now} ELSE NULL END, \
               errors = {append}, lease_expires_at = NULL \
             WHERE state = 'running' AND lease_expires_at < {now} RETURNING id",
            append = self.append_error("'lease expired: the worker stopped heartbeating'")
        )
    }

    /// Deletes up to `$2` jobs finished more than `$1` seconds ago.
    pub(crate) fn prune(self) -> String {
        format!(
            "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN {FINAL} \
             AND finalized_at < {cutoff} ORDER BY finalized_at LIMIT $2)",
            cutoff = self.later("-($1)")
        )
    }

    /// Operator retry: runnable now, with one more attempt if it had none left.
    pub(crate) fn retry_now(self) -> String {
        format!(
            "UPDATE jobs SET state = 'available', scheduled_at = {now}, finalized_at = NULL, \
               max_attempts = CASE WHEN attempt >= max_attempts THEN attempt + 1 ELSE max_attempts END \
             WHERE id = $1 AND state IN ('scheduled', 'retryable', 'completed', 'discarded', 'cancelled') \
             RETURNING {COLUMNS}",
            now = self.now()
        )
    }

    /// Operator cancel of a job that has not finished. A running job's worker
    /// then loses its fence: its result is dropped.
    pub(crate) fn cancel_now(self) -> String {
        format!(
            "UPDATE jobs SET state = 'cancelled', finalized_at = {now}, lease_expires_at = NULL \
             WHERE id = $1 AND state IN {ACTIVE} RETURNING {COLUMNS}",
            now = self.now()
        )
    }

    pub(crate) fn get(self) -> String {
        format!("SELECT {COLUMNS} FROM jobs WHERE id = $1")
    }

    pub(crate) fn list(self) -> String {
        format!(
            "SELECT {COLUMNS} FROM jobs WHERE ($1 IS NULL OR org_id = $1) AND ($2 IS NULL OR queue = $2) \
             AND ($3 IS NULL OR state = $3) AND ($4 IS NULL OR id > $4) ORDER BY id LIMIT $5"
        )
    }

    /// The current rate window's start (Unix seconds) for an interval of `$2` seconds.
    fn window(self) -> &'static str {
        if self.postgres {
            "(floor(extract(epoch from now()) / $2)::bigint * $2)"
        } else {
            "((CAST(strftime('%s', 'now') AS INTEGER) / $2) * $2)"
        }
    }

    /// Creates queue `$1`'s current window row (interval `$2` seconds).
    pub(crate) fn open_window(self) -> String {
        format!(
            "INSERT INTO job_rate_windows (queue, window_start, used) VALUES ($1, {w}, 0) \
             ON CONFLICT (queue, window_start) DO NOTHING",
            w = self.window()
        )
    }

    /// Reads the current window's use, locking the row (PostgreSQL) until the
    /// transaction ends.
    pub(crate) fn lock_window(self) -> String {
        format!(
            "SELECT window_start, used FROM job_rate_windows WHERE queue = $1 AND window_start = {w}{lock}",
            w = self.window(),
            lock = if self.postgres { " FOR UPDATE" } else { "" }
        )
    }

    /// Adds `$3` (possibly negative) to a window's use.
    pub(crate) fn use_window(self) -> &'static str {
        "UPDATE job_rate_windows SET used = used + $3 WHERE queue = $1 AND window_start = $2"
    }

    /// Drops windows that ended more than an hour ago.
    pub(crate) fn prune_windows(self) -> String {
        let now = if self.postgres {
            "extract(epoch from now())::bigint"
        } else {
            "CAST(strftime('%s', 'now') AS INTEGER)"
        };
        format!("DELETE FROM job_rate_windows WHERE window_start < {now} - 3600")
    }

    /// Per queue and state: count, and the age in seconds of the oldest runnable job.
    pub(crate) fn stats(self) -> String {
        let age = if self.postgres {
            "EXTRACT(EPOCH FROM (now() - MIN(scheduled_at)))::float8".to_owned()
        } else {
            "(julianday('now') - julianday(MIN(scheduled_at))) * 86400.0".to_owned()
        };
        format!(
            "SELECT queue, state, COUNT(*) AS count, \
               CASE WHEN state = 'available' THEN {age} ELSE NULL END AS oldest_seconds \
             FROM jobs GROUP BY queue, state"
        )
    }
}
