-- Routing's own state: warnings waiting for the next digest, and which late routes
-- (e.g. "a sensor broken for 4 hours goes to the inspector too") an alert has been sent to.
CREATE TABLE IF NOT EXISTS digest_items (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    change_id       text        NOT NULL,
    recipient       text        NOT NULL,   -- "user:42"
    recipient_name  text        NOT NULL DEFAULT '',
    language        text        NOT NULL DEFAULT 'ru',
    channel         text        NOT NULL,
    address         text        NOT NULL,
    secret          text,
    p256dh          text,
    auth            text,
    subscription_id bigint,
    notification    jsonb       NOT NULL,
    created_at      timestamptz NOT NULL,
    flushed_at      timestamptz,
    CONSTRAINT digest_items_once UNIQUE (change_id, recipient, channel, address)
);
CREATE INDEX IF NOT EXISTS digest_items_pending_idx ON digest_items (created_at)
    WHERE flushed_at IS NULL;

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS late_routed text[] NOT NULL DEFAULT '{}';
