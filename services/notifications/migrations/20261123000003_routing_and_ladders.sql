-- The routing tree and escalation policies, as last put (an encoded trust.notifications.v1.RoutingConfig,
-- checked before it is stored).
CREATE TABLE routing_config (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    config     bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One escalation ladder per alert: the policy as it stood when the alert fired, where the climb stands and
-- when the scheduler must next look at it. Timers are these rows, not memory: a restarted or second
-- replica picks up exactly where the ladder stands.
CREATE TABLE alert_ladder (
    dedup_key     text PRIMARY KEY REFERENCES alert (dedup_key),
    occurrence_id text NOT NULL,
    ladder        jsonb NOT NULL,
    next_due      timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_ladder_due ON alert_ladder (next_due) WHERE next_due IS NOT NULL;

ALTER TABLE alert
    ADD COLUMN acknowledged_by text,
    ADD COLUMN acknowledged_at timestamptz;

-- A ladder tells the same person about the same occurrence more than once (escalated to, repeated): each
-- step is its own delivery, and each step is queued once.
ALTER TABLE delivery ADD COLUMN step text NOT NULL DEFAULT '';
ALTER TABLE delivery DROP CONSTRAINT delivery_occurrence_id_event_staff_code_key;
ALTER TABLE delivery ADD CONSTRAINT delivery_once_per_step UNIQUE (occurrence_id, event, step, staff_code);
