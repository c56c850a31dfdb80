-- Readings, one row per sensor and timestamp, in the hazard's canonical unit.
-- (sensor_id, ts) is the identity of a reading: redelivery never duplicates.
-- No foreign key to sensors: ingest must not stall on a device not yet provisioned,
-- and TimescaleDB hypertables pay for every foreign key on insert.
CREATE TABLE IF NOT EXISTS readings (
    sensor_id       text             NOT NULL,
    ts              timestamptz      NOT NULL,
    enterprise_id   text             NOT NULL,
    hazard          text             NOT NULL,
    value           double precision NOT NULL,  -- canonical unit of the hazard
    unit            text             NOT NULL,
    raw_value       double precision NOT NULL,  -- as the device sent it
    raw_unit        text             NOT NULL,
    seq             bigint,
    plausible       boolean          NOT NULL DEFAULT true,
    ingested_at     timestamptz      NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (sensor_id, ts)
);

-- Room for the detection issues: exposures, anomalies, alerts.
CREATE TABLE IF NOT EXISTS exposures (
    sensor_id       text             NOT NULL,
    ts              timestamptz      NOT NULL,  -- end of the minute
    enterprise_id   text             NOT NULL,
    hazard          text             NOT NULL,
    twa             double precision,           -- shift time-weighted average so far
    stel            double precision,           -- 15-minute average
    ceiling         double precision,           -- maximum in the minute
    PRIMARY KEY (sensor_id, ts)
);

CREATE TABLE IF NOT EXISTS anomalies (
    sensor_id       text             NOT NULL,
    ts              timestamptz      NOT NULL,
    enterprise_id   text             NOT NULL,
    detector        text             NOT NULL,
    score           double precision NOT NULL CHECK (score BETWEEN 0 AND 1),
    PRIMARY KEY (sensor_id, ts, detector)
);

CREATE TABLE IF NOT EXISTS alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enterprise_id   text        NOT NULL,
    sensor_id       text,
    hazard          text,
    kind            text        NOT NULL,
    severity        text        NOT NULL CHECK (severity IN ('warning', 'critical')),
    state           text        NOT NULL DEFAULT 'open',
    opened_at       timestamptz NOT NULL,
    value           double precision,
    message         text        NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS alerts_enterprise_idx ON alerts (enterprise_id, opened_at DESC);
