-- The workers' app through the API: a report's photo, kept in the database (one per
-- report, at most 5 MiB, JPEG, PNG or WebP as its first bytes say); the enterprise's
-- emergency line, shown to its workers; a report's location accuracy (metres, as the
-- phone's GPS gives it); workers' own reports found by worker.
CREATE TABLE IF NOT EXISTS report_photos (
    report_id    text        PRIMARY KEY REFERENCES reports (report_id) ON DELETE CASCADE,
    content_type text        NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'image/webp')),
    data         bytea       NOT NULL CHECK (octet_length(data) BETWEEN 1 AND 5242880),
    sha256       text        NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS emergency_phone text;

ALTER TABLE reports ADD COLUMN IF NOT EXISTS accuracy_m double precision
    CHECK (accuracy_m IS NULL OR accuracy_m >= 0);

CREATE INDEX IF NOT EXISTS reports_worker_idx ON reports (enterprise_id, worker_id, ts DESC);
