-- Sign-in failures are counted per user name, whether or not a user has that name:
-- wrong passwords lock a name nobody has exactly like a real one (same answer, same
-- Retry-After), so the lockout tells nobody which names exist. A new password (or
-- re-enabling the user) deletes the name's row; a row is forgotten a day after its
-- last failure unless it is locked.
CREATE TABLE IF NOT EXISTS sign_in_failures (
    username        text        PRIMARY KEY,
    failures        integer     NOT NULL,
    locked_until    timestamptz,
    last_failed_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sign_in_failures_last_idx ON sign_in_failures (last_failed_at);

-- Counts and locks kept on the users row until now move over; the columns go.
INSERT INTO sign_in_failures (username, failures, locked_until, last_failed_at)
    SELECT username, failed_sign_ins, locked_until, now() FROM users
    WHERE failed_sign_ins > 0 OR locked_until > now()
    ON CONFLICT (username) DO NOTHING;
ALTER TABLE users DROP COLUMN IF EXISTS failed_sign_ins;
ALTER TABLE users DROP COLUMN IF EXISTS locked_until;

-- JSON has no NaN or infinity (a 1.7e308 ppm reading became +inf mg/m3 in conversion).
-- Where a column the API serves may be null, a stored non-finite number becomes null,
-- which is what the API sends for one anyway. readings.value, sensors.interval_s and
-- delivery_attempts.latency_ms are NOT NULL and stay as they are (readings is far too
-- large to rewrite here); the API sends null for them and marks such a reading not
-- plausible. (PostgreSQL compares NaN equal to NaN, so IN finds it.)
UPDATE alerts SET value = NULL WHERE value IN ('NaN', 'Infinity', '-Infinity');
UPDATE alerts SET limit_value = NULL WHERE limit_value IN ('NaN', 'Infinity', '-Infinity');
UPDATE alert_history SET value = NULL WHERE value IN ('NaN', 'Infinity', '-Infinity');
UPDATE alert_events SET value = NULL WHERE value IN ('NaN', 'Infinity', '-Infinity');
UPDATE deliveries SET latency_ms = NULL WHERE latency_ms IN ('NaN', 'Infinity', '-Infinity');
UPDATE enterprises SET lat = NULL WHERE lat IN ('NaN', 'Infinity', '-Infinity');
UPDATE enterprises SET lon = NULL WHERE lon IN ('NaN', 'Infinity', '-Infinity');
