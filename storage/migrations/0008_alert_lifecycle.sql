-- The human side of an alert: acknowledged (who, when), resolved (who, when, why),
-- re-opened, escalated to the next level, with every change in alert_history.
--
-- `state` stays the machine's view of the condition (open = still going on,
-- cleared, retracted); `status` is where people are with it.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'open';
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_status_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_status_check
    CHECK (status IN ('open', 'acknowledged', 'resolved'));
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_at    timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS acknowledged_by    bigint REFERENCES users (id);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_at        timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolved_by        bigint REFERENCES users (id);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolution         text;
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS alerts_resolution_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_resolution_check CHECK (resolution IN
    ('real_incident', 'false_alarm', 'sensor_fault', 'drill', 'other', 'auto_cleared'));
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS resolution_comment text;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS reopened_count     integer NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS reopened_at        timestamptz;
-- Escalation of an unacknowledged critical alert: the chain level reached and when
-- people were last told (reminders are due from it).
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS escalation_level   integer NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS last_notified_at   timestamptz;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS reminders          integer NOT NULL DEFAULT 0;
-- Anything older than this migration was never seen by a person: leave it open, except
-- what the machine already cleared or retracted.
UPDATE alerts SET status = 'resolved', resolution = 'auto_cleared', resolved_at = cleared_at
    WHERE state IN ('cleared', 'retracted') AND status = 'open' AND resolution IS NULL;
CREATE INDEX IF NOT EXISTS alerts_status_idx ON alerts (status, severity) WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_recent_idx ON alerts (sensor_id, kind, source, cleared_at DESC);

-- Every machine key that ever named an alert: a re-opened alert keeps its row, and the
-- machine's later changes (escalate, clear) under the new key still find it.
CREATE TABLE IF NOT EXISTS alert_keys (
    alert_key text   PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id) ON DELETE CASCADE
);
INSERT INTO alert_keys (alert_key, alert_id)
    SELECT alert_key, id FROM alerts WHERE alert_key IS NOT NULL ON CONFLICT DO NOTHING;

-- The audit trail: every change of every alert, by the machine or by a person.
CREATE TABLE IF NOT EXISTS alert_history (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,   -- event time (machine) or the moment a person acted
    actor_id    bigint      REFERENCES users (id),
    actor       text        NOT NULL,   -- a user name, or 'machine'
    action      text        NOT NULL CHECK (action IN ('open', 'escalate', 'clear', 'retract',
                            'reopen', 'acknowledge', 'resolve', 'auto_resolve', 'comment',
                            'remind', 'escalate_level')),
    status      text        NOT NULL,   -- the human status after the change
    severity    text        NOT NULL,
    value       double precision,
    reason      text,
    comment     text,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS alert_history_alert_idx ON alert_history (alert_id, id);
