-- The delivery log: one row per (change, recipient, channel, address), and every attempt.
-- A row keeps the notification and the target it was for, so a process that dies
-- mid-delivery leaves enough behind for another to finish the job. A claim
-- (claimed_by, claimed_until) is a lease: only its holder sends, and it lapses by
-- itself when the holder is gone.
CREATE TABLE IF NOT EXISTS deliveries (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_id        text        NOT NULL,
    alert_key        text,
    recipient        text        NOT NULL,  -- "user:42", "app:E001/W17"
    recipient_name   text        NOT NULL DEFAULT '',
    language         text        NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'kk')),
    channel          text        NOT NULL,
    address          text        NOT NULL,
    -- what resuming needs besides the address: a webhook's own HMAC key, a push
    -- subscription's keys and row (no foreign key: the log outlives a pruned subscription)
    target_secret    text,
    p256dh           text,
    auth             text,
    subscription_id  bigint,
    notification     jsonb       NOT NULL,
    status           text        NOT NULL DEFAULT 'pending' CHECK (status IN
                     ('pending', 'retrying', 'sent', 'failed', 'rejected', 'gone')),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    claimed_by       text,
    claimed_until    timestamptz,
    sent_at          timestamptz,
    latency_ms       double precision,  -- of the accepted attempt
    http_status      integer,           -- of the last attempt
    last_error       text,
    CONSTRAINT deliveries_once UNIQUE (change_id, recipient, channel, address)
);
CREATE INDEX IF NOT EXISTS deliveries_alert_key_idx ON deliveries (alert_key);
-- What resume_pending scans: only unfinished rows, by when they are due.
CREATE INDEX IF NOT EXISTS deliveries_due_idx ON deliveries (status, next_attempt_at)
    WHERE status IN ('pending', 'retrying');

CREATE TABLE IF NOT EXISTS delivery_attempts (
    delivery_id  bigint           NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt      integer          NOT NULL CHECK (attempt >= 1),
    at           timestamptz      NOT NULL,
    status       text             NOT NULL CHECK (status IN ('sent', 'retry', 'rejected', 'gone')),
    latency_ms   double precision NOT NULL,
    http_status  integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);
