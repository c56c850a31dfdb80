"""Read queries for the API: reference data, sensors and their readings.

Every function takes an open ``psycopg.AsyncConnection`` first and keyword-only
arguments after it, returns frozen row dataclasses (``class_row``), and returns
``None`` when the one thing asked for does not exist. Values always travel as
query parameters.

Every query that returns enterprise data takes the caller's `core.access.Scope`
(keyword ``scope``, no default) and filters by it in SQL: an object outside the
scope is simply not found, exactly like one that does not exist.

Readings over a long range are downsampled in the database: when more than
``max_points`` raw readings fall in the range, `readings_for_sensor` returns
``date_bin`` buckets (aligned to the Unix epoch, so the same range always yields
the same buckets) with the average, minimum, maximum and count of each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import class_row, tuple_row

from core.access import Scope

__all__ = [
    "EnterpriseRow",
    "LatestReadingRow",
    "ReadingBucket",
    "ReadingPoint",
    "RegionRow",
    "SensorRow",
    "WorkplaceSensorRow",
    "WorkplaceZoneRow",
    "bucket_width_seconds",
    "count_readings",
    "get_enterprise",
    "get_sensor",
    "latest_readings",
    "list_enterprises",
    "list_regions",
    "list_sensors",
    "readings_for_sensor",
    "workplace",
]


@dataclass(frozen=True, slots=True)
class RegionRow:
    id: str
    kind: str
    name_en: str
    name_ru: str
    name_kk: str
    center: str
    timezone: str
    enterprise_count: int


@dataclass(frozen=True, slots=True)
class EnterpriseRow:
    id: str
    name: str
    name_ru: str
    region_id: str
    industry_code: str
    oked: str
    city: str
    lat: float | None
    lon: float | None
    workers: int | None
    sensor_count: int
    emergency_phone: str | None


@dataclass(frozen=True, slots=True)
class SensorRow:
    id: str
    enterprise_id: str
    zone_id: str
    zone_name: str
    hazard: str
    interval_s: float
    gateway: bool
    model: str
    last_ts: datetime | None
    last_value: float | None
    exposure_ts: datetime | None = None  # the newest minute of exposures
    twa: float | None = None  # shift average so far, canonical unit (dB(A) for noise)
    stel: float | None = None  # 15-minute average


@dataclass(frozen=True, slots=True)
class ReadingPoint:
    """One stored reading, in the hazard's canonical unit."""

    ts: datetime
    value: float
    plausible: bool


@dataclass(frozen=True, slots=True)
class ReadingBucket:
    """Readings of one sensor in ``[ts, ts + width)``; ``implausible`` counts flagged ones."""

    ts: datetime
    avg: float
    min: float
    max: float
    count: int
    implausible: int


@dataclass(frozen=True, slots=True)
class LatestReadingRow:
    sensor_id: str
    ts: datetime
    hazard: str
    value: float
    unit: str
    plausible: bool


# The scope filter, on an enterprises table aliased ``e``; parameters from Scope.sql_params().
IN_SCOPE = (
    "(%(scope_national)s OR e.region_id = ANY(%(scope_regions)s::text[])"
    " OR e.id = %(scope_enterprise)s::text)"
)
# The ids of the enterprises in scope, for tables that carry an enterprise_id.
SCOPED_ENTERPRISES = "(SELECT e.id FROM enterprises e WHERE " + IN_SCOPE + ")"  # noqa: S608

# Composed of constants only (no input), hence the noqa.
_LIST_REGIONS = (
    "SELECT r.id, r.kind, r.name_en, r.name_ru, r.name_kk, r.center, r.timezone,"  # noqa: S608
    " (SELECT count(*) FROM enterprises e WHERE e.region_id = r.id AND "
    + IN_SCOPE
    + ") AS enterprise_count FROM regions r ORDER BY r.id"
)

