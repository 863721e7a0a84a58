-- Versions of a token's transfer rules. Version 1 is the deployed rules,
-- stored when the first change is; each PUT adds one. `rules` is the
-- version as received (JSON, validated); `operation_id` the four-eyes
-- rule_set_change operation carrying its on-chain part to the compliance
-- contract (NULL: that part was already in force).
CREATE TABLE rule_sets (
    id            UUID PRIMARY KEY NOT NULL,
    org_id        UUID NOT NULL REFERENCES organizations (id),
    token_id      UUID NOT NULL REFERENCES tokens (id),
    version       INTEGER NOT NULL CHECK (version >= 1),
    rules         TEXT NOT NULL,
    operation_id  UUID REFERENCES operations (id),
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (token_id, version)
);
CREATE INDEX rule_sets_token ON rule_sets (token_id, id);

-- What the rules read on the request path, kept on the token: the latest
-- version and its rules (NULL: version 1, the deployed rules), and the
-- version whose on-chain part the contract enforces (`compliance` holds
-- those rules, changed when its operation settles).
ALTER TABLE tokens ADD COLUMN rule_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tokens ADD COLUMN rules TEXT;
ALTER TABLE tokens ADD COLUMN onchain_version INTEGER NOT NULL DEFAULT 1;

-- The organization's off-chain rules for what a token's version leaves
-- unset (JSON; NULL: none).
ALTER TABLE organizations ADD COLUMN compliance_defaults TEXT;

-- A rule_set_change operation's change: version, from and to (JSON).
ALTER TABLE operations ADD COLUMN rule_change TEXT;
ALTER TABLE operations DROP CONSTRAINT operations_kind_check;
ALTER TABLE operations ADD CONSTRAINT operations_kind_check CHECK (kind IN ('mint', 'burn',
    'freeze', 'unfreeze', 'forced_transfer', 'pause', 'unpause', 'recovery', 'rule_set_change'));

-- The mint check counts an investor's mints not yet in the index, settled
-- ones included, so its index covers every mint.
DROP INDEX operations_open_mints;
CREATE INDEX operations_mints ON operations (token_id, investor_id) WHERE kind = 'mint';

-- A settled transfer whose indexed Transfer matched its sender, receiver
-- and amount; the reconciliation checks the others.
ALTER TABLE transfers ADD COLUMN amount_checked BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX transfers_amount_unchecked ON transfers (block_number)
    WHERE status = 'settled' AND NOT amount_checked;
