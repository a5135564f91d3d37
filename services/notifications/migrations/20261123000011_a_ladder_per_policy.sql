-- Routes with `continue` can take an alert to several escalation policies: one ladder per alert and policy.
ALTER TABLE alert_ladder ADD COLUMN policy text NOT NULL DEFAULT '';
UPDATE alert_ladder SET policy = COALESCE(ladder -> 'policy' ->> 'name', '');
ALTER TABLE alert_ladder DROP CONSTRAINT alert_ladder_pkey;
ALTER TABLE alert_ladder ADD PRIMARY KEY (dedup_key, policy);
