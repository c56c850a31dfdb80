-- Reference data: regions, industries, enterprises, zones, sensors.
CREATE TABLE IF NOT EXISTS regions (
    id          text PRIMARY KEY,             -- ISO 3166-2:KZ code
    kind        text NOT NULL CHECK (kind IN ('region', 'city')),
    name_en     text NOT NULL,
    name_ru     text NOT NULL,
    name_kk     text NOT NULL,
    center      text NOT NULL,
    timezone    text NOT NULL
);

CREATE TABLE IF NOT EXISTS industries (
    code        text PRIMARY KEY,             -- OKED section letter
    name_en     text NOT NULL,
    name_ru     text NOT NULL
);

CREATE TABLE IF NOT EXISTS enterprises (
    id              text PRIMARY KEY,
    name            text NOT NULL,
    name_ru         text NOT NULL DEFAULT '',
    region_id       text NOT NULL REFERENCES regions (id),
    industry_code   text NOT NULL REFERENCES industries (code),
    oked            text NOT NULL DEFAULT '',
    city            text NOT NULL DEFAULT '',
    lat             double precision,
    lon             double precision,
    workers         integer
);
CREATE INDEX IF NOT EXISTS enterprises_region_idx ON enterprises (region_id);

CREATE TABLE IF NOT EXISTS zones (
    id                      text PRIMARY KEY,
    enterprise_id           text NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    name                    text NOT NULL,
    kind                    text NOT NULL,
    normal_temperature_c    double precision
);
CREATE INDEX IF NOT EXISTS zones_enterprise_idx ON zones (enterprise_id);

CREATE TABLE IF NOT EXISTS sensors (
    id              text PRIMARY KEY,
    enterprise_id   text NOT NULL REFERENCES enterprises (id) ON DELETE CASCADE,
    zone_id         text NOT NULL REFERENCES zones (id) ON DELETE CASCADE,
    hazard          text NOT NULL,
    interval_s      double precision NOT NULL CHECK (interval_s > 0),
    gateway         boolean NOT NULL DEFAULT false,
    model           text NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS sensors_enterprise_idx ON sensors (enterprise_id);
