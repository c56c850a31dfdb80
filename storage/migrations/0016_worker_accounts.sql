-- Accounts for thousands of workers: imported from the enterprise's roster (CSV), each
-- sets their own password with a one-time activation code. No shared passwords.

-- A worker imported but not activated yet has no password at all: sign-in refuses them
-- exactly as it refuses a wrong password. Everyone else keeps needing one.
ALTER TABLE users ALTER COLUMN password_hash DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_password_unless_worker
    CHECK (password_hash IS NOT NULL OR role = 'worker');

-- The worker's personnel number (unique within their enterprise: the roster's key) and
-- their workplace zone, which must be a zone of their own enterprise.
ALTER TABLE users ADD COLUMN IF NOT EXISTS personnel_number text
    CHECK (personnel_number IS NULL OR length(personnel_number) BETWEEN 1 AND 32);
ALTER TABLE users ADD COLUMN IF NOT EXISTS zone_id text;
ALTER TABLE zones ADD CONSTRAINT zones_id_enterprise_key UNIQUE (id, enterprise_id);
ALTER TABLE users ADD CONSTRAINT users_zone_of_own_enterprise
    FOREIGN KEY (zone_id, enterprise_id) REFERENCES zones (id, enterprise_id)
    ON DELETE SET NULL (zone_id);
CREATE UNIQUE INDEX IF NOT EXISTS users_personnel_number_key
    ON users (enterprise_id, personnel_number) WHERE personnel_number IS NOT NULL;

-- One-time activation codes: only an HMAC of the code (keyed by the server's secret) is
-- kept; one live code per user (a new one replaces the old), used once, expiring.
CREATE TABLE IF NOT EXISTS activation_codes (
    user_id     bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    code_hash   text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    issued_by   text
);
CREATE INDEX IF NOT EXISTS activation_codes_expires_idx ON activation_codes (expires_at);

-- Wrong activation codes are counted per client address and lock it for a while, as
-- wrong passwords lock a user name (sign_in_failures, migration 0010). A table of its
-- own: nothing typed at the sign-in form can lock anyone's activation.
CREATE TABLE IF NOT EXISTS activation_failures (
    client          text        PRIMARY KEY,
    failures        integer     NOT NULL,
    locked_until    timestamptz,
    last_failed_at  timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS activation_failures_last_idx ON activation_failures (last_failed_at);
