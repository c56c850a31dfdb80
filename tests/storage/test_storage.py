from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

import storage
from core.catalogue import load_catalogue
from core.types import Reading
from storage.ingest import ingest_readings
from storage.migrate import migrate
from stream.codec import normalise

MIGRATIONS = Path(storage.__file__).parent / "migrations"


def test_migrations_run_twice_and_concurrently(empty_database_url: str) -> None:
    first = migrate(empty_database_url)
    assert first.flavour == "plain"  # no TimescaleDB on this machine
    # Every migration file, in order (a flavoured one once, in its plain form).
    on_disk = sorted({p.name.split(".")[0] for p in MIGRATIONS.glob("*.sql")})
    assert first.applied == on_disk
    assert on_disk[:6] == [
        "0001_reference",
        "0002_readings",
        "0003_timeseries",
        "0004_detection",
        "0005_models",
        "0006_people",
    ]
    second = migrate(empty_database_url)
    assert second.applied == []
    assert second.skipped == first.applied
    errors: list[BaseException] = []

    def again() -> None:
        try:
            migrate(empty_database_url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=again) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with psycopg.connect(empty_database_url) as conn:
        tables = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {
            "regions",
            "enterprises",
            "zones",
            "sensors",
            "readings",
            "exposures",
            "anomalies",
            "model_state",
            "alerts",
            "alert_history",
            "alert_keys",
            "users",
            "push_subscriptions",
            "schema_migrations",
        } <= tables
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(on_disk),)
        brin = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'readings_ts_brin'"
        ).fetchone()
        assert brin is not None and "brin" in brin[0]


def test_timescale_on_without_the_extension_is_a_clear_error(empty_database_url: str) -> None:
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match="timescaledb extension is not available"):
        migrate(empty_database_url, timescale="on")


def _readings(sensor: str, n: int, unit: str = "ppm", start: int = 0) -> list[Reading]:
    cat = load_catalogue()
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        normalise(
            "E001",
            {
                "sensor_id": sensor,
                "ts": (t0 + timedelta(seconds=i)).isoformat(),
                "hazard": "co",
                "value": 10.0 + i,
                "unit": unit,
                "seq": i,
            },
            cat,
        )
        for i in range(start, start + n)
    ]


async def _count(conn: psycopg.AsyncConnection, sensor: str) -> int:
    cur = await conn.execute("SELECT count(*) FROM readings WHERE sensor_id = %s", (sensor,))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_redelivered_batch_does_not_duplicate(database_url: str) -> None:
    sensor = f"T-{uuid.uuid4().hex[:8]}"
    batch = _readings(sensor, 100)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        assert await ingest_readings(conn, batch) == 100
        assert await ingest_readings(conn, batch) == 0  # redelivered whole
        assert await _count(conn, sensor) == 100
        # Half old, half new: only the new half is stored.
        assert await ingest_readings(conn, _readings(sensor, 100, start=50)) == 50
        assert await _count(conn, sensor) == 150
        # The same reading twice inside one batch.
        dup = _readings(sensor, 1, start=500)
        assert await ingest_readings(conn, dup + dup) == 1
        assert await _count(conn, sensor) == 151
        assert await ingest_readings(conn, []) == 0


async def test_ppm_is_stored_in_mg_m3_with_the_raw_value_kept(database_url: str) -> None:
    sensor = f"T-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await ingest_readings(conn, _readings(sensor, 1))
        cur = await conn.execute(
            "SELECT value, unit, raw_value, raw_unit, seq, plausible FROM readings"
            " WHERE sensor_id = %s",
            (sensor,),
        )
        value, unit, raw_value, raw_unit, seq, plausible = await cur.fetchone()  # type: ignore[misc]
    assert value == pytest.approx(10.0 * 28.010 / 24.45)
    assert (unit, raw_value, raw_unit, seq, plausible) == ("mg/m3", 10.0, "ppm", 0, True)


async def test_rollup_view_aggregates_per_minute(database_url: str) -> None:
    sensor = f"T-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await ingest_readings(conn, _readings(sensor, 90, unit="mg/m3"))
        cur = await conn.execute(
            "SELECT bucket, avg_value, min_value, max_value, n FROM readings_1m"
            " WHERE sensor_id = %s ORDER BY bucket",
            (sensor,),
        )
        rows = await cur.fetchall()
    assert [r[4] for r in rows] == [60, 30]
    assert rows[0][1] == pytest.approx(10.0 + 29.5)  # mean of 10..69
    assert (rows[1][2], rows[1][3]) == (70.0, 99.0)


def test_the_timescale_rollup_refresh_reaches_back_as_far_as_a_reading_may_be_late() -> None:
    """On TimescaleDB a reading below the rollup's watermark reaches `readings_1m` only
    when a refresh window covers it: the newest policy must reach past `max_age_s`."""
    import re

    from core.limits import load_limits
    from storage.migrate import available_migrations

    policies = [
        m
        for m in available_migrations()
        if m.flavour == "timescale" and "add_continuous_aggregate_policy('readings_1m'" in m.sql
    ]
    newest = policies[-1]
    days = re.search(r"start_offset => INTERVAL '(\d+) days'", newest.sql)
    assert days, newest.sql
    assert "remove_continuous_aggregate_policy('readings_1m'" in newest.sql or len(policies) == 1
    assert int(days.group(1)) * 86400 > load_limits().health.max_age_s
