-- Wallets of investors. An address (lower-case 0x hex) belongs to at most one
-- investor of an organization. Addresses are public chain identifiers, not
-- sealed: the indexer and the transfer rules join on them.
CREATE TABLE investor_wallets (
    org_id       BLOB NOT NULL REFERENCES organizations (id),
    address      TEXT NOT NULL CHECK (length(address) = 42 AND address GLOB '0x*'
                                      AND lower(address) = address),
    investor_id  BLOB NOT NULL REFERENCES investors (id),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (org_id, address)
);
CREATE INDEX investor_wallets_investor ON investor_wallets (investor_id, created_at);
