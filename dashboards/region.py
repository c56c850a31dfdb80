"""A region's wall: its enterprises, how alive their sensors are, what alerts they have.

One variable, ``region``. The enterprise table and the map link down to the
enterprise wall.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b

from core.catalogue import Catalogue
from core.limits import Limits
from dashboards import links
from dashboards.grafana import (
    SQL,
    geomap_panel,
    query_variable,
    stat_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.sql import OPEN, SEVERITY_LEVEL, reporting

__all__ = ["REGION_VARIABLE", "UID", "region"]

UID = links.REGION_UID

REGION_VARIABLE = """
SELECT id AS __value, name_en AS __text FROM regions ORDER BY name_en
"""

IN_REGION = "e.region_id = ${region:sqlstring}"

ENTERPRISES = f"""
SELECT count(*) AS enterprises FROM enterprises e WHERE {IN_REGION}
"""

OPEN_ALERTS = f"""
SELECT count(*) AS "open alerts"
FROM alerts a JOIN enterprises e ON e.id = a.enterprise_id
WHERE {IN_REGION} AND {OPEN}
"""

CRITICAL = f"""
SELECT count(*) AS critical
FROM alerts a JOIN enterprises e ON e.id = a.enterprise_id
WHERE {IN_REGION} AND {OPEN} AND a.severity = 'critical'
"""

READINGS_RATE = f"""
SELECT $__timeGroupAlias(m.bucket, $__interval), sum(m.n) / ($__interval_ms / 1000.0) AS "readings/s"
FROM readings_1m m
JOIN sensors s ON s.id = m.sensor_id
JOIN enterprises e ON e.id = s.enterprise_id
WHERE {IN_REGION} AND $__timeFilter(m.bucket)
GROUP BY 1
ORDER BY 1
"""

ALERTS_OPENED = f"""
SELECT $__timeGroupAlias(a.opened_at, $__interval), a.kind AS metric, count(*) AS value
FROM alerts a JOIN enterprises e ON e.id = a.enterprise_id
WHERE {IN_REGION} AND $__timeFilter(a.opened_at) AND a.state <> 'retracted'
GROUP BY 1, 2
ORDER BY 1, 2
"""

MAP = f"""
SELECT e.id AS enterprise_id, e.region_id, e.name, e.city,
       e.lat AS latitude, e.lon AS longitude,
       coalesce(max({SEVERITY_LEVEL}), 0) AS state,
       count(a.id) AS open_alerts
FROM enterprises e
LEFT JOIN alerts a ON a.enterprise_id = e.id AND {OPEN}
WHERE {IN_REGION} AND e.lat IS NOT NULL AND e.lon IS NOT NULL
GROUP BY e.id
ORDER BY e.id
"""

OPEN_ALERT_LIST = f"""
SELECT a.opened_at AS opened, e.name AS enterprise, a.zone_id AS zone, a.sensor_id AS sensor,
       a.hazard, a.kind, {SEVERITY_LEVEL} AS severity, a.status, a.value,
       a.limit_value AS "limit", a.message, e.region_id, a.enterprise_id
FROM alerts a JOIN enterprises e ON e.id = a.enterprise_id
WHERE {IN_REGION} AND {OPEN}
ORDER BY (a.severity = 'critical') DESC, a.opened_at DESC
LIMIT 200
"""


def _enterprises_sql(limits: Limits) -> str:
    return f"""
SELECT e.id AS enterprise_id, e.region_id, e.name AS enterprise, e.city,
       i.name_en AS industry, e.workers,
       (SELECT count(*) FROM sensors s WHERE s.enterprise_id = e.id) AS sensors,
       (SELECT count(*) FROM sensors s WHERE s.enterprise_id = e.id
         AND {reporting(limits)}) AS reporting,
       (SELECT count(*) FROM alerts a WHERE a.enterprise_id = e.id AND {OPEN}) AS open_alerts,
       (SELECT coalesce(max({SEVERITY_LEVEL}), 0) FROM alerts a
         WHERE a.enterprise_id = e.id AND {OPEN}) AS state
FROM enterprises e
JOIN industries i ON i.code = e.industry_code
WHERE {IN_REGION}
ORDER BY state DESC, open_alerts DESC, e.name
"""


def region(catalogue: Catalogue, limits: Limits) -> dash_b.Dashboard:
    del catalogue
    enterprise = links.TO_ENTERPRISE
    reporting_in_region = f"""
SELECT count(*) AS "sensors reporting"
FROM sensors s JOIN enterprises e ON e.id = s.enterprise_id
WHERE {IN_REGION} AND {reporting(limits)}
"""
    silent_in_region = f"""
SELECT count(*) AS "sensors silent"
FROM sensors s JOIN enterprises e ON e.id = s.enterprise_id
WHERE {IN_REGION} AND NOT {reporting(limits)}
"""
    return (
        links.dashboard(UID, "Qorgau — region", "region")
        .with_variable(query_variable("region", "Region", REGION_VARIABLE))
        .with_panel(
            stat_panel("Enterprises", ENTERPRISES, description="Enterprises in the region.")
        )
        .with_panel(
            stat_panel(
                "Sensors reporting",
                reporting_in_region,
                description="Sensors with a reading in their stale window before the end of"
                " the time range.",
            )
        )
        .with_panel(
            stat_panel(
                "Sensors silent",
                silent_in_region,
                description="Registered sensors of the region that are not reporting.",
                red_from=1,
            )
        )
        .with_panel(
            stat_panel(
                "Open alerts",
                OPEN_ALERTS,
                description="Alerts not yet resolved by a person.",
                red_from=1,
            )
        )
        .with_panel(
            stat_panel(
                "Critical",
                CRITICAL,
                description="Open critical alerts.",
                red_from=1,
                width=8,
            )
        )
        .with_panel(
            table_panel(
                "Enterprises",
                _enterprises_sql(limits),
                description="The region's enterprises, the gravest first, with links to"
                " their walls.",
                links={"enterprise": enterprise},
                hidden=["enterprise_id", "region_id"],
                state_columns=["state"],
                width=14,
                height=12,
            )
        )
        .with_panel(
            geomap_panel(
                "Enterprises by alarm state",
                MAP,
                description="The region's enterprises, coloured by their gravest open alert.",
                links=enterprise,
                width=10,
            )
        )
        .with_panel(
            timeseries_panel(
                "Readings per second",
                [SQL(READINGS_RATE, fmt="time_series")],
                description="Readings of the region's sensors, from the per-minute rollup.",
                unit="reqps",
            )
        )
        .with_panel(
            timeseries_panel(
                "Alerts opened, by kind",
                [SQL(ALERTS_OPENED, fmt="time_series")],
                description="Alerts opened in each interval (withdrawn ones left out).",
                interval="1h",
                bars=True,
            )
        )
        .with_panel(
            table_panel(
                "Open alerts",
                OPEN_ALERT_LIST,
                description="Open alerts of the region: critical first, newest first.",
                links={"enterprise": enterprise},
                hidden=["region_id", "enterprise_id"],
                state_columns=["severity"],
                height=10,
            )
        )
    )
