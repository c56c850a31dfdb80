"""/status: what makes a wall's data stale, against a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg

from core.access import Role
from core.settings import Settings
from tests.asgi import serve
from tests.conftest import seeded_database
from tests.people import bearer, ensure_user


def _codes(body: dict[str, object]) -> set[str]:
    return {p["code"] for p in body["problems"]}  # type: ignore[attr-defined,index]


async def test_status_names_each_reason_the_data_may_be_stale() -> None:
    # A database of its own: readings and heartbeats of other tests must not count.
    with seeded_database() as url:
        await _check_status(url)


async def _check_status(url: str) -> None:
    settings = Settings(_env_file=None, database_url=url, wall_stale_after_s=60)  # type: ignore[call-arg]
    room = ensure_user(url, "t-status-kz35", Role.CONTROL_ROOM, ["KZ-35"])
    async with serve(settings, bearer(settings, room)) as client:
        # The API's own feed starts listening a moment after the app: until then it says so.
        for _ in range(100):
            body = (await client.get("/api/v1/status")).json()
            if "feed_down" not in _codes(body):
                break
            await asyncio.sleep(0.05)
        assert _codes(body) == {"no_readings", "no_workers"}
        assert body["newest_reading_at"] is None

        now = datetime.now(UTC)
        with psycopg.connect(url, autocommit=True) as conn:
            # A reading two minutes old in scope (E001, KZ-35), a fresh one outside it.
            for sensor, ent, ts in (
                ("E001-S01", "E001", now - timedelta(minutes=2)),
                ("E002-S01", "E002", now),
            ):
                conn.execute(
                    "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                    " raw_value, raw_unit) VALUES (%s, %s, %s, 'co', 1, 'mg/m3', 1, 'mg/m3')",
                    (sensor, ts, ent),
                )
            conn.execute(
                "INSERT INTO components (name, kind, host, pid, ready, started_at, seen_at)"
                " VALUES ('worker-1', 'worker', 'h', 1, true, now(), now() - interval '45 s'),"
                " ('worker-2', 'worker', 'h', 2, false, now(), now())"
            )
        body = (await client.get("/api/v1/status")).json()
        problems = {p["code"]: p for p in body["problems"]}
        # Another region's fresh reading does not make this wall's data fresh.
        assert set(problems) == {"readings_late", "worker_silent", "worker_not_ready"}
        assert 115 <= problems["readings_late"]["seconds"] <= 180
        assert problems["worker_silent"]["subject"] == "worker-1"
        assert problems["worker_not_ready"]["subject"] == "worker-2"
        assert {c["name"]: c["alive"] for c in body["components"]} == {
            "worker-1": False,
            "worker-2": True,
        }

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE components SET seen_at = now(), ready = true")
            conn.execute(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit) VALUES ('E001-S01', now(), 'E001', 'co', 1, 'mg/m3', 1,"
                " 'mg/m3')"
            )
        body = (await client.get("/api/v1/status")).json()
        assert body["problems"] == []
        assert body["reading_age_s"] < 10

        r = await client.get("/api/v1/status", headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401
