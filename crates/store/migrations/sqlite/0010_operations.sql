-- Issuer operations (rwa_domain::operation) and idempotency keys
-- (rwa_domain::idempotency).

-- Whether a flow's per-organization job is running (identity sync,
-- operations): a change sets it and enqueues the job only when it was not,
-- holding the flow's advisory lock shared; the job clears it, holding the
-- lock exclusively, only when it finds nothing left (store/sync_flag.rs).
CREATE TABLE flow_syncs (
    flow    TEXT NOT NULL,
    org_id  BLOB NOT NULL REFERENCES organizations (id),
    active  INTEGER NOT NULL CHECK (active IN (0, 1)),
    PRIMARY KEY (flow, org_id)
);
INSERT INTO flow_syncs (flow, org_id, active) SELECT 'identity', org_id, active FROM identity_sync;
DROP TABLE identity_sync;

-- A client's key, claimed by the first request (`in_flight` until
-- `locked_until`, after which a crashed holder's claim may be taken over)
-- and `done` with the response in the same transaction as the change.
CREATE TABLE idempotency_keys (
    org_id           BLOB NOT NULL REFERENCES organizations (id),
    key              TEXT NOT NULL,
    fingerprint      TEXT NOT NULL,
    claim            BLOB NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('in_flight', 'done')),
    locked_until     TEXT NOT NULL,
    response_status  INTEGER,
    response_body    TEXT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (org_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Mints above this many base units wait for a second actor (NULL: none).
ALTER TABLE tokens ADD COLUMN four_eyes_mint_threshold TEXT;

CREATE TABLE operations (
    id                BLOB PRIMARY KEY NOT NULL,
    org_id            BLOB NOT NULL REFERENCES organizations (id),
    token_id          BLOB REFERENCES tokens (id),
    kind              TEXT NOT NULL CHECK (kind IN ('mint', 'burn', 'freeze', 'unfreeze',
                          'forced_transfer', 'pause', 'unpause', 'recovery')),
    status            TEXT NOT NULL CHECK (status IN ('awaiting_approval', 'pending', 'submitted',
                          'confirmed', 'settled', 'failed', 'rejected')),
    wallet            TEXT,
    counterparty      TEXT,
    investor_id       BLOB REFERENCES investors (id),
    amount            TEXT,
    reason            TEXT,
    -- A mint to an investor holding nothing: counts against max holders
    -- until it is final.
    new_holder        INTEGER NOT NULL DEFAULT 0,
    requested_by      TEXT NOT NULL,
    approved_by       TEXT,
    rejected_by       TEXT,
    rejection_reason  TEXT,
    -- The batch carrying it (the last one); NULL while waiting for one.
    batch_id          BLOB,
    -- After its batch failed: carried alone next time.
    isolate           INTEGER NOT NULL DEFAULT 0,
    error             TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((kind = 'recovery') = (token_id IS NULL))
);
CREATE INDEX operations_org ON operations (org_id, id);
CREATE INDEX operations_todo ON operations (org_id, id) WHERE status = 'pending' AND batch_id IS NULL;
CREATE INDEX operations_batch ON operations (batch_id) WHERE batch_id IS NOT NULL;
CREATE INDEX operations_open_mints ON operations (token_id, investor_id)
    WHERE kind = 'mint' AND status IN ('awaiting_approval', 'pending', 'submitted', 'confirmed');

-- Operations of one token and kind carried by one managed transaction (key
-- `operation-batch:<id>`), or one token's part of a recovery
-- (`recovery_of`). The transaction's state is mirrored here and onto the
-- operations at every step of the operations job.
CREATE TABLE operation_batches (
    id            BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL REFERENCES organizations (id),
    token_id      BLOB NOT NULL REFERENCES tokens (id),
    kind          TEXT NOT NULL,
    recovery_of   BLOB REFERENCES operations (id),
    tx_id         BLOB,
    tx_state      TEXT NOT NULL DEFAULT 'pending',
    tx_hash       TEXT,
    block_number  INTEGER,
    error         TEXT,
    open          INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT
);
CREATE INDEX operation_batches_open ON operation_batches (org_id, created_at) WHERE open;
CREATE INDEX operation_batches_recovery ON operation_batches (recovery_of) WHERE recovery_of IS NOT NULL;
