-- The transaction manager: logical transactions with their allocated nonce, and
-- every signed attempt (same nonce, rising fees) stored before it is broadcast.
-- Amounts and fees are decimal strings, addresses/hashes/bytes 0x-hex.
CREATE TABLE tx_nonces (
    chain_id    BIGINT NOT NULL,
    address     TEXT NOT NULL,
    next_nonce  BIGINT NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
);

CREATE TABLE managed_txs (
    id                    UUID PRIMARY KEY,
    key                   TEXT NOT NULL UNIQUE,
    lane                  TEXT NOT NULL CHECK (lane IN ('deploy', 'mint', 'settlement', 'admin')),
    chain_id              BIGINT NOT NULL,
    from_address          TEXT NOT NULL,
    nonce                 BIGINT NOT NULL,
    to_address            TEXT,
    value                 TEXT NOT NULL,
    input                 TEXT NOT NULL,
    gas_limit             BIGINT NOT NULL,
    state                 TEXT NOT NULL CHECK (state IN ('pending', 'submitted', 'confirmed', 'settled', 'failed')),
    mined_hash            TEXT,
    block_number          BIGINT,
    block_hash            TEXT,
    gas_used              BIGINT,
    effective_gas_price   TEXT,
    contract_address      TEXT,
    error                 TEXT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (chain_id, from_address, nonce)
);
CREATE INDEX managed_txs_open ON managed_txs (chain_id, from_address, nonce)
    WHERE state IN ('pending', 'submitted', 'confirmed');

CREATE TABLE tx_attempts (
    hash                      TEXT PRIMARY KEY,
    tx_id                     UUID NOT NULL REFERENCES managed_txs (id),
    max_fee_per_gas           TEXT NOT NULL,
    max_priority_fee_per_gas  TEXT NOT NULL,
    raw                       TEXT NOT NULL,
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX tx_attempts_tx ON tx_attempts (tx_id, created_at);
