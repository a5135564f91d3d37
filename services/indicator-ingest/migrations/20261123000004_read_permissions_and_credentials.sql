-- The information sharing protocol's read side, and who is calling on gRPC.
--
-- A partner may read what it may submit (submission_permission, for the localities of
-- submission_locality_permission) and, in addition, the indicators of read_permission for the localities of
-- read_locality_permission. A partner without read_locality_permission rows reads its read_permission
-- indicators for the whole city; otherwise for those localities and those under them (an area covers its
-- clusters through locality_parent, as in force when each period began).
CREATE TABLE read_permission (
    partner_code   text NOT NULL REFERENCES partner (code),
    indicator_code text NOT NULL REFERENCES indicator (code),
    PRIMARY KEY (partner_code, indicator_code)
);

CREATE TABLE read_locality_permission (
    partner_code  text NOT NULL REFERENCES partner (code),
    locality_code text NOT NULL REFERENCES locality (code),
    PRIMARY KEY (partner_code, locality_code)
);

-- Reference data like the submission permissions: a change moves the generation (see 20261123000003).
CREATE TRIGGER read_permission_bumps_reference_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON read_permission
    FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_generation();
CREATE TRIGGER read_locality_permission_bumps_reference_generation
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON read_locality_permission
    FOR EACH STATEMENT EXECUTE FUNCTION bump_reference_generation();

-- Bearer tokens for IndicatorIngest on gRPC. Only the SHA-256 of a token is kept; the token itself is shown
-- once, when it is issued (`trustctl credential issue`). A credential names either a partner (it acts as
-- that partner under the information sharing protocol) or an operator (the partnership's own performance
-- team: the catalogue, approval, and every read). A revoked credential is kept, for the record.
CREATE TABLE credential (
    token_sha256 bytea PRIMARY KEY CHECK (octet_length(token_sha256) = 32),
    partner_code text REFERENCES partner (code),
    operator     text CHECK (btrim(operator) <> ''),
    label        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz,
    CONSTRAINT credential_names_a_partner_or_an_operator CHECK ((partner_code IS NULL) <> (operator IS NULL))
);
CREATE INDEX credential_by_label ON credential (label) WHERE revoked_at IS NULL;
