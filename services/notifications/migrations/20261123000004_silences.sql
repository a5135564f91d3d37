-- Silences: muting by matchers (an encoded trust.notifications.v1.RouteMatchers) for a window, with who
-- and why. Rows are never updated or deleted: the table is its own audit trail.
CREATE TABLE silence (
    id         uuid PRIMARY KEY,
    matchers   bytea NOT NULL,
    starts_at  timestamptz NOT NULL,
    ends_at    timestamptz NOT NULL CHECK (ends_at > starts_at),
    author     text NOT NULL CHECK (author <> ''),
    reason     text NOT NULL CHECK (reason <> ''),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX silence_active ON silence (ends_at);

-- The silence that last kept people from being told about an alert.
ALTER TABLE alert ADD COLUMN silenced_by uuid;
