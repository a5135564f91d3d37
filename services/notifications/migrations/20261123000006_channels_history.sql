-- Channels: a delivery goes by email, to a configured webhook, or only into the person's inbox; when it
-- fails for good, the channels in `fallback` are tried in turn for the same person and step.
ALTER TABLE delivery
    ADD COLUMN channel  text NOT NULL DEFAULT 'email' CHECK (channel IN ('email', 'webhook', 'inbox')),
    ADD COLUMN fallback text[] NOT NULL DEFAULT '{}',
    ADD COLUMN webhook  text,
    -- The webhook's JSON body, fixed when queued so every retry posts the same bytes.
    ADD COLUMN payload  jsonb;
ALTER TABLE delivery DROP CONSTRAINT delivery_once_per_step;
ALTER TABLE delivery ADD CONSTRAINT delivery_once_per_step_and_channel
    UNIQUE (occurrence_id, event, step, staff_code, channel);
CREATE INDEX delivery_inbox ON delivery (staff_code, created_at DESC);

ALTER TABLE alert
    ADD COLUMN resolved_by text,
    ADD COLUMN severity    text NOT NULL DEFAULT '';

-- Everything that happens to an alert, in order (raised, acknowledged, commented, resolved, ...). Rows are
-- only ever added.
CREATE TABLE alert_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key     text NOT NULL REFERENCES alert (dedup_key),
    occurrence_id text NOT NULL,
    at            timestamptz NOT NULL DEFAULT now(),
    what          text NOT NULL,
    by            text NOT NULL DEFAULT '',
    detail        text NOT NULL DEFAULT ''
);
CREATE INDEX alert_history_by_alert ON alert_history (dedup_key, id);

-- Digests: emails due to one address together go as one; each records the delivery whose email carried it.
ALTER TABLE delivery ADD COLUMN digest_of uuid;
CREATE INDEX delivery_pending_email ON delivery (email) WHERE state = 'pending';
CREATE INDEX delivery_sent_email ON delivery (email, sent_at DESC) WHERE state = 'sent';
