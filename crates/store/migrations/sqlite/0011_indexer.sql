-- The indexer (crates/indexer, rwa_domain::onchain and ::holding): where it
-- is on each chain, the unfinalized blocks it indexed, the progress of each
-- followed contract, the decoded events and the holdings derived from them.
-- Addresses and hashes are lowercase 0x-hex; balances are decimal strings of
-- uint256 values (summed and compared in Rust, never in SQL).

-- The block the registry of an organization was deployed in: the indexer
-- follows the registry from there (NULL for registries recorded before).
ALTER TABLE identity_registries ADD COLUMN deploy_block BIGINT;

-- One row per chain: the last indexed block (the cursor), the node's head,
-- safe and finalized heights last seen, reorgs, and why it halted.
CREATE TABLE indexer_state (
    chain_id          BIGINT PRIMARY KEY NOT NULL,
    block_number      BIGINT NOT NULL,
    block_hash        TEXT NOT NULL,
    head              BIGINT NOT NULL,
    safe              BIGINT NOT NULL,
    finalized         BIGINT NOT NULL,
    reorgs            BIGINT NOT NULL DEFAULT 0,
    last_reorg_depth  BIGINT,
    last_reorg_at     TEXT,
    halted            TEXT,
    updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The unfinalized window: every indexed block from the finalized one up.
CREATE TABLE indexer_blocks (
    chain_id     BIGINT NOT NULL,
    number       BIGINT NOT NULL,
    hash         TEXT NOT NULL,
    parent_hash  TEXT NOT NULL,
    PRIMARY KEY (chain_id, number)
);

-- A followed contract's progress: NULL once it moves with the cursor; a
-- height while it catches up alone (a contract known after the cursor
-- passed its first block).
CREATE TABLE indexer_sources (
    chain_id   BIGINT NOT NULL,
    address    TEXT NOT NULL,
    synced_to  BIGINT,
    PRIMARY KEY (chain_id, address)
);

-- External contracts an organization asked to index.
CREATE TABLE watched_contracts (
    id           BLOB PRIMARY KEY NOT NULL,
    org_id       BLOB NOT NULL REFERENCES organizations (id),
    chain_id     BIGINT NOT NULL,
    address      TEXT NOT NULL,
    standard     TEXT NOT NULL CHECK (standard IN ('erc20', 'erc721', 'erc1155')),
    start_block  BIGINT NOT NULL,
    name         TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX watched_contracts_address ON watched_contracts (org_id, chain_id, address);
CREATE INDEX watched_contracts_chain ON watched_contracts (chain_id, address);

-- Decoded logs, once each: a reorg changes the block hash, so the same log
-- in a new block is a new row, and the old one is deleted by the rewind.
CREATE TABLE onchain_events (
    chain_id      BIGINT NOT NULL,
    block_hash    TEXT NOT NULL,
    log_index     BIGINT NOT NULL,
    block_number  BIGINT NOT NULL,
    tx_hash       TEXT NOT NULL,
    contract      TEXT NOT NULL,
    kind          TEXT NOT NULL,
    data          TEXT NOT NULL,
    PRIMARY KEY (chain_id, block_hash, log_index)
);
CREATE INDEX onchain_events_contract ON onchain_events (chain_id, contract, block_number, log_index);
CREATE INDEX onchain_events_block ON onchain_events (chain_id, block_number);
CREATE INDEX onchain_events_tx ON onchain_events (chain_id, tx_hash);

-- Settled operations whose transfer the index did not hold at the
-- confirmation depth: each raised once (its event), open while it lasts.
CREATE TABLE indexer_alarms (
    operation_id  BLOB PRIMARY KEY NOT NULL,
    org_id        BLOB NOT NULL,
    chain_id      BIGINT NOT NULL,
    tx_hash       TEXT NOT NULL,
    raised_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Each wallet's holding of a contract (token_id '' for a fungible token) as
-- of the last indexed block that changed it...
CREATE TABLE holdings (
    chain_id       BIGINT NOT NULL,
    contract       TEXT NOT NULL,
    token_id       TEXT NOT NULL,
    wallet         TEXT NOT NULL,
    balance        TEXT NOT NULL,
    frozen         TEXT NOT NULL,
    wallet_frozen  BOOLEAN NOT NULL,
    block_number   BIGINT NOT NULL,
    PRIMARY KEY (chain_id, contract, token_id, wallet)
);

-- ...and after every block that changed it, for holders at a past block and
-- for undoing a reorg.
CREATE TABLE holding_history (
    chain_id       BIGINT NOT NULL,
    contract       TEXT NOT NULL,
    token_id       TEXT NOT NULL,
    wallet         TEXT NOT NULL,
    block_number   BIGINT NOT NULL,
    balance        TEXT NOT NULL,
    frozen         TEXT NOT NULL,
    wallet_frozen  BOOLEAN NOT NULL,
    PRIMARY KEY (chain_id, contract, token_id, wallet, block_number)
);
CREATE INDEX holding_history_block ON holding_history (chain_id, block_number);
