-- Organizations, API keys and the hash-chained audit trail.
CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES organizations (id),
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'compliance', 'auditor')),
    label         TEXT,
    prefix        TEXT NOT NULL,
    digest        TEXT NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    id          UUID NOT NULL UNIQUE,
    org_id      UUID NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);

-- The head of the chain: one row, locked FOR UPDATE by each append, so appends
-- from concurrent transactions are serialized in commit order.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
