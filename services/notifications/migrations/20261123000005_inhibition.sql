-- The city-wide alert that last kept people from being told about a local alert of the same indicator.
ALTER TABLE alert ADD COLUMN inhibited_by text;
