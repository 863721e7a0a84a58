-- Transfers between wallets of a token, each checked by the compliance
-- rules before it may settle. Amounts are decimal TEXT (uint256); addresses
-- lower-case hex, as everywhere else.
CREATE TABLE transfers (
    id                BLOB PRIMARY KEY NOT NULL,
    org_id            BLOB NOT NULL REFERENCES organizations (id),
    token_id          BLOB NOT NULL REFERENCES tokens (id),
    from_investor_id  BLOB REFERENCES investors (id),
    from_wallet       TEXT NOT NULL,
    to_investor_id    BLOB REFERENCES investors (id),
    to_wallet         TEXT NOT NULL,
    amount            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending_compliance', 'manual_review',
                          'approved', 'rejected', 'submitted', 'confirmed', 'settled',
                          'failed', 'cancelled')),
    -- The latest check: rule-set version, verdicts and snapshot (JSON).
    compliance        TEXT,
    review            TEXT,
    tx_hash           TEXT,
    block_number      BIGINT,
    error             TEXT,
    requested_by      TEXT NOT NULL,
    -- The settlement batch carrying it (the last one); NULL while waiting.
    batch_id          BLOB,
    -- After its batch failed: carried alone next time.
    isolate           INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX transfers_org ON transfers (org_id, id);
-- What a sender has reserved: its transfers approved and not yet indexed.
CREATE INDEX transfers_sender ON transfers (token_id, from_wallet, status);
-- What is on its way to holders of a token (reservations), by status.
CREATE INDEX transfers_token_status ON transfers (token_id, status);
-- An investor's recent transfers (velocity, structuring) and its history.
CREATE INDEX transfers_from_investor ON transfers (org_id, from_investor_id, id);
CREATE INDEX transfers_to_investor ON transfers (org_id, to_investor_id, id);
-- Approved transfers waiting for a batch.
CREATE INDEX transfers_unbatched ON transfers (org_id, id) WHERE status = 'approved' AND batch_id IS NULL;
CREATE INDEX transfers_batch ON transfers (batch_id) WHERE batch_id IS NOT NULL;

-- Approved transfers of one token carried by one transaction
-- (batchAgentTransfer), its state mirrored from the transaction manager.
CREATE TABLE transfer_batches (
    id            BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL REFERENCES organizations (id),
    token_id      BLOB NOT NULL REFERENCES tokens (id),
    tx_id         BLOB,
    tx_state      TEXT NOT NULL DEFAULT 'pending',
    tx_hash       TEXT,
    block_number  BIGINT,
    error         TEXT,
    open          INTEGER NOT NULL DEFAULT 1,
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at   TEXT
);
CREATE INDEX transfer_batches_open ON transfer_batches (org_id, created_at) WHERE open;
