-- Organizations, API keys and the hash-chained audit trail.
-- Timestamps are TEXT in RFC 3339 (UTC, 'Z'), written by the database clock.
CREATE TABLE organizations (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE api_keys (
    id            BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL REFERENCES organizations (id),
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'compliance', 'auditor')),
    label         TEXT,
    prefix        TEXT NOT NULL,
    digest        TEXT NOT NULL UNIQUE,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_used_at  TEXT,
    revoked_at    TEXT
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    id          BLOB NOT NULL UNIQUE,
    org_id      BLOB NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

-- The head of the chain: one row, updated in the same transaction as each append,
-- so appends are serialized (SQLite has one writer anyway).
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
