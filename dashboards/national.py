"""The national overview: the whole country on one wall.

Readings per second and sensors reporting (is the system alive?), open alerts by
region and kind (where is it happening, and what?), enterprises on a map coloured
by their worst open alert, the regions and the newest open alerts with links
down to the region and enterprise walls.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b

from core.catalogue import Catalogue
from core.limits import Limits
from dashboards import links
from dashboards.grafana import (
    SQL,
    barchart_panel,
    geomap_panel,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.sql import ALERT_KINDS, OPEN, SEVERITY_LEVEL, reporting

__all__ = ["UID", "national"]

UID = "qorgau-national"

READINGS_PER_S = """
SELECT count(*) / 60.0 AS "readings/s"
FROM readings
WHERE ts > $__timeTo()::timestamptz - interval '1 minute' AND ts <= $__timeTo()::timestamptz
"""

READINGS_RATE = """
SELECT $__timeGroupAlias(bucket, $__interval), sum(n) / ($__interval_ms / 1000.0) AS "readings/s"
FROM readings_1m
WHERE $__timeFilter(bucket)
GROUP BY 1
ORDER BY 1
"""

SENSORS_OVER_TIME = """
SELECT $__timeGroupAlias(bucket, $__interval), count(DISTINCT sensor_id) AS "sensors reporting"
FROM readings_1m
WHERE $__timeFilter(bucket)
GROUP BY 1
ORDER BY 1
"""

OPEN_ALERTS = f"""
SELECT count(*) AS "open alerts" FROM alerts a WHERE {OPEN}
"""

CRITICAL_ALERTS = f"""
SELECT count(*) AS "critical" FROM alerts a WHERE {OPEN} AND a.severity = 'critical'
"""

ENTERPRISES_IN_ALARM = f"""
SELECT count(DISTINCT a.enterprise_id) AS "enterprises in alarm" FROM alerts a WHERE {OPEN}
"""

_KIND_COLUMNS = ",\n       ".join(
    f"count(a.id) FILTER (WHERE a.kind = '{kind}') AS \"{kind}\"" for kind in ALERT_KINDS
)

BY_REGION_AND_KIND = f"""
SELECT r.name_en AS region,
       {_KIND_COLUMNS}
FROM regions r
LEFT JOIN enterprises e ON e.region_id = r.id
LEFT JOIN alerts a ON a.enterprise_id = e.id AND {OPEN}
GROUP BY r.id, r.name_en
ORDER BY r.name_en
"""

ENTERPRISES_MAP = f"""
SELECT e.id AS enterprise_id, e.region_id, e.name, e.city, r.name_en AS region,
       e.lat AS latitude, e.lon AS longitude,
       coalesce(max({SEVERITY_LEVEL}), 0) AS state,
       count(a.id) AS open_alerts
FROM enterprises e
JOIN regions r ON r.id = e.region_id
LEFT JOIN alerts a ON a.enterprise_id = e.id AND {OPEN}
WHERE e.lat IS NOT NULL AND e.lon IS NOT NULL
GROUP BY e.id, r.name_en
ORDER BY e.id
"""


def _regions_sql(limits: Limits) -> str:
    return f"""
SELECT r.id AS region_id, r.name_en AS region, r.center,
       (SELECT count(*) FROM enterprises e WHERE e.region_id = r.id) AS enterprises,
       (SELECT count(*) FROM sensors s JOIN enterprises e ON e.id = s.enterprise_id
         WHERE e.region_id = r.id) AS sensors,
       (SELECT count(*) FROM sensors s JOIN enterprises e ON e.id = s.enterprise_id
         WHERE e.region_id = r.id AND {reporting(limits)}) AS reporting,
       (SELECT count(*) FROM alerts a JOIN enterprises e ON e.id = a.enterprise_id
         WHERE e.region_id = r.id AND {OPEN}) AS open_alerts,
       (SELECT coalesce(max({SEVERITY_LEVEL}), 0) FROM alerts a
         JOIN enterprises e ON e.id = a.enterprise_id
         WHERE e.region_id = r.id AND {OPEN}) AS state
