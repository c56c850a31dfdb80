-- Online models: explained anomaly scores, model checkpoints, and one open alert per
-- (sensor, kind, source), so a model's sensor_fault (calibration drift) and a rule's
-- sensor_fault (impossible or stuck values) are two alerts, not one overwriting the other.
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS value          double precision;
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS expected_low   double precision;
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS expected_high  double precision;
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS feature        text;
CREATE INDEX IF NOT EXISTS anomalies_enterprise_idx ON anomalies (enterprise_id, ts DESC);

DROP INDEX IF EXISTS alerts_one_open_idx;
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_source_idx ON alerts (sensor_id, kind, source)
    WHERE state = 'open';

CREATE TABLE IF NOT EXISTS model_state (
    enterprise_id text        PRIMARY KEY,
    state         bytea       NOT NULL,
    -- clock_timestamp() of the write: readings ingested after it are learnt again on restore
    saved_at      timestamptz NOT NULL
);
