-- Plain PostgreSQL: readings_1m is an ordinary view over readings, so it always
-- includes the newest readings; the TimescaleDB twin of this migration makes the
-- continuous aggregate do the same. Recorded here so that both kinds of database
-- carry the same migration versions.
COMMENT ON VIEW readings_1m IS
    'Per-minute rollup of readings (bucket, avg_value, min_value, max_value, n); always includes the newest readings.';
