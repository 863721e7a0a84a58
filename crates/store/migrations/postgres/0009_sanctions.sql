-- Sanctions lists (rwa_domain::sanctions), platform-wide. Every load is a
-- version (content hash, entry count, time); `sanctions_lists` names each
-- list's current version, and only the current version's entries are kept.
-- A load is one transaction: a malformed file never reaches here.
CREATE TABLE sanctions_versions (
    id            UUID PRIMARY KEY,
    list          TEXT NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('ofac-sdn', 'csv')),
    content_hash  TEXT NOT NULL,
    entries       BIGINT NOT NULL,
    loaded_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sanctions_versions_list ON sanctions_versions (list, loaded_at);

CREATE TABLE sanctions_lists (
    list        TEXT PRIMARY KEY,
    version_id  UUID NOT NULL REFERENCES sanctions_versions (id)
);

-- One row per entry; aliases and addresses (lower-case hex) as JSON arrays.
CREATE TABLE sanctions_entries (
    version_id  UUID NOT NULL REFERENCES sanctions_versions (id),
    reference   TEXT NOT NULL,
    name        TEXT NOT NULL,
    aliases     TEXT NOT NULL,
    addresses   TEXT NOT NULL,
    programs    TEXT NOT NULL,
    PRIMARY KEY (version_id, reference)
);

-- Each investor's latest screening: status, matches (list data and scores
-- only, never the investor's name), the list versions screened against.
CREATE TABLE investor_screenings (
    investor_id  UUID PRIMARY KEY REFERENCES investors (id),
    org_id       UUID NOT NULL REFERENCES organizations (id),
    status       TEXT NOT NULL CHECK (status IN ('clear', 'possible_match', 'hit')),
    matches      TEXT NOT NULL,
    lists        TEXT NOT NULL,
    screened_at  TIMESTAMPTZ NOT NULL
);
