-- The latest value of every indicator in every locality, as recorded by indicator ingest: the basis of the
-- LSCB's quarterly performance report. One row per indicator and locality, holding its newest period (and,
-- within that period, its highest revision); a late correction of an older period never replaces it.

CREATE TABLE performance_value (
    indicator_code text             NOT NULL,
    locality_code  text             NOT NULL,
    period_type    integer          NOT NULL,   -- trust.common.v1.PeriodType
    period_year    integer          NOT NULL,
    period_number  integer          NOT NULL,   -- month 1-12, quarter 1-4; unused (0) for years
    value          double precision NOT NULL,
    rag            integer          NOT NULL,   -- trust.common.v1.Rag at the time indicator ingest recorded it
    revision       bigint           NOT NULL CHECK (revision >= 0),   -- uint32 in the contract
    received_at    timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (indicator_code, locality_code)
);
