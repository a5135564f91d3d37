-- The catalogue (partners, localities, indicators, targets), the submission ledger, observations with their
-- revisions, and the escalations raised from them.

CREATE TABLE partner (
    code text PRIMARY KEY,
    name text NOT NULL
);

CREATE TABLE locality (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    parent_code text REFERENCES locality (code)
);

CREATE TABLE indicator (
    code               text PRIMARY KEY,
    name               text NOT NULL,
    definition         text NOT NULL DEFAULT '',
    measure            integer NOT NULL,      -- trust.common.v1.MeasureType
    polarity           integer NOT NULL,      -- trust.common.v1.Polarity
    period_type        text NOT NULL CHECK (period_type IN ('month', 'quarter', 'academic_year', 'financial_year')),
    owner_partner_code text NOT NULL REFERENCES partner (code),
    outcome_code       text NOT NULL DEFAULT ''
);

-- The information sharing protocol: which partner may submit which indicator.
CREATE TABLE submission_permission (
    partner_code   text NOT NULL REFERENCES partner (code),
    indicator_code text NOT NULL REFERENCES indicator (code),
    PRIMARY KEY (partner_code, indicator_code)
);

CREATE TABLE target (
    id              bigserial PRIMARY KEY,
    indicator_code  text NOT NULL REFERENCES indicator (code),
    -- NULL: the city-wide default for localities without their own target.
    locality_code   text REFERENCES locality (code),
    value           double precision NOT NULL,
    amber_tolerance double precision NOT NULL DEFAULT 0 CHECK (amber_tolerance >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (indicator_code, locality_code)
);

-- Every submission and its receipt (encoded trust.ingest.v1.SubmissionReceipt).
CREATE TABLE submission (
    partner_code text NOT NULL,
    batch_id     text NOT NULL,
    outcome      text NOT NULL,
    receipt      bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_code, batch_id)
);

-- The current value of each indicator, locality and period.
CREATE TABLE observation (
    indicator_code text NOT NULL REFERENCES indicator (code),
    locality_code  text NOT NULL REFERENCES locality (code),
    period_type    text NOT NULL,
    period_year    integer NOT NULL,
    period_number  integer NOT NULL,
    value          double precision NOT NULL,
    numerator      double precision,
    denominator    double precision,
    note           text NOT NULL DEFAULT '',
    rag            integer NOT NULL,          -- trust.common.v1.Rag at the time of recording
    revision       integer NOT NULL,
    partner_code   text NOT NULL,
    batch_id       text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_code, locality_code, period_type, period_year, period_number)
);

-- Every value ever recorded: corrections add a revision, nothing is overwritten.
CREATE TABLE observation_revision (
    indicator_code text NOT NULL,
    locality_code  text NOT NULL,
    period_type    text NOT NULL,
    period_year    integer NOT NULL,
    period_number  integer NOT NULL,
    revision       integer NOT NULL,
    value          double precision NOT NULL,
    numerator      double precision,
    denominator    double precision,
    note           text NOT NULL DEFAULT '',
    partner_code   text NOT NULL,
    batch_id       text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_code, locality_code, period_type, period_year, period_number, revision)
);

-- Escalations raised by evaluation; open while resolved_at is NULL. One open occurrence per key.
CREATE TABLE escalation (
    occurrence_id  uuid PRIMARY KEY,
    dedup_key      text NOT NULL,
    rule           text NOT NULL,
    indicator_code text NOT NULL,
    locality_code  text NOT NULL,
    period_label   text NOT NULL,
    value          double precision NOT NULL,
    target         double precision NOT NULL,
    raised_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at    timestamptz
);
CREATE UNIQUE INDEX escalation_one_open_per_key ON escalation (dedup_key) WHERE resolved_at IS NULL;
