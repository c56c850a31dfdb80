-- Heartbeats of the running components (workers, bridges, notifiers): each writes its row
-- every few seconds, so that anyone with the database — a control-room wall in another
-- data centre — can tell a running pipeline from a dead one (the ready files under
-- state_dir/run only the local launcher can see).
CREATE TABLE IF NOT EXISTS components (
    name      text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200),
    kind      text NOT NULL CHECK (kind IN ('worker', 'bridge', 'notifier', 'api')),
    host      text NOT NULL,
    pid       integer NOT NULL,
    ready     boolean NOT NULL,
    started_at timestamptz NOT NULL,
    seen_at   timestamptz NOT NULL
);
