"""An enterprise's wall: its zones, alarms per sensor, exposure against the limits,
readings and sensor health.

Variables: ``region`` → ``enterprise`` → ``zone`` (several, or all); two hidden
ones, ``exposure`` and ``hazard``, repeat the exposure and readings panels once per
hazard the chosen zones measure. Exposure panels draw each sensor's TWA, STEL and
minute maximum (the ``exposures`` the stream writes every minute) with the
catalogue's TWA, STEL and ceiling limits as dashed lines, each named with its unit
and legal source.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.models import dashboard as dash_m

from core.alarms import AlertKind
from core.catalogue import Catalogue
from core.limits import Limits
from dashboards import links
from dashboards.grafana import (
    SQL,
    query_variable,
    row,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
from dashboards.region import REGION_VARIABLE
from dashboards.sql import (
    OPEN,
    SEVERITY_LEVEL,
    alarm_timeline_sql,
    hazards_values,
    limit_lines,
    limit_lines_sql,
    literal,
    reporting,
)

__all__ = ["EXPOSURE_KINDS", "UID", "enterprise"]

UID = links.ENTERPRISE_UID
# The rules whose limits an exposure panel draws (threshold set points are alarm
# settings, not exposure limits: they are on the sensor wall, against raw readings).
EXPOSURE_KINDS = (AlertKind.TWA, AlertKind.STEL, AlertKind.CEILING)

ENTERPRISE = "${enterprise:sqlstring}"
ZONES = "${zone:sqlstring}"

ENTERPRISE_VARIABLE = """
SELECT id AS __value, name AS __text FROM enterprises
WHERE region_id = ${region:sqlstring} ORDER BY name
"""

ZONE_VARIABLE = """
SELECT id AS __value, name AS __text FROM zones
WHERE enterprise_id = ${enterprise:sqlstring} ORDER BY name
"""

SENSORS_HERE = f"s.enterprise_id = {ENTERPRISE} AND s.zone_id IN ({ZONES})"
ALERTS_HERE = f"a.enterprise_id = {ENTERPRISE} AND (a.zone_id IS NULL OR a.zone_id IN ({ZONES}))"

OPEN_ALERTS = f"""
SELECT count(*) AS "open alerts" FROM alerts a WHERE {ALERTS_HERE} AND {OPEN}
"""

CRITICAL = f"""
SELECT count(*) AS critical FROM alerts a
WHERE {ALERTS_HERE} AND {OPEN} AND a.severity = 'critical'
"""

WORKERS = f"""
SELECT workers FROM enterprises WHERE id = {ENTERPRISE}
"""

ALARMS = alarm_timeline_sql(
    f"{ALERTS_HERE} AND a.sensor_id IS NOT NULL",
    "a.sensor_id",
    f"SELECT s.id FROM sensors s WHERE {SENSORS_HERE}",
)

EXPOSURE = f"""
SELECT $__timeGroupAlias(x.ts, $__interval), x.sensor_id || ' ' || v.what AS metric,
       max(v.value) AS value
FROM exposures x
JOIN sensors s ON s.id = x.sensor_id
CROSS JOIN LATERAL (VALUES ('TWA', x.twa), ('STEL', x.stel), ('minute max', x.ceiling))
    AS v(what, value)
WHERE {SENSORS_HERE} AND x.hazard = ${{exposure:sqlstring}}
  AND $__timeFilter(x.ts) AND v.value IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
"""

READINGS = f"""
SELECT $__timeGroupAlias(m.bucket, $__interval), m.sensor_id || ' · ' || z.name AS metric,
       sum(m.avg_value * m.n) / sum(m.n) AS value
FROM readings_1m m
JOIN sensors s ON s.id = m.sensor_id
JOIN zones z ON z.id = s.zone_id
WHERE {SENSORS_HERE} AND s.hazard = ${{hazard:sqlstring}} AND $__timeFilter(m.bucket)
GROUP BY 1, 2
ORDER BY 1, 2
"""

ALERT_LIST = f"""
SELECT a.opened_at AS opened, a.zone_id AS zone, a.sensor_id AS sensor, a.hazard, a.kind,
       {SEVERITY_LEVEL} AS severity, a.state, a.status, a.value, a.limit_value AS "limit",
       a.cleared_at AS cleared, a.message, a.enterprise_id
