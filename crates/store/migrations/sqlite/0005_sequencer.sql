-- Audit entries and events are inserted unstamped by the transaction of the
-- change they describe, and stamped after commit by one sequencer (see
-- crates/store/src/sequencer.rs): `seq`, and for audit entries the hash chain.
-- `pos` (the rowid) orders the unstamped rows. Readers see stamped rows only.
-- SQLite cannot change a primary key in place, so both tables are rebuilt.
CREATE TABLE audit_log_next (
    pos         INTEGER PRIMARY KEY,
    seq         INTEGER UNIQUE,
    id          BLOB NOT NULL UNIQUE,
    org_id      BLOB NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    prev_hash   TEXT,
    hash        TEXT,
    CHECK (
        (seq IS NULL AND prev_hash IS NULL AND hash IS NULL)
        OR (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL)
    )
);
INSERT INTO audit_log_next (pos, seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash)
SELECT seq, seq, id, org_id, actor, action, target, data, created_at, prev_hash, hash FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_next RENAME TO audit_log;
CREATE INDEX audit_log_org ON audit_log (org_id, seq);
CREATE INDEX audit_log_pending ON audit_log (pos) WHERE seq IS NULL;

CREATE TABLE events_next (
    pos         INTEGER PRIMARY KEY,
    seq         INTEGER UNIQUE,
    id          BLOB NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    org_id      BLOB NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    data        TEXT NOT NULL
);
INSERT INTO events_next (pos, seq, id, type, org_id, created_at, data)
SELECT seq, seq, id, type, org_id, created_at, data FROM events;
DROP TABLE events;
ALTER TABLE events_next RENAME TO events;
CREATE INDEX events_org ON events (org_id, seq);
CREATE INDEX events_pending ON events (pos) WHERE seq IS NULL;

-- The next event seq is max(seq) + 1, read by the sequencer in its transaction.
DROP TABLE event_head;
