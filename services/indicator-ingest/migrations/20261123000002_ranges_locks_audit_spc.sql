-- Indicator definitions gain meanings, a valid range and small-number suppression; targets become
-- effective for a period range with a baseline; periods can be approved (locked); every accountable change
-- leaves an audit row; each series keeps its statistical process control state.

ALTER TABLE indicator
    ADD COLUMN numerator_meaning      text NOT NULL DEFAULT '',
    ADD COLUMN denominator_meaning    text NOT NULL DEFAULT '',
    ADD COLUMN valid_min              double precision,
    ADD COLUMN valid_max              double precision,
    ADD COLUMN small_number_threshold integer NOT NULL DEFAULT 0 CHECK (small_number_threshold >= 0);

-- Periods are compared as (year, number) within the indicator's period type; NULL bounds are open.
ALTER TABLE target
    ADD COLUMN from_year   integer,
    ADD COLUMN from_number integer,
    ADD COLUMN to_year     integer,
    ADD COLUMN to_number   integer,
    ADD COLUMN baseline    double precision,
    ADD COLUMN set_by      text NOT NULL DEFAULT '';
ALTER TABLE target DROP CONSTRAINT target_indicator_code_locality_code_key;
ALTER TABLE target ADD CONSTRAINT target_one_per_start
    UNIQUE NULLS NOT DISTINCT (indicator_code, locality_code, from_year, from_number);

-- Stored but flagged: a value beyond its series' process limits (soft validation).
ALTER TABLE observation ADD COLUMN outlier boolean NOT NULL DEFAULT false;

ALTER TABLE observation_revision
    ADD COLUMN submitted_by      text NOT NULL DEFAULT '',
    ADD COLUMN correction_reason text NOT NULL DEFAULT '';

-- An approved period: values for it are final until an audited unlock.
CREATE TABLE period_lock (
    indicator_code text NOT NULL REFERENCES indicator (code),
    period_type    text NOT NULL,
    period_year    integer NOT NULL,
    period_number  integer NOT NULL,
    locked_by      text NOT NULL,
    locked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_code, period_type, period_year, period_number)
);

-- Who changed what, when, from what to what, and why.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    actor   text NOT NULL,
    action  text NOT NULL,
    entity  text NOT NULL,
    before  jsonb,
    after   jsonb,
    reason  text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_entity ON audit_log (entity, at);

-- Statistical process control state per series (trust indicator_ingest::domain::spc::SeriesState), so
-- evaluating a new value never scans history.
CREATE TABLE series_state (
    indicator_code text NOT NULL,
    locality_code  text NOT NULL,
    last_year      integer NOT NULL,
    last_number    integer NOT NULL,
    state          jsonb NOT NULL,
    PRIMARY KEY (indicator_code, locality_code)
);

-- The locality hierarchy is effective-dated: a cluster's parent can change from a date, and a roll-up for a
-- period uses the parent in force on the period's first day. locality.parent_code stays the original parent.
CREATE TABLE locality_parent (
    locality_code  text NOT NULL REFERENCES locality (code),
    parent_code    text NOT NULL REFERENCES locality (code),
    effective_from date NOT NULL,
    PRIMARY KEY (locality_code, effective_from)
);

-- Values rolled up to parent localities from summed numerators and denominators (or summed counts and
-- money), never by averaging rates.
CREATE TABLE rollup (
    indicator_code text NOT NULL,
    locality_code  text NOT NULL,
    period_type    text NOT NULL,
    period_year    integer NOT NULL,
    period_number  integer NOT NULL,
    numerator      double precision,
    denominator    double precision,
    value          double precision NOT NULL,
    contributors   integer NOT NULL,
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_code, locality_code, period_type, period_year, period_number)
);

-- The information sharing protocol by place: a partner with rows here may submit only for these
-- localities and those under them; a partner without rows may submit for the whole city.
CREATE TABLE submission_locality_permission (
    partner_code  text NOT NULL REFERENCES partner (code),
    locality_code text NOT NULL REFERENCES locality (code),
    PRIMARY KEY (partner_code, locality_code)
);

-- Outcomes (in the 2006-09 Every Child Matters framework and the 2011-15 plan's) and the priorities under
-- them, which indicators sit behind.
CREATE TABLE outcome (
    code      text PRIMARY KEY,
    name      text NOT NULL,
    framework text NOT NULL CHECK (framework IN ('ECM_2006', 'PLAN_2011'))
);
CREATE TABLE priority (
    code         text PRIMARY KEY,
    name         text NOT NULL,
    outcome_code text NOT NULL REFERENCES outcome (code)
);
ALTER TABLE indicator ADD COLUMN priority_code text NOT NULL DEFAULT '';

-- Each versioned catalogue load.
CREATE TABLE catalogue_version (
    version   integer PRIMARY KEY,
    loaded_by text NOT NULL,
    loaded_at timestamptz NOT NULL DEFAULT now()
);
