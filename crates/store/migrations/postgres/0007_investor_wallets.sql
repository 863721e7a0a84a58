-- Wallets of investors. An address (lower-case 0x hex) belongs to at most one
-- investor of an organization. Addresses are public chain identifiers, not
-- sealed: the indexer and the transfer rules join on them.
CREATE TABLE investor_wallets (
    org_id       UUID NOT NULL REFERENCES organizations (id),
    address      TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    investor_id  UUID NOT NULL REFERENCES investors (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, address)
);
CREATE INDEX investor_wallets_investor ON investor_wallets (investor_id, created_at);
