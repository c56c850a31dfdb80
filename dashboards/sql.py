"""SQL the walls share: what "open" means, alarm state as a number, limit lines.

Every query here runs on plain PostgreSQL and on TimescaleDB with the project's
schema (``storage/migrations``); Grafana's macros (``$__timeFilter(col)``,
``$__timeFrom()``, ``$__timeGroupAlias(col, $__interval)``...) are expanded by
the data source before PostgreSQL sees them, and the data source is provisioned
with ``timescaledb: false`` so ``$__timeGroup`` is plain arithmetic on both.
Variables are always written ``${name:sqlstring}`` (quoted, quotes doubled).

Limit lines are constant series made in SQL rather than Grafana thresholds: a
series has a name, so each line says its kind, level, value, unit and legal
source in the legend and tooltip (a threshold has no label); and one panel
serves every hazard (repeated per hazard, or for whichever sensor is chosen),
its lines picked by the hazard at query time, where thresholds are fixed per
panel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.alarms import AlertKind
from core.catalogue import Catalogue
from core.limits import LimitRule, Limits

__all__ = [
    "ALERT_KINDS",
    "OPEN",
    "SEVERITY_LEVEL",
    "LimitLine",
    "alarm_timeline_sql",
    "hazards_values",
    "limit_lines",
    "limit_lines_sql",
    "literal",
    "reporting",
]

# An alert someone still has to deal with: not withdrawn by the machine, not resolved
# by a person (a warning that clears resolves itself; a critical one waits for a person).
OPEN = "a.state <> 'retracted' AND a.status <> 'resolved'"
# An alert's severity as an alarm state (see `dashboards.grafana.STATE_WORDS`).
SEVERITY_LEVEL = "CASE a.severity WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 END"

ALERT_KINDS = tuple(k.value for k in AlertKind)


def literal(text: str) -> str:
    """``text`` as a SQL string literal. A ``$`` is refused: Grafana would read it as a
    variable before PostgreSQL sees the query."""
    if "$" in text:
        raise ValueError(f"a '$' in {text!r} would be taken for a Grafana variable")
    return "'" + text.replace("'", "''") + "'"


def reporting(limits: Limits, sensor: str = "s", until: str = "$__timeTo()::timestamptz") -> str:
    """True when sensor row ``sensor`` has a reading in its stale window before ``until``
    (the stream's rule: ``stale_factor`` reporting intervals, at least ``min_stale_s``)."""
    h = limits.health
    return (
        f"EXISTS (SELECT 1 FROM readings r WHERE r.sensor_id = {sensor}.id"
        f" AND r.ts <= {until} AND r.ts > {until} - make_interval(secs =>"
        f" greatest({h.stale_factor:g} * {sensor}.interval_s, {h.min_stale_s:g})))"
    )


def hazards_values(catalogue: Catalogue) -> str:
    """The catalogue's hazards as a SQL ``VALUES`` list ``(id, name, unit)``: names and
    units live in the catalogue file, not in the database."""
    rows = ",\n    ".join(
        f"({literal(h.id)}, {literal(h.name_en)}, {literal(h.unit)})" for h in catalogue.values()
    )
    return f"(VALUES\n    {rows}\n) AS hz(id, name, unit)"


@dataclass(frozen=True, slots=True)
class LimitLine:
    hazard: str
    label: str
    value: float


_KIND_WORD = {
    AlertKind.TWA: "TWA",
    AlertKind.STEL: "STEL",
    AlertKind.CEILING: "ceiling",
    AlertKind.THRESHOLD: "threshold",
}


def _window(rule: LimitRule) -> str:
    if rule.window_min <= 0:
        return ""
    if rule.window_min >= 60 and rule.window_min % 60 == 0:
        return f" {rule.window_min / 60:g} h"
    return f" {rule.window_min:g} min"


def limit_lines(
    catalogue: Catalogue, limits: Limits, kinds: Iterable[AlertKind]
) -> list[LimitLine]:
    """One line per level of each rule of ``kinds``, named
    ``limit · TWA 8 h · warning 20 mg/m3 · <legal source>``."""
    wanted = set(kinds)
    lines = []
    for hazard in catalogue.values():
        for rule in limits.rules(hazard.id):
            if rule.kind not in wanted:
                continue
            levels = (
                ("warning", rule.warning),
                ("critical", rule.critical),
                ("warning below", rule.warning_below),
                ("critical below", rule.critical_below),
            )
            for level, value in levels:
                if value is None:
                    continue
                label = (
                    f"limit · {_KIND_WORD[rule.kind]}{_window(rule)}"
                    f" · {level} {value:g} {hazard.unit} · {rule.source}"
                )
                lines.append(LimitLine(hazard.id, label, value))
    return lines


def limit_lines_sql(lines: Iterable[LimitLine], hazard: str) -> str:
    """Each line of hazard ``hazard`` (a SQL expression) as two points, at the start and
    the end of the time range, in time-series form (time, metric, value)."""
    rows = ",\n    ".join(
        f"({literal(line.hazard)}, {literal(line.label)}, {line.value!r}::double precision)"
        for line in lines
    )
    return f"""
SELECT t.ts AS "time", l.label AS metric, l.value
FROM (VALUES
    {rows}
) AS l(hazard, label, value)
CROSS JOIN (VALUES ($__timeFrom()::timestamptz), ($__timeTo()::timestamptz)) AS t(ts)
WHERE l.hazard = {hazard}
ORDER BY 1, 2"""


def alarm_timeline_sql(alerts: str, row: str, rows_at_start: str) -> str:
    """Alarm state over time, in time-series form (time, metric = ``row``, value = 0 OK,
    1 warning, 2 critical), from the machine's changes in ``alert_history``.

    At every change of an alert matching ``alerts`` (a condition on ``a``), each row's
    state is the gravest of its alerts' states after their latest change by then; every
    row of ``rows_at_start`` (one text column) and every row with history starts at the
    beginning of the range, so a row with no alarm shows as OK.
    """
    return f"""
WITH h AS (
    SELECT {row} AS row_name, h.alert_id, h.id, h.at,
           CASE WHEN h.action IN ('clear', 'retract') THEN 0
                WHEN h.severity = 'critical' THEN 2 ELSE 1 END AS level
    FROM alert_history h
    JOIN alerts a ON a.id = h.alert_id
    WHERE {alerts}
      AND h.action IN ('open', 'reopen', 'escalate', 'clear', 'retract')
      AND h.at <= $__timeTo()::timestamptz
),
points AS (
    SELECT row_name, at AS t FROM h WHERE at >= $__timeFrom()::timestamptz
    UNION
    SELECT row_name, $__timeFrom()::timestamptz FROM h
    UNION
    SELECT row_name, $__timeFrom()::timestamptz FROM ({rows_at_start}) AS base(row_name)
)
SELECT p.t AS "time", p.row_name AS metric,
       coalesce((SELECT max(latest.level) FROM (
           SELECT DISTINCT ON (x.alert_id) x.level FROM h x
           WHERE x.row_name = p.row_name AND x.at <= p.t
           ORDER BY x.alert_id, x.at DESC, x.id DESC) AS latest), 0) AS value
FROM points p
ORDER BY 1, 2"""
