"""Every query of every wall against a real database seeded with readings and alerts.

Each panel's SQL (and each variable's) is expanded as Grafana would expand it
(`tests.dashboards.grafana_sql`), run on PostgreSQL for a short range (raw
readings) and a long one (the per-minute rollup), and its columns are checked
against what the panel type needs: a time series gets ``time`` and numbers (and a
``metric`` naming each series) in time order, a stat a number, a table named
columns, a map latitude/longitude and a state, a state timeline states 0-2, a bar
chart a category and numbers; every column a panel's overrides or links name
must be there. The seed is written in one transaction that is rolled back.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from core.catalogue import load_catalogue
from core.limits import load_limits
from dashboards import render_dashboards
from storage.readers import ensure_reader
from tests.dashboards.grafana_sql import Range, expand, interval_for

NUMERIC = {20, 21, 23, 700, 701, 1700}  # int8, int2, int4, float4, float8, numeric
TIME = {1184, 1114}  # timestamptz, timestamp
TEXT = {25, 1043, 19}  # text, varchar, name

# Enterprises of the test's own (rolled back), so other tests' rows in the shared
# database never change what these panels must show.
ENTERPRISE, REGION, SENSOR, OTHER = "TGF1", "KZ-35", "TGF1-S01", "TGF2"
SENSORS = {  # sensor: (enterprise, zone, hazard)
    "TGF1-S01": ("TGF1", "TGF1-Z01", "co"),
    "TGF1-S02": ("TGF1", "TGF1-Z01", "co"),
    "TGF1-S03": ("TGF1", "TGF1-Z01", "temperature"),
    "TGF1-S04": ("TGF1", "TGF1-Z02", "noise"),
    "TGF1-S05": ("TGF1", "TGF1-Z02", "dust"),
    "TGF1-S06": ("TGF1", "TGF1-Z02", "o2"),
    "TGF2-S01": ("TGF2", "TGF2-Z01", "co"),
}
READER = f"t_grafana_{uuid.uuid4().hex[:8]}"
NOW = datetime.now(UTC).replace(microsecond=0)
SHORT = Range(NOW - timedelta(hours=6), NOW)
LONG = Range(NOW - timedelta(days=7), NOW)

CATALOGUE = load_catalogue()
LIMITS = load_limits(None, CATALOGUE)
WALLS = render_dashboards(CATALOGUE, LIMITS)


@pytest.fixture(scope="module")
def seeded(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside a transaction holding the seed and Grafana's read-only role (the
    panels run as it, as the compose file's Grafana does); rolled back at the end."""
    with psycopg.connect(database_url) as conn:
        _seed(conn)
        ensure_reader(conn, READER, "a-long-reader-password-0123")
        yield conn
        conn.rollback()


