-- qorgau: no-transaction
-- The per-minute rollup answers with the readings it has not materialised yet: since
-- TimescaleDB 2.13 a continuous aggregate is materialised-only by default, so without
-- this readings_1m (and every Grafana wall and long-range query on it) would lag the
-- refresh policy by up to its schedule plus end_offset. Real-time aggregation unions
-- the materialised buckets with the raw readings above the watermark.
-- (TimescaleDB documentation: ALTER MATERIALIZED VIEW ... SET
-- (timescaledb.materialized_only = false).)
ALTER MATERIALIZED VIEW readings_1m SET (timescaledb.materialized_only = false);
