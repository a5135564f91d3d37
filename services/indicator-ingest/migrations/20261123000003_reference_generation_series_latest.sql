-- Reference data (catalogue, hierarchy, permissions, targets, locks) is held in memory by each replica and
-- reloaded when this generation moves: every change to those tables bumps it, in the changing transaction.
CREATE TABLE reference_generation (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation bigint NOT NULL
);
INSERT INTO reference_generation (generation) VALUES (1);

CREATE FUNCTION bump_reference_generation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE reference_generation SET generation = generation + 1;
    RETURN NULL;
END;
$$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['partner', 'locality', 'indicator', 'submission_permission', 'target',
                             'period_lock', 'locality_parent', 'submission_locality_permission']
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_generation()',
                       t || '_bumps_reference_generation', t);
    END LOOP;
END;
$$;

-- The latest period's value and RAG travel with the SPC state, so that a value extending its series is
-- evaluated without reading the series. NULL for states written before this column: those series are read
-- once from their history and then carry it.
ALTER TABLE series_state
    ADD COLUMN last_value double precision,
    ADD COLUMN last_rag   integer;

CREATE INDEX escalation_open_by_series ON escalation (indicator_code, locality_code) WHERE resolved_at IS NULL;

-- Every stored value is validated against the reference data in the same transaction, and indicators and
-- localities are never deleted; checking the two foreign keys again for every row of a batch doubled the
-- cost of storing it.
ALTER TABLE observation DROP CONSTRAINT observation_indicator_code_fkey;
ALTER TABLE observation DROP CONSTRAINT observation_locality_code_fkey;