def _seed(conn: psycopg.Connection[Any]) -> None:
    for e, region, lat, lon in ((ENTERPRISE, REGION, 50.07, 73.03), (OTHER, "KZ-23", 47.1, 51.9)):
        conn.execute(
            "INSERT INTO enterprises (id, name, region_id, industry_code, city, lat, lon, workers)"
            " VALUES (%s, %s, %s, 'C', 'Testtown', %s, %s, 250)",
            (e, f"Test works {e}", region, lat, lon),
        )
    for zone in sorted({z for _, z, _ in SENSORS.values()}):
        conn.execute(
            "INSERT INTO zones (id, enterprise_id, name, kind) VALUES (%s, %s, %s, 'workshop')",
            (zone, zone.split("-")[0], f"Shop {zone}"),
        )
    for sensor, (e, zone, hazard) in SENSORS.items():
        conn.execute(
            "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s)"
            " VALUES (%s, %s, %s, %s, 60)",
            (sensor, e, zone, hazard),
        )
    # A reading a minute over the last 150 min (one implausible); TGF1-S06 silent for 40 min.
    conn.execute(
        """
        INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,
                              raw_value, raw_unit, plausible)
        SELECT s.id, t, s.enterprise_id, s.hazard, 5 + (extract(minute FROM t)::int %% 7),
               'u', 5, 'u', NOT (s.id = %(sensor)s AND t = %(now)s - interval '30 minutes')
        FROM sensors s
        CROSS JOIN generate_series(%(now)s - interval '150 minutes', %(now)s - interval '30 seconds',
                                   interval '1 minute') AS t
        WHERE s.enterprise_id IN (%(e)s, %(other)s)
          AND NOT (s.id = 'TGF1-S06' AND t > %(now)s - interval '40 minutes')
        """,
        {"sensor": SENSOR, "now": NOW, "e": ENTERPRISE, "other": OTHER},
    )
    conn.execute(
        """
        INSERT INTO exposures (sensor_id, ts, enterprise_id, hazard, twa, stel, ceiling)
        SELECT s.id, t, s.enterprise_id, s.hazard, 6.0, 8.0, 12.0
        FROM sensors s
        CROSS JOIN generate_series(%(now)s - interval '120 minutes', %(now)s, interval '1 minute') AS t
        WHERE s.enterprise_id = %(e)s AND s.hazard IN ('co', 'noise', 'dust')
        """,
        {"now": NOW, "e": ENTERPRISE},
    )
    conn.execute(
        """
        INSERT INTO anomalies (sensor_id, ts, enterprise_id, detector, score, value,
                               expected_low, expected_high, feature)
        SELECT %(sensor)s, t, %(e)s, 'departure', 0.5, 7.0, 4.0, 9.0, 'mean20'
        FROM generate_series(%(now)s - interval '60 minutes', %(now)s, interval '1 minute') AS t
        """,
        {"sensor": SENSOR, "now": NOW, "e": ENTERPRISE},
    )
    minutes = timedelta(minutes=1)
    # (enterprise, sensor, zone, kind, severity now, state, status, opened, escalated, cleared)
    alerts = [
        (ENTERPRISE, SENSOR, "TGF1-Z01", "threshold", "critical", "open", "open",
         NOW - 40 * minutes, NOW - 35 * minutes, None),
        (ENTERPRISE, SENSOR, "TGF1-Z01", "stel", "warning", "cleared", "resolved",
         NOW - 100 * minutes, None, NOW - 80 * minutes),
        (ENTERPRISE, "TGF1-S02", "TGF1-Z01", "sensor_fault", "warning", "open", "open",
         NOW - 20 * minutes, None, None),
        (OTHER, "TGF2-S01", None, "threshold", "warning", "open", "acknowledged",
         NOW - 10 * minutes, None, None),
    ]  # fmt: skip
    for e, s, z, kind, severity, state, status, opened, escalated, cleared in alerts:
        row = conn.execute(
            """
            INSERT INTO alerts (enterprise_id, sensor_id, hazard, kind, severity, state, status,
                                opened_at, escalated_at, cleared_at, value, limit_value, message,
                                alert_key, zone_id, source, resolution)
            VALUES (%s, %s, 'co', %s, %s, %s, %s, %s, %s, %s, 120.0, 100.0, 'seeded', %s, %s,
                    'test:dashboards', %s)
            RETURNING id
            """,
            (e, s, kind, severity, state, status, opened, escalated, cleared,
             f"test-dashboards-{uuid.uuid4().hex}", z,
             "auto_cleared" if status == "resolved" else None),
        ).fetchone()  # fmt: skip
        assert row is not None
        first = "warning" if escalated else severity
        history = [("open", opened, first)]
        if escalated:
            history.append(("escalate", escalated, "critical"))
        if cleared:
            history.append(("clear", cleared, severity))
        for action, at, sev in history:
            conn.execute(
                "INSERT INTO alert_history (alert_id, at, actor, action, status, severity)"
                " VALUES (%s, %s, 'machine', %s, 'open', %s)",
                (row[0], at, action, sev),
            )


def _variables(conn: psycopg.Connection[Any]) -> dict[str, str | list[str]]:
    zones = [
        r[0] for r in conn.execute("SELECT id FROM zones WHERE enterprise_id = %s", (ENTERPRISE,))
    ]
    return {
        "region": REGION,
        "enterprise": ENTERPRISE,
        "zone": zones,
        "exposure": "co",
        "hazard": "co",
        "sensor": SENSOR,
    }


