-- Platform tables every service has in its own schema: the transactional outbox, the record of processed
-- bus messages (idempotent consumers) and the dead-letter table.

CREATE TABLE outbox_message (
    id           bigserial PRIMARY KEY,
    -- Sent as Nats-Msg-Id so JetStream drops a re-publish within the stream's duplicate window.
    message_id   text        NOT NULL UNIQUE,
    subject      text        NOT NULL,
    payload      bytea       NOT NULL,
    -- Header name -> value, e.g. content-type, traceparent.
    headers      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text
);
CREATE INDEX outbox_message_unpublished ON outbox_message (id) WHERE published_at IS NULL;

CREATE TABLE processed_message (
    consumer     text        NOT NULL,
    message_id   text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE dead_letter (
    id              bigserial PRIMARY KEY,
    consumer        text        NOT NULL,
    stream          text        NOT NULL,
    stream_sequence bigint      NOT NULL,
    subject         text        NOT NULL,
    message_id      text        NOT NULL,
    headers         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    payload         bytea       NOT NULL,
    deliveries      integer     NOT NULL,
    error           text        NOT NULL,
    parked_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at     timestamptz,
    replay_message_id text,
    UNIQUE (consumer, message_id)
);

-- Wake the relay as soon as events commit, instead of waiting for its next poll.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_message_notify AFTER INSERT ON outbox_message
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
