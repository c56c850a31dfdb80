-- Safety detection: machine-side alerts keyed across their changes, the audit of
-- every change, detector checkpoints, and workers' reports from the mobile app.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS alert_key    text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS zone_id      text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS limit_value  double precision;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS source       text NOT NULL DEFAULT '';
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS escalated_at timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS cleared_at   timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS updated_at   timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX IF NOT EXISTS alerts_key_idx ON alerts (alert_key);
-- One open alert per (sensor, kind): the database refuses a second one.
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_open_idx ON alerts (sensor_id, kind)
    WHERE state = 'open';
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_state_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_state_check CHECK (state IN ('open', 'cleared', 'retracted'));

CREATE TABLE IF NOT EXISTS alert_events (
    alert_key   text        NOT NULL,
    action      text        NOT NULL CHECK (action IN ('open', 'escalate', 'clear', 'retract')),
    ts          timestamptz NOT NULL,  -- event time of the reading that caused it
    severity    text        NOT NULL,
    value       double precision,
    message     text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_key, action, ts)
);

CREATE TABLE IF NOT EXISTS detector_state (
    enterprise_id text        PRIMARY KEY,
    state         bytea       NOT NULL,
    watermark     timestamptz,
    -- clock_timestamp() of the write: readings ingested after it are replayed on restore
    saved_at      timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS reports (
    report_id     text        PRIMARY KEY,  -- the app's id, or a hash of the message
    enterprise_id text        NOT NULL,
    worker_id     text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN
                  ('sos', 'man_down', 'incident', 'near_miss', 'hazard_observation')),
    ts            timestamptz NOT NULL,
    zone_id       text,
    text          text        NOT NULL DEFAULT '',
    lat           double precision,
    lon           double precision,
    photo_ref     text,
    received_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS reports_enterprise_idx ON reports (enterprise_id, ts DESC);
