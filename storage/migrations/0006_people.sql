-- People and their permissions: who may see which enterprises, and where each is told.
-- A role's scope lives on the row itself and the database refuses a scope that
-- does not fit the role (an inspector with no region, an officer with no enterprise).
CREATE TABLE IF NOT EXISTS users (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username       text        NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{3,64}$'),
    full_name      text        NOT NULL DEFAULT '',
    role           text        NOT NULL CHECK (role IN ('admin', 'labour_inspector',
                               'fire_inspector', 'safety_officer', 'control_room', 'worker')),
    -- inspectors: one or more regions; control room: one region, or none for the whole country
    regions        text[]      NOT NULL DEFAULT '{}',
    -- safety officer, worker: their enterprise
    enterprise_id  text        REFERENCES enterprises (id) ON DELETE CASCADE,
    -- positions in an escalation chain, e.g. 'duty', 'head'
    tags           text[]      NOT NULL DEFAULT '{}',
    language       text        NOT NULL DEFAULT 'ru' CHECK (language IN ('ru', 'kk')),
    email          text,
    phone          text,
    password_hash  text        NOT NULL,
    active         boolean     NOT NULL DEFAULT true,
    -- bumped when the password changes or the user is disabled: older tokens stop working
    token_version  integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_scope_fits_role CHECK (CASE role
        WHEN 'admin' THEN cardinality(regions) = 0 AND enterprise_id IS NULL
        WHEN 'labour_inspector' THEN cardinality(regions) >= 1 AND enterprise_id IS NULL
        WHEN 'fire_inspector' THEN cardinality(regions) >= 1 AND enterprise_id IS NULL
        WHEN 'control_room' THEN cardinality(regions) <= 1 AND enterprise_id IS NULL
        ELSE cardinality(regions) = 0 AND enterprise_id IS NOT NULL END)
);
CREATE INDEX IF NOT EXISTS users_regions_idx ON users USING gin (regions);
CREATE INDEX IF NOT EXISTS users_enterprise_idx ON users (enterprise_id);

-- Where a person is told besides Web Push: an e-mail address, a webhook (with its
-- HMAC secret), an apprise URL (Telegram, SMS gateway, ntfy...).
CREATE TABLE IF NOT EXISTS user_channels (
    user_id   bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    channel   text   NOT NULL CHECK (channel IN ('email', 'webhook', 'apprise')),
    address   text   NOT NULL,
    secret    text,
    PRIMARY KEY (user_id, channel, address)
);

-- Web Push subscriptions of a user's browsers and phones (RFC 8030 endpoint + RFC 8291 keys).
CREATE TABLE IF NOT EXISTS push_subscriptions (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    endpoint        text        NOT NULL UNIQUE,
    p256dh          text        NOT NULL,
    auth            text        NOT NULL,
    user_agent      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_success_at timestamptz
);
CREATE INDEX IF NOT EXISTS push_subscriptions_user_idx ON push_subscriptions (user_id);
