-- Roles and localities a person's roles cover, and absence with a named cover. No foreign key on the cover:
-- a directory is replaced as a whole and checked before it is stored (a cover must be in the directory).
ALTER TABLE staff
    ADD COLUMN roles            text[] NOT NULL DEFAULT '{}',
    ADD COLUMN localities       text[] NOT NULL DEFAULT '{}',
    ADD COLUMN away             boolean NOT NULL DEFAULT false,
    ADD COLUMN cover_staff_code text;

-- Who a delivery was meant for when a cover received it instead.
ALTER TABLE delivery ADD COLUMN covering_for text;
