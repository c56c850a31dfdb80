"""One sensor, drilled down: what it is, what it reads, its exposure, its alarms, what
the online models think of it.

Variables ``enterprise`` → ``sensor``. Readings are raw for ranges up to 6 h and the
per-minute rollup (mean, min, max per interval) beyond; the threshold and ceiling
limits of the sensor's hazard are drawn against them, its TWA and STEL limits against
its exposure.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b

from core.alarms import AlertKind
from core.catalogue import Catalogue
from core.limits import Limits
from dashboards import links
from dashboards.enterprise import EXPOSURE_KINDS
from dashboards.grafana import (
    SQL,
    query_variable,
    stat_panel,
    state_timeline_panel,
    table_panel,
    timeseries_panel,
)
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

__all__ = ["RAW_UP_TO", "UID", "sensor"]

UID = links.SENSOR_UID
RAW_UP_TO = "6 hours"  # longer ranges read the per-minute rollup

SENSOR = "${sensor:sqlstring}"
SENSOR_HAZARD = f"(SELECT s.hazard FROM sensors s WHERE s.id = {SENSOR})"
RANGE = "$__timeTo()::timestamptz - $__timeFrom()::timestamptz"

ENTERPRISE_VARIABLE = """
SELECT id AS __value, id || ' · ' || name AS __text FROM enterprises ORDER BY id
"""

SENSOR_VARIABLE = """
SELECT s.id AS __value, s.id || ' · ' || s.hazard || ' · ' || z.name AS __text
FROM sensors s JOIN zones z ON z.id = s.zone_id
WHERE s.enterprise_id = ${enterprise:sqlstring}
ORDER BY s.id
"""

LAST_VALUE = f"""
SELECT r.value AS "last value" FROM readings r
WHERE r.sensor_id = {SENSOR} AND r.ts <= $__timeTo()::timestamptz
ORDER BY r.ts DESC LIMIT 1
"""

SILENT_FOR = f"""
SELECT extract(epoch FROM $__timeTo()::timestamptz - max(r.ts)) AS "silent for"
FROM readings r
WHERE r.sensor_id = {SENSOR} AND r.ts <= $__timeTo()::timestamptz
"""

READINGS_IN_RANGE = f"""
SELECT coalesce(sum(m.n), 0) AS readings
FROM readings_1m m WHERE m.sensor_id = {SENSOR} AND $__timeFilter(m.bucket)
"""

IMPLAUSIBLE = f"""
SELECT count(*) AS "implausible 24 h" FROM readings r
WHERE r.sensor_id = {SENSOR} AND NOT r.plausible
  AND r.ts > $__timeTo()::timestamptz - interval '24 hours' AND r.ts <= $__timeTo()::timestamptz
"""

OPEN_ALERTS = f"""
SELECT count(*) AS "open alerts" FROM alerts a WHERE a.sensor_id = {SENSOR} AND {OPEN}
"""

READINGS = f"""
SELECT q."time", q.metric, q.value FROM (
    SELECT r.ts AS "time", 'reading' AS metric, r.value
    FROM readings r
    WHERE r.sensor_id = {SENSOR} AND $__timeFilter(r.ts)
      AND {RANGE} <= interval '{RAW_UP_TO}'
    UNION ALL
    SELECT g.t, v.what, v.value
    FROM (
        SELECT to_timestamp($__timeGroup(m.bucket, $__interval)) AS t,
               sum(m.avg_value * m.n) / sum(m.n) AS mean,
               min(m.min_value) AS low, max(m.max_value) AS high
        FROM readings_1m m
        WHERE m.sensor_id = {SENSOR} AND $__timeFilter(m.bucket)
          AND {RANGE} > interval '{RAW_UP_TO}'
        GROUP BY 1
    ) AS g
    CROSS JOIN LATERAL (VALUES ('mean', g.mean), ('min', g.low), ('max', g.high))
        AS v(what, value)
) AS q
ORDER BY 1, 2
"""

EXPOSURE = f"""
SELECT $__timeGroupAlias(x.ts, $__interval), v.what AS metric, max(v.value) AS value
FROM exposures x
CROSS JOIN LATERAL (VALUES ('TWA', x.twa), ('STEL', x.stel), ('minute max', x.ceiling))
    AS v(what, value)
WHERE x.sensor_id = {SENSOR} AND $__timeFilter(x.ts) AND v.value IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
"""

SCORES = f"""
SELECT $__timeGroupAlias(n.ts, $__interval), n.detector AS metric, max(n.score) AS value
FROM anomalies n
WHERE n.sensor_id = {SENSOR} AND $__timeFilter(n.ts)
GROUP BY 1, 2
ORDER BY 1, 2
"""

EXPECTED = f"""
SELECT $__timeGroupAlias(n.ts, $__interval), v.what AS metric, avg(v.value) AS value
FROM anomalies n
CROSS JOIN LATERAL (VALUES ('observed (' || coalesce(n.feature, 'value') || ')', n.value),
                           ('expected low', n.expected_low), ('expected high', n.expected_high))
    AS v(what, value)
