-- On-chain identity (rwa_domain::identity). One row per wallet the
-- organization's identity registry holds or should hold: the entry wanted
-- (`want_*`; `want_present` false once the wallet should be gone), the entry
-- the chain holds in a settled transaction (`chain_*`, NULL when none), and
-- the batch carrying the difference while one is open. A row is `pending`
-- while the two differ; a wallet never registered and no longer wanted has no
-- row.
CREATE TABLE identity_registrations (
    org_id          BLOB NOT NULL REFERENCES organizations (id),
    address         TEXT NOT NULL CHECK (length(address) = 42 AND lower(address) = address),
    investor_id     BLOB NOT NULL REFERENCES investors (id),
    want_present    INTEGER NOT NULL CHECK (want_present IN (0, 1)),
    want_country    INTEGER NOT NULL,
    want_expires    INTEGER NOT NULL,
    chain_investor  BLOB,
    chain_country   INTEGER,
    chain_expires   INTEGER,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'registered', 'failed', 'removed')),
    batch_id        BLOB,
    -- After a batch failed: carried alone next time, so one bad wallet
    -- cannot hold back the others.
    isolate         INTEGER NOT NULL DEFAULT 0 CHECK (isolate IN (0, 1)),
    error           TEXT,
    updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (org_id, address)
);
-- Every lookup names the organization too: with the investor in the same
-- index, neither backend is tempted to walk the organization's primary key.
CREATE INDEX identity_registrations_investor ON identity_registrations (org_id, investor_id);
-- Wallets looked up by investor within the organization (0007's index has
-- the investor alone, which SQLite passes over for the primary key's
-- organization prefix, reading every wallet of the organization).
CREATE INDEX investor_wallets_org_investor ON investor_wallets (org_id, investor_id, created_at);
CREATE INDEX identity_registrations_todo ON identity_registrations (org_id)
    WHERE status = 'pending' AND batch_id IS NULL;

-- Registry changes of one kind carried by one managed transaction (key
-- `identity-batch:<id>`); `items` is the JSON list of wallets and entries.
CREATE TABLE identity_batches (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES organizations (id),
    action       TEXT NOT NULL CHECK (action IN ('register', 'update', 'remove')),
    items        TEXT NOT NULL,
    tx_id        BLOB,
    state        TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'settled', 'failed')),
    error        TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);
CREATE INDEX identity_batches_open ON identity_batches (org_id, created_at) WHERE state = 'open';

-- Whether an organization's identity sync job is running: a change sets it
-- and enqueues the job only when it was not, under the row's lock; the job
-- clears it, under the same lock, only when it finds nothing left to do.
CREATE TABLE identity_sync (
    org_id  BLOB PRIMARY KEY NOT NULL REFERENCES organizations (id),
    active  INTEGER NOT NULL CHECK (active IN (0, 1))
);

-- Signatures of accepted KYC provider callbacks (SHA-256 of the matching
-- `v1=`), written in the decision's own transaction: the same signature twice
-- is a replay. Older than the signature tolerance they can be pruned.
CREATE TABLE kyc_callback_receipts (
    digest        TEXT PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL REFERENCES organizations (id),
    investor_id   BLOB NOT NULL REFERENCES investors (id),
    provider_ref  TEXT NOT NULL,
    received_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
