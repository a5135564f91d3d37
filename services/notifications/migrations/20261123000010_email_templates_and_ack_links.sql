-- Email templates as operators last put them (checked before they are stored): a JSON object from template
-- name (e.g. "raised.html.j2") to its minijinja source. A name not in it uses the built-in default.
-- `revision` goes up on every put, so a replica knows when to recompile.
CREATE TABLE email_templates (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    templates  jsonb NOT NULL,
    revision   bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The HTML alternative of an email, when its template rendered one (the text part is body_text).
ALTER TABLE delivery ADD COLUMN body_html text;
-- When the acknowledgement link in this email was used: a link acknowledges once.
ALTER TABLE delivery ADD COLUMN link_used_at timestamptz;