FROM alerts a
WHERE {ALERTS_HERE} AND a.state <> 'retracted'
  AND a.opened_at <= $__timeTo()::timestamptz
  AND (a.cleared_at IS NULL OR a.cleared_at >= $__timeFrom()::timestamptz)
ORDER BY (a.status = 'resolved'), (a.severity = 'critical') DESC, a.opened_at DESC
LIMIT 500
"""


def _hazard_variable(catalogue: Catalogue, only: tuple[str, ...] | None) -> str:
    among = ""
    if only is not None:
        among = f" AND hz.id IN ({', '.join(literal(h) for h in only)})"
    return f"""
SELECT hz.id AS __value, hz.name || ', ' || hz.unit AS __text
FROM {hazards_values(catalogue)}
WHERE hz.id IN (SELECT s.hazard FROM sensors s WHERE {SENSORS_HERE}){among}
ORDER BY hz.name
"""


def _zones_sql(limits: Limits) -> str:
    return f"""
SELECT z.id AS zone_id, z.name AS zone, z.kind, z.normal_temperature_c AS "normal °C",
       count(s.id) AS sensors,
       sum(CASE WHEN s.id IS NOT NULL AND {reporting(limits)} THEN 1 ELSE 0 END) AS reporting,
       (SELECT count(*) FROM alerts a WHERE a.zone_id = z.id AND {OPEN}) AS open_alerts,
       (SELECT coalesce(max({SEVERITY_LEVEL}), 0) FROM alerts a
         WHERE a.zone_id = z.id AND {OPEN}) AS state
FROM zones z
LEFT JOIN sensors s ON s.zone_id = z.id
WHERE z.enterprise_id = {ENTERPRISE} AND z.id IN ({ZONES})
GROUP BY z.id
ORDER BY state DESC, z.name
"""


def _health_sql(limits: Limits) -> str:
    return f"""
SELECT * FROM (
    SELECT s.id AS sensor, s.enterprise_id, z.name AS zone, s.hazard, s.model,
           s.interval_s AS "interval s", latest.ts AS last_reading,
           round(extract(epoch FROM $__timeTo()::timestamptz - latest.ts)::numeric, 0)
               AS silent_s,
           coalesce((SELECT sum(m.n) FROM readings_1m m
                     WHERE m.sensor_id = s.id AND $__timeFilter(m.bucket)), 0) AS readings,
           (SELECT count(*) FROM readings r
             WHERE r.sensor_id = s.id AND NOT r.plausible
               AND r.ts > $__timeTo()::timestamptz - interval '24 hours'
               AND r.ts <= $__timeTo()::timestamptz) AS "implausible 24 h",
           (SELECT count(*) FROM alerts a
             WHERE a.sensor_id = s.id AND a.kind IN ('sensor_fault', 'stale') AND {OPEN})
               AS open_faults,
           CASE WHEN EXISTS (SELECT 1 FROM alerts a WHERE a.sensor_id = s.id
                             AND a.kind = 'sensor_fault' AND a.state = 'open') THEN 'fault'
                WHEN NOT {reporting(limits)} THEN 'silent'
                ELSE 'reporting' END AS health
    FROM sensors s
    JOIN zones z ON z.id = s.zone_id
    LEFT JOIN LATERAL (
        SELECT r.ts FROM readings r
        WHERE r.sensor_id = s.id AND r.ts <= $__timeTo()::timestamptz
        ORDER BY r.ts DESC LIMIT 1
    ) AS latest ON true
    WHERE {SENSORS_HERE}
) AS q
ORDER BY q.health = 'reporting', q.sensor
"""


def enterprise(catalogue: Catalogue, limits: Limits) -> dash_b.Dashboard:
    lines = limit_lines(catalogue, limits, EXPOSURE_KINDS)
    exposure_hazards = tuple(sorted({line.hazard for line in lines}))
    sensor = links.TO_SENSOR
    reporting_here = f"""
SELECT count(*) AS "sensors reporting" FROM sensors s WHERE {SENSORS_HERE} AND {reporting(limits)}
"""
    silent_here = f"""
