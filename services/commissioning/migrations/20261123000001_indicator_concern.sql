-- The register of indicator concerns: one row per escalation key (e.g. "ingest/target-breach/NEET_16_18/
-- AREA_EAST") holding its latest occurrence, open while resolved_at is NULL. Contract monitoring of providers
-- will draw on it.

CREATE TABLE indicator_concern (
    dedup_key          text        PRIMARY KEY,
    -- The occurrence held: a raise after a resolve is a new occurrence and replaces the old one.
    occurrence_id      text        NOT NULL,
    indicator_code     text        NOT NULL,
    locality_code      text        NOT NULL,
    owner_partner_code text        NOT NULL,
    summary            text        NOT NULL,
    -- NULL only while the resolve of an occurrence has arrived before its raise (messages retried out of
    -- order); the raise fills it in when it comes.
    raised_at          timestamptz,
    resolved_at        timestamptz,
    CHECK (raised_at IS NOT NULL OR resolved_at IS NOT NULL)
);

CREATE INDEX indicator_concern_open ON indicator_concern (raised_at DESC) WHERE resolved_at IS NULL;
