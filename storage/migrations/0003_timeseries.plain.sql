-- Plain PostgreSQL: a BRIN index on time (cheap, fits append-mostly data) and
-- the per-minute rollup as an ordinary view with the same columns as the
-- TimescaleDB continuous aggregate.
CREATE INDEX IF NOT EXISTS readings_ts_brin ON readings USING brin (ts);
CREATE INDEX IF NOT EXISTS readings_enterprise_ts_idx ON readings (enterprise_id, ts DESC);

CREATE OR REPLACE VIEW readings_1m AS
SELECT sensor_id,
       date_trunc('minute', ts) AS bucket,
       avg(value)               AS avg_value,
       min(value)               AS min_value,
       max(value)               AS max_value,
       count(*)                 AS n
FROM readings
GROUP BY sensor_id, date_trunc('minute', ts);
