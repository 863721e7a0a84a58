-- The event streams' cursors (one per destination, `amqp` for RabbitMQ):
-- the highest `seq` the broker confirmed, moved by compare-and-set by the
-- one process that publishes.
CREATE TABLE event_streams (
    name           TEXT PRIMARY KEY,
    published_seq  BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
