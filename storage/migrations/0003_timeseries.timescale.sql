-- qorgau: no-transaction
-- TimescaleDB 2.2x (on PostgreSQL 18): readings become a hypertable partitioned by
-- time, compressed after a week, dropped after the retention period, with a
-- per-minute continuous aggregate. Written to the TimescaleDB documentation:
-- create_hypertable(... by_range(...)), add_compression_policy,
-- add_retention_policy, CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous).
CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('readings', by_range('ts', INTERVAL '1 day'),
                         if_not_exists => TRUE, migrate_data => TRUE);

CREATE INDEX IF NOT EXISTS readings_enterprise_ts_idx ON readings (enterprise_id, ts DESC);

ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'sensor_id',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('readings', INTERVAL '7 days', if_not_exists => TRUE);
SELECT add_retention_policy('readings', INTERVAL '400 days', if_not_exists => TRUE);

CREATE MATERIALIZED VIEW IF NOT EXISTS readings_1m
WITH (timescaledb.continuous) AS
SELECT sensor_id,
       time_bucket(INTERVAL '1 minute', ts) AS bucket,
       avg(value)                           AS avg_value,
       min(value)                           AS min_value,
       max(value)                           AS max_value,
       count(*)                             AS n
FROM readings
GROUP BY sensor_id, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset => INTERVAL '2 hours',
    end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute',
    if_not_exists => TRUE);
