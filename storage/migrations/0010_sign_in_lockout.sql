-- Repeated wrong passwords lock a user name for a while (password guessing).
ALTER TABLE users ADD COLUMN IF NOT EXISTS failed_sign_ins integer NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN IF NOT EXISTS locked_until timestamptz;
