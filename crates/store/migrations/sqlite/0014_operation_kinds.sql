-- no-transaction
-- Widens the operation kinds with rule_set_change (and indexes every mint). SQLite cannot alter a
-- CHECK, so the table is rebuilt the documented way: foreign keys off
-- (batches and rule sets reference operations), a copy, the swap and its
-- indexes, in one transaction of its own. Running it again after
-- a crash between its commit and the migration's bookkeeping copies the
-- same rows into the same shape.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;
CREATE TABLE operations_next (
    id                BLOB PRIMARY KEY NOT NULL,
    org_id            BLOB NOT NULL REFERENCES organizations (id),
    token_id          BLOB REFERENCES tokens (id),
    kind              TEXT NOT NULL CHECK (kind IN ('mint', 'burn', 'freeze', 'unfreeze',
                          'forced_transfer', 'pause', 'unpause', 'recovery', 'rule_set_change')),
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
    rule_change       TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK ((kind = 'recovery') = (token_id IS NULL))
);
INSERT INTO operations_next (id, org_id, token_id, kind, status, wallet, counterparty, investor_id, amount, reason, new_holder, requested_by, approved_by, rejected_by, rejection_reason, batch_id, isolate, error, rule_change, created_at, updated_at)
    SELECT id, org_id, token_id, kind, status, wallet, counterparty, investor_id, amount, reason, new_holder, requested_by, approved_by, rejected_by, rejection_reason, batch_id, isolate, error, rule_change, created_at, updated_at FROM operations;
DROP TABLE operations;
ALTER TABLE operations_next RENAME TO operations;
CREATE INDEX operations_org ON operations (org_id, id);
CREATE INDEX operations_todo ON operations (org_id, id) WHERE status = 'pending' AND batch_id IS NULL;
CREATE INDEX operations_batch ON operations (batch_id) WHERE batch_id IS NOT NULL;
-- The mint check counts an investor's mints not yet in the index, settled
-- ones included, so its index covers every mint.
CREATE INDEX operations_mints ON operations (token_id, investor_id) WHERE kind = 'mint';
COMMIT;
PRAGMA foreign_keys = ON;