def _queries() -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for uid, wall in WALLS.items():
        for panel in wall["panels"]:
            for target in panel.get("targets", []):
                yield uid, f"{panel['title']} [{target['refId']}]", panel, target
        for variable in wall["templating"].get("list", []):
            if variable["type"] == "query":
                target = {"rawSql": variable["query"], "format": "variable", "refId": "V"}
                yield uid, f"variable {variable['name']}", {"type": "variable"}, target


QUERIES = list(_queries())


def _run(
    conn: psycopg.Connection[Any], panel: dict[str, Any], target: dict[str, Any], span: Range
) -> tuple[list[tuple[str, int]], list[tuple[Any, ...]]]:
    sql = expand(
        target["rawSql"],
        span=span,
        interval_s=interval_for(span, panel.get("interval")),
        variables=_variables(conn),
    )
    with conn.cursor() as cur:
        cur.execute("SAVEPOINT panel")
        try:
            cur.execute(f"SET LOCAL ROLE {READER}")
            cur.execute(sql.encode())
            columns = [(d.name, d.type_code) for d in cur.description or []]
            rows = cur.fetchall()
        finally:
            cur.execute("ROLLBACK TO SAVEPOINT panel")
    return columns, rows


def _named_in_config(panel: dict[str, Any]) -> set[str]:
    """Columns the panel's overrides, links and map layers refer to by name."""
    names = set()
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        if override["matcher"]["id"] == "byName":
            names.add(override["matcher"]["options"])
        for prop in override["properties"]:
            if prop["id"] == "links":
                for link in prop["value"]:
                    names |= set(re.findall(r"__data\.fields\.(\w+)", link["url"]))
    for layer in panel.get("options", {}).get("layers", []):
        location = layer.get("location", {})
        names |= {location[k] for k in ("latitude", "longitude") if k in location}
        style = layer.get("config", {}).get("style", {})
        names |= {v["field"] for v in style.values() if isinstance(v, dict) and "field" in v}
    return names


def _check_shape(
    panel: dict[str, Any], target: dict[str, Any], columns: list[tuple[str, int]], rows: list[Any]
) -> None:
    names = [n for n, _ in columns]
    types = dict(columns)
    kind = panel["type"]
    assert len(names) == len(set(names)), f"duplicate column names {names}"
    assert "?column?" not in names, f"an unnamed column: {names}"
    if target["format"] == "time_series":
        assert names[0] == "time" and types["time"] in TIME | NUMERIC, names
        values = [n for n, t in columns[1:] if t in NUMERIC]
        assert values, f"no numeric value column in {columns}"
        texts = [n for n, t in columns[1:] if t not in NUMERIC]
        assert texts in ([], ["metric"]), f"only `metric` may be text: {columns}"
        times = [r[0] for r in rows]
        assert times == sorted(times), "time series rows must come in time order"
        if kind == "state-timeline":
            assert {r[names.index("value")] for r in rows} <= {0, 1, 2}
    elif kind == "variable":
        assert names in (["__value", "__text"], ["__text", "__value"]) or len(names) == 1, names
    elif kind == "stat":
        assert any(t in NUMERIC for _, t in columns), f"a stat needs a number: {columns}"
        assert len(rows) <= 1 or kind != "stat"
    elif kind == "geomap":
        for name in ("latitude", "longitude", "state"):
            assert types.get(name) in NUMERIC, f"{name} must be numeric: {columns}"
    elif kind == "barchart":
        assert types[names[0]] in TEXT, f"the category comes first: {columns}"
        assert all(t in NUMERIC for _, t in columns[1:]), columns
    else:
        assert kind == "table", kind
    if target["format"] != "time_series":
        missing = _named_in_config(panel) - set(names)
        assert not missing, f"the panel names columns its query lacks: {missing}"


@pytest.mark.parametrize(
    ("uid", "title", "panel", "target"),
    QUERIES,
    ids=[f"{uid}:{title}" for uid, title, _, _ in QUERIES],
)
@pytest.mark.parametrize("span", [SHORT, LONG], ids=["6h", "7d"])
def test_every_query_runs_and_returns_what_its_panel_needs(
    seeded: psycopg.Connection[Any],
    uid: str,
    title: str,
    panel: dict[str, Any],
    target: dict[str, Any],
    span: Range,
) -> None:
    columns, rows = _run(seeded, panel, target, span)
    _check_shape(panel, target, columns, rows)
    assert rows, f"{uid}: {title} returned no rows from the seeded database"


