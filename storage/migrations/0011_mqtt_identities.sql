-- Who may connect to the MQTT broker: sensors, gateways, workers' apps and services,
-- each with its own secret (only its hash is kept, in Mosquitto's PBKDF2-SHA512
-- format). `qorgau devices sync` renders the broker's password and ACL files from here.
CREATE TABLE IF NOT EXISTS mqtt_identities (
    username        text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$'),
    kind            text NOT NULL CHECK (kind IN ('sensor', 'gateway', 'app', 'service')),
    enterprise_id   text REFERENCES enterprises (id) ON DELETE CASCADE,
    sensor_ids      text[] NOT NULL DEFAULT '{}',   -- a sensor: itself; a gateway: those behind it
    all_sensors     boolean NOT NULL DEFAULT false,  -- a gateway for every sensor of its enterprise
    service         text,                            -- a service's role: bridge, notifier, api
    password_hash   text NOT NULL,
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    rotated_at      timestamptz,
    revoked_at      timestamptz,
    CHECK ((kind = 'service') = (enterprise_id IS NULL)),
    CHECK ((kind = 'service') = (service IS NOT NULL)),
    CHECK (kind <> 'sensor' OR cardinality(sensor_ids) = 1),
    CHECK (all_sensors = false OR kind = 'gateway')
);
CREATE INDEX IF NOT EXISTS mqtt_identities_enterprise_idx ON mqtt_identities (enterprise_id);

-- Any change wakes `qorgau devices sync --watch`.
CREATE OR REPLACE FUNCTION mqtt_identities_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qorgau_mqtt_identities', '');
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS mqtt_identities_changed ON mqtt_identities;
CREATE TRIGGER mqtt_identities_changed AFTER INSERT OR UPDATE OR DELETE ON mqtt_identities
    FOR EACH STATEMENT EXECUTE FUNCTION mqtt_identities_changed();

-- What the broker was last given, so that `qorgau devices` can say when a change is live.
CREATE TABLE IF NOT EXISTS mqtt_auth_sync (
    id          integer PRIMARY KEY CHECK (id = 1),
    synced_at   timestamptz NOT NULL,
    identities  integer NOT NULL,
    digest      text NOT NULL
);

-- The bridge checks every message against the registry (sensors, workers' apps):
-- a change wakes it to read the registry again.
CREATE OR REPLACE FUNCTION registry_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qorgau_registry', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;
DROP TRIGGER IF EXISTS sensors_registry_changed ON sensors;
CREATE TRIGGER sensors_registry_changed AFTER INSERT OR UPDATE OR DELETE ON sensors
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
DROP TRIGGER IF EXISTS identities_registry_changed ON mqtt_identities;
CREATE TRIGGER identities_registry_changed AFTER INSERT OR UPDATE OR DELETE ON mqtt_identities
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
DROP TRIGGER IF EXISTS users_registry_changed ON users;
CREATE TRIGGER users_registry_changed AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION registry_changed();