FROM regions r
ORDER BY state DESC, open_alerts DESC, r.name_en
"""


OPEN_ALERT_LIST = f"""
SELECT a.opened_at AS opened, r.name_en AS region, e.name AS enterprise, a.sensor_id AS sensor,
       a.kind, {SEVERITY_LEVEL} AS severity, a.status, a.value, a.limit_value AS "limit",
       a.message, e.region_id, a.enterprise_id
FROM alerts a
JOIN enterprises e ON e.id = a.enterprise_id
JOIN regions r ON r.id = e.region_id
WHERE {OPEN}
ORDER BY (a.severity = 'critical') DESC, a.opened_at DESC
LIMIT 200
"""


def national(catalogue: Catalogue, limits: Limits) -> dash_b.Dashboard:
    del catalogue  # the same signature for every wall
    h = limits.health
    reporting_words = (
        f"A sensor is reporting when it sent a reading within {h.stale_factor:g} of its"
        f" reporting intervals (at least {h.min_stale_s:g} s) before the end of the time range,"
        " the stream's own rule for a stale sensor."
    )
    silent = f"""
SELECT count(*) AS "sensors silent" FROM sensors s WHERE NOT {reporting(limits)}
"""
    sensors = f"""
SELECT count(*) AS "sensors reporting" FROM sensors s WHERE {reporting(limits)}
"""
    enterprise = links.TO_ENTERPRISE
    region = links.TO_REGION
    return (
        links.dashboard(UID, "Qorgau — national overview", "national")
        .with_panel(
            stat_panel(
                "Readings/s",
                READINGS_PER_S,
                description="Readings stored in the last minute of the time range, per second.",
                decimals=1,
            )
        )
        .with_panel(stat_panel("Sensors reporting", sensors, description=reporting_words))
        .with_panel(
            stat_panel(
                "Sensors silent",
                silent,
                description="Registered sensors that are not reporting. " + reporting_words,
                red_from=1,
            )
        )
        .with_panel(
            stat_panel(
                "Open alerts",
                OPEN_ALERTS,
                description="Alerts not yet resolved by a person (now, whatever the time range).",
                red_from=1,
            )
        )
        .with_panel(
            stat_panel(
                "Critical",
                CRITICAL_ALERTS,
                description="Open critical alerts: danger to life, work stops.",
                red_from=1,
            )
        )
        .with_panel(
            stat_panel(
                "Enterprises in alarm",
                ENTERPRISES_IN_ALARM,
                description="Enterprises with at least one open alert.",
                red_from=1,
            )
        )
        .with_panel(
            timeseries_panel(
                "Readings per second",
                [SQL(READINGS_RATE, fmt="time_series")],
                description="From the per-minute rollup (readings_1m), averaged over each"
                " interval of the graph.",
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Sensors reporting",
                [SQL(SENSORS_OVER_TIME, fmt="time_series")],
                description="Sensors with at least one reading in each interval of the graph.",
            )
        )
        .with_panel(
            barchart_panel(
                "Open alerts by region and kind",
                BY_REGION_AND_KIND,
                description="Open alerts of each region's enterprises, by kind.",
            )
        )
        .with_panel(
            geomap_panel(
                "Enterprises by alarm state",
                ENTERPRISES_MAP,
                description="Each enterprise at its coordinates, coloured by its gravest open"
                " alert (OK, warning, critical; the word is in the tooltip), sized by how"
                " many are open. Enterprises with no coordinates are not shown.",
                links=enterprise,
            )
        )
        .with_panel(
            table_panel(
                "Regions",
                _regions_sql(limits),
                description="Every region: enterprises, sensors, sensors reporting, open"
                " alerts and the gravest of them. " + reporting_words,
                links={"region": region},
                hidden=["region_id"],
                state_columns=["state"],
                height=10,
            )
        )
        .with_panel(
            table_panel(
                "Open alerts",
                OPEN_ALERT_LIST,
                description="The 200 most pressing open alerts: critical first, newest first.",
                links={"enterprise": enterprise},
                hidden=["region_id", "enterprise_id"],
                state_columns=["severity"],
                height=10,
            )
        )
    )