def _panel(uid: str, title: str) -> dict[str, Any]:
    return next(p for p in WALLS[uid]["panels"] if p["title"] == title)


def _target(panel: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(t for t in panel["targets"] if t["refId"] == ref)


def test_exposure_limit_lines_come_from_the_catalogue_with_unit_and_source(
    seeded: psycopg.Connection[Any],
) -> None:
    panel = _panel("qorgau-enterprise", "Exposure — ${exposure:text}")
    _, rows = _run(seeded, panel, _target(panel, "B"), SHORT)
    lines = {r[1]: r[2] for r in rows}
    co = {r.kind.value: r for r in LIMITS.rules("co")}
    expected = {
        f"limit · TWA 8 h · warning 20 mg/m3 · {co['twa'].source}": 20.0,
        f"limit · TWA 8 h · critical 40 mg/m3 · {co['twa'].source}": 40.0,
        f"limit · STEL 15 min · warning 20 mg/m3 · {co['stel'].source}": 20.0,
        f"limit · STEL 15 min · critical 50 mg/m3 · {co['stel'].source}": 50.0,
        f"limit · ceiling · critical 229 mg/m3 · {co['ceiling'].source}": 229.0,
    }
    assert lines == expected
    assert {r[0] for r in rows} == {SHORT.start, SHORT.end}  # across the whole range


def test_the_sensor_wall_draws_its_own_hazards_instant_limits(
    seeded: psycopg.Connection[Any],
) -> None:
    panel = _panel("qorgau-sensor", "Readings")
    _, rows = _run(seeded, panel, _target(panel, "B"), SHORT)
    labels = {r[1] for r in rows}
    assert any(label.startswith("limit · threshold · critical 100 mg/m3") for label in labels)
    assert any(label.startswith("limit · ceiling · critical 229 mg/m3") for label in labels)
    assert not any("TWA" in label for label in labels)


def test_readings_come_raw_for_short_ranges_and_from_the_rollup_for_long_ones(
    seeded: psycopg.Connection[Any],
) -> None:
    panel = _panel("qorgau-sensor", "Readings")
    _, short = _run(seeded, panel, _target(panel, "A"), SHORT)
    _, long = _run(seeded, panel, _target(panel, "A"), LONG)
    assert {r[1] for r in short} == {"reading"}
    assert {r[1] for r in long} == {"mean", "min", "max"}


def test_alarm_timeline_ends_in_each_sensors_gravest_open_alarm(
    seeded: psycopg.Connection[Any],
) -> None:
    panel = _panel("qorgau-enterprise", "Alarms per sensor")
    _, rows = _run(seeded, panel, _target(panel, "A"), SHORT)
    last: dict[str, int] = {}
    for _, sensor, level in rows:
        last[sensor] = level
    assert last[SENSOR] == 2  # escalated to critical, still open
    assert last["TGF1-S02"] == 1  # a sensor fault, a warning
    assert last["TGF1-S03"] == 0  # no alarm: OK from the start of the range
    states = [level for _, sensor, level in rows if sensor == SENSOR]
    assert states == [0, 1, 0, 1, 2]  # stel opened and cleared, threshold opened, escalated


def test_the_map_puts_enterprises_at_their_coordinates_by_alarm_state(
    seeded: psycopg.Connection[Any],
) -> None:
    panel = _panel("qorgau-national", "Enterprises by alarm state")
    columns, rows = _run(seeded, panel, _target(panel, "A"), SHORT)
    names = [c for c, _ in columns]
    by_id = {r[names.index("enterprise_id")]: r for r in rows}
    e001 = by_id[ENTERPRISE]
    assert (e001[names.index("latitude")], e001[names.index("longitude")]) == (50.07, 73.03)
    assert e001[names.index("state")] == 2
    assert by_id[OTHER][names.index("state")] >= 1
