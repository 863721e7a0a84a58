-- Webhook endpoints: each has its own cursor over the event log
-- (delivered_seq: every event up to it was delivered or not selected), its
-- signing secret sealed like personal data (and the previous one while a
-- rotation's overlap lasts), and the state of the event at the head of its
-- outbox when that fails. `version` counts the organization's changes (URL,
-- selection, secret, replays): the delivery loop's record is refused when it
-- changed meanwhile, so a change applies from the next step on.
CREATE TABLE webhooks (
    id                          BLOB PRIMARY KEY NOT NULL,
    org_id                      BLOB NOT NULL REFERENCES organizations (id),
    url                         TEXT NOT NULL,
    events                      TEXT NOT NULL,
    description                 TEXT,
    enabled                     INTEGER NOT NULL,
    disabled_reason             TEXT,
    secret                      TEXT NOT NULL,
    previous_secret             TEXT,
    previous_secret_expires_at  TEXT,
    delivered_seq               INTEGER NOT NULL,
    failing_since               TEXT,
    attempts                    INTEGER NOT NULL DEFAULT 0,
    next_attempt_at             TEXT,
    last_error                  TEXT,
    version                     INTEGER NOT NULL DEFAULT 0,
    last_delivered_at           TEXT,
    created_at                  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at                  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX webhooks_org ON webhooks (org_id, id);
CREATE INDEX webhooks_enabled ON webhooks (id) WHERE enabled;

-- Every attempt to deliver an event to an endpoint, kept for inspection
-- and replay; removed with the endpoint.
CREATE TABLE webhook_deliveries (
    id                BLOB PRIMARY KEY NOT NULL,
    webhook_id        BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq         INTEGER NOT NULL,
    event_id          BLOB NOT NULL,
    event_type        TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    replay            INTEGER NOT NULL,
    succeeded         INTEGER NOT NULL,
    status_code       INTEGER,
    latency_ms        INTEGER NOT NULL,
    error             TEXT,
    response_snippet  TEXT,
    created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

-- Single events asked to be sent again, out of band; done_at once sent.
CREATE TABLE webhook_replays (
    id            BLOB PRIMARY KEY NOT NULL,
    webhook_id    BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_seq     INTEGER NOT NULL,
    requested_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    done_at       TEXT
);
CREATE INDEX webhook_replays_pending ON webhook_replays (webhook_id, id) WHERE done_at IS NULL;

-- An organization's notification preferences (JSON arrays; NULL: that
-- channel off): e-mail recipients and event types; WhatsApp recipients,
-- template, language and event types.
CREATE TABLE notification_settings (
    org_id             BLOB PRIMARY KEY NOT NULL REFERENCES organizations (id),
    email_to           TEXT,
    email_events       TEXT,
    whatsapp_to        TEXT,
    whatsapp_template  TEXT,
    whatsapp_language  TEXT,
    whatsapp_events    TEXT,
    updated_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- Each channel that is on, per organization: its own cursor over the event
-- log and the state of the event after it when sending fails.
CREATE TABLE notification_channels (
    org_id           BLOB NOT NULL REFERENCES organizations (id),
    channel          TEXT NOT NULL CHECK (channel IN ('email', 'whatsapp')),
    cursor_seq       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_error       TEXT,
    PRIMARY KEY (org_id, channel)
);
