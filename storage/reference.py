"""Upsert the reference data (regions, industries, enterprises, zones, sensors)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from core.reference import ReferenceData
from core.types import Sensor

__all__ = ["add_sensors", "seed_reference"]


def seed_reference(dsn: str, ref: ReferenceData) -> dict[str, int]:
    """Insert or update every reference row; return counts per table."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO regions (id, kind, name_en, name_ru, name_kk, center, timezone)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, name_en = EXCLUDED.name_en,"
            " name_ru = EXCLUDED.name_ru, name_kk = EXCLUDED.name_kk, center = EXCLUDED.center,"
            " timezone = EXCLUDED.timezone",
            [
                (r.id, r.kind, r.name_en, r.name_ru, r.name_kk, r.center, r.timezone)
                for r in ref.regions
            ],
        )
        cur.executemany(
            "INSERT INTO industries (code, name_en, name_ru) VALUES (%s, %s, %s)"
            " ON CONFLICT (code) DO UPDATE SET name_en = EXCLUDED.name_en,"
            " name_ru = EXCLUDED.name_ru",
            [(i.code, i.name_en, i.name_ru) for i in ref.industries],
        )
        cur.executemany(
            "INSERT INTO enterprises (id, name, name_ru, region_id, industry_code, oked, city,"
            " lat, lon, workers, emergency_phone)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, name_ru = EXCLUDED.name_ru,"
            " region_id = EXCLUDED.region_id, industry_code = EXCLUDED.industry_code,"
            " oked = EXCLUDED.oked, city = EXCLUDED.city, lat = EXCLUDED.lat,"
            " lon = EXCLUDED.lon, workers = EXCLUDED.workers,"
            " emergency_phone = EXCLUDED.emergency_phone",
            [
                (
                    e.id,
                    e.name,
                    e.name_ru,
                    e.region_id,
                    e.industry_code,
                    e.oked,
                    e.city,
                    e.lat,
                    e.lon,
                    e.workers,
                    e.emergency_phone,
                )
                for e in ref.enterprises
            ],
        )
        zones = [z for e in ref.enterprises for z in e.zones]
        cur.executemany(
            "INSERT INTO zones (id, enterprise_id, name, kind, normal_temperature_c)"
            " VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " name = EXCLUDED.name, kind = EXCLUDED.kind,"
            " normal_temperature_c = EXCLUDED.normal_temperature_c",
            [(z.id, z.enterprise_id, z.name, z.kind, z.normal_temperature_c) for z in zones],
        )
        sensors = ref.sensors
        cur.executemany(
            "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s, gateway, model)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " zone_id = EXCLUDED.zone_id, hazard = EXCLUDED.hazard,"
            " interval_s = EXCLUDED.interval_s, gateway = EXCLUDED.gateway,"
            " model = EXCLUDED.model",
            [
                (s.id, s.enterprise_id, s.zone_id, s.hazard, s.interval_s, s.gateway, s.model)
                for s in sensors
            ],
        )
        return {
            "regions": len(ref.regions),
            "industries": len(ref.industries),
            "enterprises": len(ref.enterprises),
            "zones": len(zones),
            "sensors": len(sensors),
        }


def add_sensors(dsn: str, sensors: Sequence[Sensor]) -> None:
    """Register sensors of existing enterprises and zones (new ones, or changed)."""
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s, gateway, model)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET enterprise_id = EXCLUDED.enterprise_id,"
            " zone_id = EXCLUDED.zone_id, hazard = EXCLUDED.hazard,"
            " interval_s = EXCLUDED.interval_s",
            [
                (s.id, s.enterprise_id, s.zone_id, s.hazard, s.interval_s, s.gateway, s.model)
                for s in sensors
            ],
        )
