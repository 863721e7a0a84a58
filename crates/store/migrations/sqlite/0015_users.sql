-- Users of an organization: an e-mail address (the login name, unique
-- among users not deleted, across organizations, since logging in names no
-- organization), a role and an argon2id password hash. Deleted users keep
-- their row so the audit trail's `user:<id>` still names someone.
CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    org_id         BLOB NOT NULL REFERENCES organizations (id),
    email          TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'compliance', 'auditor')),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    deleted_at     TEXT,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_login_at  TEXT
);
CREATE UNIQUE INDEX users_email ON users (email) WHERE deleted_at IS NULL;
CREATE INDEX users_org ON users (org_id, id);

-- A login's session: the family of its refresh tokens, the client that
-- opened it (user-agent family, network) and its end.
CREATE TABLE sessions (
    id              BLOB PRIMARY KEY NOT NULL,
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    user_id         BLOB NOT NULL REFERENCES users (id),
    agent           TEXT NOT NULL,
    network         TEXT NOT NULL,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at      TEXT NOT NULL,
    revoked_at      TEXT,
    revoked_reason  TEXT
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

-- Every refresh token a session issued, by digest: spent ones stay so that
-- presenting one again is recognised as a replay.
CREATE TABLE refresh_tokens (
    digest      TEXT PRIMARY KEY NOT NULL,
    session_id  BLOB NOT NULL REFERENCES sessions (id),
    generation  INTEGER NOT NULL CHECK (generation >= 1),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    spent_at    TEXT,
    UNIQUE (session_id, generation)
);

-- Keys signing access tokens: only the kid and dates; the key itself is
-- derived from the server secret and the kid.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    retired_at  TEXT
);

-- A key created by a user acts as that user.
ALTER TABLE api_keys ADD COLUMN user_id BLOB REFERENCES users (id);

ALTER TABLE organizations ADD COLUMN session_fingerprint TEXT NOT NULL DEFAULT 'lenient'
    CHECK (session_fingerprint IN ('strict', 'lenient', 'off'));

-- The request an audited change came in, and the client's address.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
ALTER TABLE audit_log ADD COLUMN ip TEXT;
CREATE INDEX audit_log_org_action ON audit_log (org_id, action, seq);