SELECT count(*) AS "sensors silent" FROM sensors s WHERE {SENSORS_HERE} AND NOT {reporting(limits)}
"""
    hidden = dash_m.VariableHide.HIDE_VARIABLE
    exposure_panel = (
        timeseries_panel(
            "Exposure — ${exposure:text}",
            [
                SQL(EXPOSURE, fmt="time_series"),
                SQL(
                    limit_lines_sql(lines, "${exposure:sqlstring}"),
                    ref_id="B",
                    fmt="time_series",
                ),
            ],
            description="Per sensor: TWA (shift average so far), STEL (short-term average)"
            " and the minute's maximum, as the stream computes them every minute. Dashed:"
            " the limits catalogue's TWA, STEL and ceiling limits for this hazard, each"
            " named with its level, value, unit and legal source.",
            limit_lines=True,
        )
        .repeat("exposure")
        .repeat_direction("h")
        .max_per_row(2)
    )
    readings_panel = (
        timeseries_panel(
            "Readings — ${hazard:text}",
            [SQL(READINGS, fmt="time_series")],
            description="Each sensor's mean per interval, from the per-minute rollup.",
        )
        .repeat("hazard")
        .repeat_direction("h")
        .max_per_row(3)
    )
    return (
        links.dashboard(UID, "Qorgau — enterprise", "enterprise")
        .with_variable(query_variable("region", "Region", REGION_VARIABLE))
        .with_variable(query_variable("enterprise", "Enterprise", ENTERPRISE_VARIABLE))
        .with_variable(query_variable("zone", "Zone", ZONE_VARIABLE, multi=True, include_all=True))
        .with_variable(
            query_variable(
                "exposure",
                "Exposure hazard",
                _hazard_variable(catalogue, exposure_hazards),
                multi=True,
                include_all=True,
                hide=hidden,
            )
        )
        .with_variable(
            query_variable(
                "hazard",
                "Hazard",
                _hazard_variable(catalogue, None),
                multi=True,
                include_all=True,
                hide=hidden,
            )
        )
        .with_panel(
            stat_panel(
                "Sensors reporting",
                reporting_here,
                description="Sensors of the chosen zones with a reading in their stale window.",
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Sensors silent",
                silent_here,
                description="Sensors of the chosen zones that are not reporting.",
                red_from=1,
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Open alerts",
                OPEN_ALERTS,
                description="Alerts of the chosen zones not yet resolved by a person.",
                red_from=1,
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Critical",
                CRITICAL,
                description="Open critical alerts of the chosen zones.",
                red_from=1,
                width=5,
            )
        )
        .with_panel(stat_panel("Workers", WORKERS, description="People working at the enterprise."))
        .with_panel(
            table_panel(
                "Zones",
                _zones_sql(limits),
                description="The chosen zones: sensors, how many report, open alerts and"
                " the gravest of them.",
                hidden=["zone_id"],
                state_columns=["state"],
                height=7,
            )
        )
        .with_panel(
            state_timeline_panel(
                "Alarms per sensor",
                ALARMS,
                description="Each sensor's alarm state over time — the gravest of its"
                " alerts that the machine had open (OK, warning, critical), from every"
                " open, escalation and clear in the alert history.",
            )
        )
        .with_row(row("Exposure"))
        .with_panel(exposure_panel)
        .with_row(row("Readings"))
        .with_panel(readings_panel)
        .with_row(row("Sensors and alerts"))
        .with_panel(
            table_panel(
                "Sensor health",
                _health_sql(limits),
                description="Every sensor of the chosen zones: its last reading, how long it"
                " has been silent, readings in the range, implausible values in the last 24 h"
                " and open fault or stale alerts. health: fault (an open sensor-fault alarm),"
                " silent (no reading in its stale window) or reporting.",
                links={"sensor": sensor},
                hidden=["enterprise_id"],
                word_colours={"health": {"reporting": "green", "silent": "orange", "fault": "red"}},
                units={"silent_s": "s"},
                height=10,
            )
        )
        .with_panel(
            table_panel(
                "Alerts",
                ALERT_LIST,
                description="Alerts of the chosen zones that were open at some time in the"
                " range: unresolved first, critical first, newest first.",
                links={"sensor": sensor},
                hidden=["enterprise_id"],
                state_columns=["severity"],
                height=10,
            )
        )
    )