_ENTERPRISE_COLUMNS = """
SELECT e.id, e.name, e.name_ru, e.region_id, e.industry_code, e.oked, e.city,
       e.lat, e.lon, e.workers,
       (SELECT count(*) FROM sensors s WHERE s.enterprise_id = e.id) AS sensor_count,
       e.emergency_phone
FROM enterprises e
"""

_LIST_ENTERPRISES = (
    _ENTERPRISE_COLUMNS
    + f"""
WHERE {IN_SCOPE}
  AND (%(region_id)s::text IS NULL OR e.region_id = %(region_id)s)
  AND (%(industry_code)s::text IS NULL OR e.industry_code = %(industry_code)s)
ORDER BY e.id
LIMIT %(limit)s OFFSET %(offset)s
"""
)

_GET_ENTERPRISE = _ENTERPRISE_COLUMNS + f"WHERE e.id = %(enterprise_id)s AND {IN_SCOPE}\n"

# The latest reading per sensor is one backward step on the (sensor_id, ts) primary key.
_SENSOR_COLUMNS = """
SELECT s.id, s.enterprise_id, s.zone_id, z.name AS zone_name, s.hazard, s.interval_s,
       s.gateway, s.model, last.ts AS last_ts, last.value AS last_value,
       x.ts AS exposure_ts, x.twa, x.stel
FROM sensors s
JOIN zones z ON z.id = s.zone_id
JOIN enterprises e ON e.id = s.enterprise_id
LEFT JOIN LATERAL (
    SELECT r.ts, r.value FROM readings r
    WHERE r.sensor_id = s.id
    ORDER BY r.ts DESC
    LIMIT 1
) AS last ON true
LEFT JOIN LATERAL (
    SELECT x.ts, x.twa, x.stel FROM exposures x
    WHERE x.sensor_id = s.id
    ORDER BY x.ts DESC
    LIMIT 1
) AS x ON true
"""

_LIST_SENSORS = (
    _SENSOR_COLUMNS
    + f"""
WHERE {IN_SCOPE}
  AND (%(enterprise_id)s::text IS NULL OR s.enterprise_id = %(enterprise_id)s)
  AND (%(zone_id)s::text IS NULL OR s.zone_id = %(zone_id)s)
  AND (%(hazard)s::text IS NULL OR s.hazard = %(hazard)s)
ORDER BY s.id
"""
)

_GET_SENSOR = _SENSOR_COLUMNS + f"WHERE s.id = %(sensor_id)s AND {IN_SCOPE}\n"

_RAW_READINGS = (
    """
SELECT ts, value, plausible
FROM readings
WHERE sensor_id = %(sensor_id)s AND ts >= %(start)s AND ts < %(end)s
  AND enterprise_id IN """
    + SCOPED_ENTERPRISES
    + """
ORDER BY ts
LIMIT %(limit)s
"""
)

_BUCKETED_READINGS = (
    """
SELECT date_bin(%(width)s::interval, ts, TIMESTAMPTZ 'epoch') AS ts,
       avg(value) AS avg, min(value) AS min, max(value) AS max,
       count(*) AS count, count(*) FILTER (WHERE NOT plausible) AS implausible
FROM readings
WHERE sensor_id = %(sensor_id)s AND ts >= %(start)s AND ts < %(end)s
  AND enterprise_id IN """
    + SCOPED_ENTERPRISES
    + """
GROUP BY 1
ORDER BY 1
"""
)

_COUNT_READINGS = """
SELECT count(*) FROM readings WHERE %(since)s::timestamptz IS NULL OR ts >= %(since)s
"""

_LATEST_READINGS = """
SELECT sensor_id, ts, hazard, value, unit, plausible
FROM readings
WHERE enterprise_id = %(enterprise_id)s
ORDER BY ts DESC, sensor_id
LIMIT %(limit)s
"""


async def list_regions(conn: psycopg.AsyncConnection[Any], *, scope: Scope) -> list[RegionRow]:
    """Every region and city of significance, by ISO 3166-2:KZ code.

    Regions are reference data everyone may see; ``enterprise_count`` counts only
    the enterprises inside ``scope``.
    """
    async with conn.cursor(row_factory=class_row(RegionRow)) as cur:
        await cur.execute(_LIST_REGIONS, scope.sql_params())
        return await cur.fetchall()


