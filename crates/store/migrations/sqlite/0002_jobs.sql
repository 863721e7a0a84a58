-- The durable job queue (crates/jobs): jobs live beside the business rows so an
-- enqueue is part of the caller's transaction. Times are the database's clock.
CREATE TABLE jobs (
    id                BLOB PRIMARY KEY NOT NULL,
    org_id            BLOB,
    queue             TEXT NOT NULL,
    kind              TEXT NOT NULL,
    args              TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (state IN ('scheduled', 'available', 'running', 'retryable', 'completed', 'discarded', 'cancelled')),
    priority          INTEGER NOT NULL DEFAULT 0,
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL CHECK (max_attempts > 0),
    scheduled_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    attempted_at      TEXT,
    attempted_by      TEXT,
    lease_expires_at  TEXT,
    errors            TEXT NOT NULL DEFAULT '[]',
    unique_key        TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finalized_at      TEXT
);
-- Claiming: the next runnable jobs of a queue, most urgent (lowest priority
-- number) and oldest first.
CREATE INDEX jobs_claim ON jobs (queue, priority, scheduled_at, id)
    WHERE state IN ('scheduled', 'available', 'retryable');
-- One active job per unique key; finished jobs free the key.
CREATE UNIQUE INDEX jobs_unique_active ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'available', 'running', 'retryable');
-- The rescuer's scan of expired leases and the pruner's of finished jobs.
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX jobs_finalized ON jobs (finalized_at)
    WHERE state IN ('completed', 'discarded', 'cancelled');
-- Listing by queue and state for operators.
CREATE INDEX jobs_list ON jobs (org_id, queue, state, id);

-- Periodic jobs: the last period each schedule fired, so several processes
-- fire it once.
CREATE TABLE job_schedules (
    name        TEXT PRIMARY KEY NOT NULL,
    last_period TEXT NOT NULL
);

-- Per-queue rate limits that hold across processes: jobs started per queue in
-- each window (window_start in Unix seconds, aligned to the limit's interval).
CREATE TABLE job_rate_windows (
    queue         TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    used          INTEGER NOT NULL,
    PRIMARY KEY (queue, window_start)
);
