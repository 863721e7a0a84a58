-- Security tokens, each organization's identity registry, and the domain event
-- log. Addresses and hashes are 0x-hex; compliance rules are the JSON the API
-- received, validated (they are configuration, never summed in SQL).
CREATE TABLE tokens (
    id                  UUID PRIMARY KEY NOT NULL,
    org_id              UUID NOT NULL REFERENCES organizations (id),
    name                TEXT NOT NULL,
    symbol              TEXT NOT NULL,
    decimals            INTEGER NOT NULL CHECK (decimals BETWEEN 0 AND 18),
    compliance          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('pending_deployment', 'deployed', 'failed')),
    chain_id            BIGINT,
    address             TEXT,
    deploy_tx_hash      TEXT,
    deploy_block        BIGINT,
    identity_registry   TEXT,
    compliance_address  TEXT,
    failure_reason      TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((status = 'deployed') = (address IS NOT NULL)),
    CHECK ((status = 'failed') = (failure_reason IS NOT NULL))
);
CREATE INDEX tokens_org ON tokens (org_id, id);
-- A ticker names one live token per organization; a failed attempt frees it.
CREATE UNIQUE INDEX tokens_org_symbol ON tokens (org_id, symbol) WHERE status <> 'failed';
CREATE UNIQUE INDEX tokens_chain_address ON tokens (chain_id, address) WHERE address IS NOT NULL;

-- One identity registry per organization and chain, shared by its tokens.
CREATE TABLE identity_registries (
    org_id      UUID NOT NULL REFERENCES organizations (id),
    chain_id    BIGINT NOT NULL,
    address     TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, chain_id)
);

-- Domain events. seq comes from event_head, whose one row each append updates:
-- the row lock is held to commit, so seq order is commit order and readers of
-- "after seq" never skip a late commit.
CREATE TABLE events (
    seq         BIGINT PRIMARY KEY NOT NULL,
    id          UUID NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    org_id      UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    data        TEXT NOT NULL
);
CREATE INDEX events_org ON events (org_id, seq);

CREATE TABLE event_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL
);
INSERT INTO event_head (id, seq) VALUES (1, 0);