async def list_enterprises(
    conn: psycopg.AsyncConnection[Any],
    *,
    scope: Scope,
    region_id: str | None = None,
    industry_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[EnterpriseRow]:
    """Enterprises by id, optionally only those of one region and/or industry (OKED section)."""
    params = {
        **scope.sql_params(),
        "region_id": region_id,
        "industry_code": industry_code,
        "limit": limit,
        "offset": offset,
    }
    async with conn.cursor(row_factory=class_row(EnterpriseRow)) as cur:
        await cur.execute(_LIST_ENTERPRISES, params)
        return await cur.fetchall()


async def get_enterprise(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, enterprise_id: str
) -> EnterpriseRow | None:
    async with conn.cursor(row_factory=class_row(EnterpriseRow)) as cur:
        await cur.execute(_GET_ENTERPRISE, {**scope.sql_params(), "enterprise_id": enterprise_id})
        return await cur.fetchone()


async def list_sensors(
    conn: psycopg.AsyncConnection[Any],
    *,
    scope: Scope,
    enterprise_id: str | None = None,
    zone_id: str | None = None,
    hazard: str | None = None,
) -> list[SensorRow]:
    """Sensors by id, each with its zone's name and latest reading (if any)."""
    params = {
        **scope.sql_params(),
        "enterprise_id": enterprise_id,
        "zone_id": zone_id,
        "hazard": hazard,
    }
    async with conn.cursor(row_factory=class_row(SensorRow)) as cur:
        await cur.execute(_LIST_SENSORS, params)
        return await cur.fetchall()


async def get_sensor(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, sensor_id: str
) -> SensorRow | None:
    async with conn.cursor(row_factory=class_row(SensorRow)) as cur:
        await cur.execute(_GET_SENSOR, {**scope.sql_params(), "sensor_id": sensor_id})
        return await cur.fetchone()


def bucket_width_seconds(start: datetime, end: datetime, max_points: int) -> int:
    """Whole seconds per bucket so that ``[start, end)`` needs at most ``max_points`` widths.

    >>> from datetime import UTC
    >>> t0 = datetime(2025, 1, 1, tzinfo=UTC)
    >>> bucket_width_seconds(t0, t0 + timedelta(hours=1), 1000)
    4
    >>> bucket_width_seconds(t0, t0 + timedelta(days=1), 1000)
    87
    >>> bucket_width_seconds(t0, t0 + timedelta(seconds=10), 1000)
    1
    """
    seconds = (end - start) / timedelta(seconds=1)
    return max(1, math.ceil(seconds / max_points))


async def readings_for_sensor(
    conn: psycopg.AsyncConnection[Any],
    *,
    scope: Scope,
    sensor_id: str,
    start: datetime,
    end: datetime,
    max_points: int,
) -> tuple[list[ReadingPoint] | list[ReadingBucket], bool, int | None]:
    """Readings of one sensor in ``[start, end)`` as ``(points, downsampled, bucket_seconds)``.

    Up to ``max_points`` readings come back raw (``downsampled`` false, no bucket
    width). Beyond that, the range is cut into epoch-aligned buckets of
    `bucket_width_seconds`; empty buckets are omitted, and because ``start``
    need not fall on a bucket boundary there can be ``max_points + 1`` of them.
    """
    scoped = scope.sql_params()
    params = {**scoped, "sensor_id": sensor_id, "start": start, "end": end, "limit": max_points + 1}
    async with conn.cursor(row_factory=class_row(ReadingPoint)) as cur:
        # One row past the budget tells us to downsample without counting the whole range.
        await cur.execute(_RAW_READINGS, params)
        raw = await cur.fetchall()
    if len(raw) <= max_points:
        return raw, False, None
    width = bucket_width_seconds(start, end, max_points)
    params = {
        **scoped,
        "sensor_id": sensor_id,
        "start": start,
        "end": end,
        "width": timedelta(seconds=width),
    }
    async with conn.cursor(row_factory=class_row(ReadingBucket)) as bcur:
        await bcur.execute(_BUCKETED_READINGS, params)
        return await bcur.fetchall(), True, width


async def count_readings(
    conn: psycopg.AsyncConnection[Any], *, since: datetime | None = None
) -> int:
    """How many readings are stored (with ``ts >= since`` when given)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(_COUNT_READINGS, {"since": since})
        row = await cur.fetchone()
    return int(row[0]) if row is not None else 0


async def latest_readings(
    conn: psycopg.AsyncConnection[Any], *, enterprise_id: str, limit: int = 100
) -> list[LatestReadingRow]:
    """The newest ``limit`` readings of one enterprise, newest first."""
    async with conn.cursor(row_factory=class_row(LatestReadingRow)) as cur:
        await cur.execute(_LATEST_READINGS, {"enterprise_id": enterprise_id, "limit": limit})
        return await cur.fetchall()


# --- a worker's workplace ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkplaceZoneRow:
    id: str
    name: str
    kind: str


@dataclass(frozen=True, slots=True)
class WorkplaceSensorRow:
    """A sensor of a zone, its newest reading and what its open alerts say."""

    id: str
    zone_id: str
    hazard: str
    interval_s: float
    last_ts: datetime | None
    last_value: float | None
    last_plausible: bool | None
    alert_level: int  # the gravest open limit or fire alert: 0 none, 1 warning, 2 critical
    fault: bool  # an open sensor_fault or stale alert


_WORKPLACE_ZONES = """
SELECT z.id, z.name, z.kind FROM zones z
WHERE z.enterprise_id = %(enterprise_id)s AND (%(zone_id)s::text IS NULL OR z.id = %(zone_id)s)
ORDER BY z.id
"""

_WORKPLACE_SENSORS = """
SELECT s.id, s.zone_id, s.hazard, s.interval_s,
       last.ts AS last_ts, last.value AS last_value, last.plausible AS last_plausible,
       COALESCE((SELECT max(CASE a.severity WHEN 'critical' THEN 2 ELSE 1 END) FROM alerts a
                 WHERE a.sensor_id = s.id AND a.state = 'open'
                   AND a.kind IN ('threshold', 'ceiling', 'stel', 'twa', 'fire')), 0)
           AS alert_level,
       EXISTS (SELECT 1 FROM alerts a WHERE a.sensor_id = s.id AND a.state = 'open'
                 AND a.kind IN ('sensor_fault', 'stale')) AS fault
FROM sensors s
LEFT JOIN LATERAL (
    SELECT r.ts, r.value, r.plausible FROM readings r
    WHERE r.sensor_id = s.id
    ORDER BY r.ts DESC
    LIMIT 1
) AS last ON true
WHERE s.enterprise_id = %(enterprise_id)s
  AND (%(zone_id)s::text IS NULL OR s.zone_id = %(zone_id)s)
ORDER BY s.zone_id, s.id
"""


async def workplace(
    conn: psycopg.AsyncConnection, *, enterprise_id: str, zone_id: str | None
) -> tuple[list[WorkplaceZoneRow], list[WorkplaceSensorRow]]:
    """The zones of an enterprise (one, when ``zone_id`` is given) and their sensors with
    their newest reading and open alerts. The caller's scope is the enterprise itself."""
    params = {"enterprise_id": enterprise_id, "zone_id": zone_id}
    async with conn.cursor(row_factory=class_row(WorkplaceZoneRow)) as cur:
        await cur.execute(_WORKPLACE_ZONES, params)
        zones = await cur.fetchall()
    async with conn.cursor(row_factory=class_row(WorkplaceSensorRow)) as cur:
        await cur.execute(_WORKPLACE_SENSORS, params)
        sensors = await cur.fetchall()
    return zones, sensors
