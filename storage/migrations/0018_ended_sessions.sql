-- Sessions ended by signing out. Tokens are signed, not stored: a session that ends
-- before its tokens expire is remembered here by its id (the tokens' `sid` claim) until
-- the last of its tokens would have expired anyway, and refused meanwhile.
CREATE TABLE IF NOT EXISTS ended_sessions (
    sid         text        PRIMARY KEY,
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ended_at    timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ended_sessions_expires_idx ON ended_sessions (expires_at);
