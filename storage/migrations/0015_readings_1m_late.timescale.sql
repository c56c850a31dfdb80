-- qorgau: no-transaction
-- Late readings reach the per-minute rollup. A reading is accepted up to 7 days after
-- its timestamp (limits.toml [health] max_age_s) — a gateway back from a week offline
-- sends what it kept — but the refresh policy of migration 0003 only looked 2 hours
-- back: a late reading below the materialisation watermark would be in `readings` and
-- never in `readings_1m` (real-time aggregation adds only what is above the watermark).
-- The policy now covers 8 days. A refresh recomputes only the buckets invalidated by
-- inserts since the last one, so the wider window costs nothing while no late reading
-- comes. (TimescaleDB documentation: remove_continuous_aggregate_policy,
-- add_continuous_aggregate_policy; refreshes use the invalidation log.)
SELECT remove_continuous_aggregate_policy('readings_1m', if_exists => TRUE);
SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset => INTERVAL '8 days',
    end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute',
    if_not_exists => TRUE);
