-- The event streams' cursors (one per destination, `amqp` for RabbitMQ):
-- the highest `seq` the broker confirmed, moved by compare-and-set by the
-- one process that publishes.
CREATE TABLE event_streams (
    name           TEXT PRIMARY KEY NOT NULL,
    published_seq  INTEGER NOT NULL,
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