WHERE n.sensor_id = {SENSOR} AND $__timeFilter(n.ts) AND v.value IS NOT NULL
GROUP BY 1, 2
ORDER BY 1, 2
"""

_SENSOR_KINDS = ", ".join(
    f"({literal(k.value)})"
    for k in AlertKind
    if k not in (AlertKind.SOS,)  # a worker's report, never a sensor's
)
ALARMS = alarm_timeline_sql(
    f"a.sensor_id = {SENSOR}", "a.kind", f"SELECT k FROM (VALUES {_SENSOR_KINDS}) AS kinds(k)"
)

ALERT_LIST = f"""
SELECT a.opened_at AS opened, a.kind, {SEVERITY_LEVEL} AS severity, a.state, a.status,
       a.value, a.limit_value AS "limit", a.cleared_at AS cleared, a.reopened_count AS reopened,
       a.resolution, a.message
FROM alerts a
WHERE a.sensor_id = {SENSOR} AND a.state <> 'retracted'
  AND a.opened_at <= $__timeTo()::timestamptz
  AND (a.cleared_at IS NULL OR a.cleared_at >= $__timeFrom()::timestamptz)
ORDER BY (a.status = 'resolved'), a.opened_at DESC
LIMIT 500
"""


def _about_sql(catalogue: Catalogue, limits: Limits) -> str:
    return f"""
SELECT s.id AS sensor, e.name AS enterprise, z.name AS zone, z.kind AS "zone kind",
       hz.name AS hazard, hz.unit, s.model, s.interval_s AS "interval s", s.gateway,
       CASE WHEN {reporting(limits)} THEN 'reporting' ELSE 'silent' END AS reporting
FROM sensors s
JOIN zones z ON z.id = s.zone_id
JOIN enterprises e ON e.id = s.enterprise_id
LEFT JOIN {hazards_values(catalogue)} ON hz.id = s.hazard
WHERE s.id = {SENSOR}
"""


def sensor(catalogue: Catalogue, limits: Limits) -> dash_b.Dashboard:
    instant = limit_lines(catalogue, limits, (AlertKind.THRESHOLD, AlertKind.CEILING))
    averages = limit_lines(catalogue, limits, EXPOSURE_KINDS)
    return (
        links.dashboard(UID, "Qorgau — sensor", "sensor")
        .with_variable(query_variable("enterprise", "Enterprise", ENTERPRISE_VARIABLE))
        .with_variable(query_variable("sensor", "Sensor", SENSOR_VARIABLE))
        .with_panel(
            table_panel(
                "Sensor",
                _about_sql(catalogue, limits),
                description="What the sensor is and where; values are in the hazard's"
                " canonical unit.",
                word_colours={"reporting": {"reporting": "green", "silent": "orange"}},
                height=4,
            )
        )
        .with_panel(
            stat_panel(
                "Last value",
                LAST_VALUE,
                description="The newest reading before the end of the range (canonical unit,"
                " see above).",
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Silent for",
                SILENT_FOR,
                description="Time from the newest reading to the end of the range.",
                unit="s",
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Readings in range",
                READINGS_IN_RANGE,
                description="Readings stored in the range (per-minute rollup).",
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Implausible, 24 h",
                IMPLAUSIBLE,
                description="Readings outside the catalogue's physical range in the last"
                " 24 h of the range: a sensor fault.",
                red_from=1,
                width=5,
            )
        )
        .with_panel(
            stat_panel(
                "Open alerts",
                OPEN_ALERTS,
                description="The sensor's alerts not yet resolved by a person.",
                red_from=1,
            )
        )
        .with_panel(
            timeseries_panel(
                "Readings",
                [
                    SQL(READINGS, fmt="time_series"),
                    SQL(limit_lines_sql(instant, SENSOR_HAZARD), ref_id="B", fmt="time_series"),
                ],
                description=f"Raw readings for ranges up to {RAW_UP_TO}; beyond, the mean,"
                " minimum and maximum of each interval from the per-minute rollup. Dashed:"
                " the hazard's threshold and ceiling limits (instantaneous), each named with"
                " its level, value, unit and legal source.",
                interval="1s",
                width=24,
                limit_lines=True,
            )
        )
        .with_panel(
            timeseries_panel(
                "Exposure",
                [
                    SQL(EXPOSURE, fmt="time_series"),
                    SQL(limit_lines_sql(averages, SENSOR_HAZARD), ref_id="B", fmt="time_series"),
                ],
                description="TWA, STEL and the minute's maximum as the stream computes them."
                " Dashed: the hazard's TWA, STEL and ceiling limits with their legal source.",
                width=24,
                limit_lines=True,
            )
        )
        .with_panel(
            state_timeline_panel(
                "Alarms by kind",
                ALARMS,
                description="The sensor's alarm state per alert kind over time (OK, warning,"
                " critical).",
                height=8,
            )
        )
        .with_panel(
            timeseries_panel(
                "Anomaly score",
                [SQL(SCORES, fmt="time_series")],
                description="The online models' highest score per interval (0-1).",
            )
        )
        .with_panel(
            timeseries_panel(
                "Observed and expected",
                [SQL(EXPECTED, fmt="time_series")],
                description="What the model saw and the range it expected.",
            )
        )
        .with_panel(
            table_panel(
                "Alerts",
                ALERT_LIST,
                description="The sensor's alerts open at some time in the range.",
                state_columns=["severity"],
                height=10,
            )
        )
    )
