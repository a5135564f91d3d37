-- The staff directory (who may be told, and what they answer for), the escalations seen, and every email
-- queued or sent for them.

CREATE TABLE staff (
    code         text PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    email        text NOT NULL,
    partner_code text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Who answers for an indicator in a locality. '' matches anything; the most specific match wins.
CREATE TABLE responsibility (
    staff_code     text NOT NULL REFERENCES staff (code) ON DELETE CASCADE,
    indicator_code text NOT NULL DEFAULT '',
    locality_code  text NOT NULL DEFAULT '',
    PRIMARY KEY (staff_code, indicator_code, locality_code)
);
CREATE INDEX responsibility_lookup ON responsibility (indicator_code, locality_code);

-- The latest state of each escalation (one row per deduplication key).
CREATE TABLE alert (
    dedup_key      text PRIMARY KEY,
    -- The occurrence this row describes; a raise after a resolve is a new occurrence.
    occurrence_id  text NOT NULL,
    state          text NOT NULL CHECK (state IN ('firing', 'resolved')),
    source         text NOT NULL,
    rule           text NOT NULL,
    summary        text NOT NULL,
    indicator_code text NOT NULL DEFAULT '',
    locality_code  text NOT NULL DEFAULT '',
    raised_at      timestamptz,
    resolved_at    timestamptz,
    -- Encoded trust.alerting.v1.EscalationRaised or EscalationResolved, whichever came last.
    last_event     bytea NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- One email to one person about one event of one occurrence.
CREATE TABLE delivery (
    id              uuid PRIMARY KEY,
    dedup_key       text NOT NULL REFERENCES alert (dedup_key),
    occurrence_id   text NOT NULL,
    event           text NOT NULL CHECK (event IN ('raised', 'resolved')),
    -- No foreign key: the record of what was sent outlives changes to the directory.
    staff_code      text NOT NULL,
    email           text NOT NULL,
    subject         text NOT NULL,
    body_text       text NOT NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    -- The same event can never be queued twice for the same person, whatever the bus redelivers.
    UNIQUE (occurrence_id, event, staff_code)
);
CREATE INDEX delivery_due ON delivery (next_attempt_at) WHERE state = 'pending';
CREATE INDEX delivery_by_alert ON delivery (dedup_key, created_at DESC);

-- Wake the delivery worker as soon as new emails commit, instead of waiting for its next poll.
CREATE FUNCTION delivery_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '_delivery', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER delivery_inserted_notify AFTER INSERT ON delivery
    FOR EACH STATEMENT EXECUTE FUNCTION delivery_notify();
