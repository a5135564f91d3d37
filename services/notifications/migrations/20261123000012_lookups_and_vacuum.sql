-- Found by notifications-bench. Inhibition asks, for every raise and ladder step, for a firing alert of an
-- indicator, rule and place: without this index it scanned every alert (O(n) per alert, O(n²) to open n).
CREATE INDEX alert_firing_place ON alert (indicator_code, rule, locality_code) WHERE state = 'firing';

-- Every sent delivery leaves a dead entry in the due-delivery index until vacuumed, and every claim walks
-- them: vacuum this busy queue table after a small share of it changes, not the default fifth.
ALTER TABLE delivery SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
                          autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE alert_ladder SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000);
