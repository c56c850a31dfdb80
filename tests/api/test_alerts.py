"""The alert endpoints and the live feed, over a real database and a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import uvicorn

from alerts.lifecycle import apply_machine_events
from api import create_app
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.settings import Settings
from tests.alerts.conftest import free_port
from tests.asgi import serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]


def _event(
    enterprise: str,
    sensor: str,
    ts: datetime,
    action: AlertAction = AlertAction.OPEN,
    severity: Severity = Severity.CRITICAL,
    kind: AlertKind = AlertKind.THRESHOLD,
    opened: datetime | None = None,
    value: float = 90.0,
) -> AlertEvent:
    return AlertEvent(
        action=action,
        key=f"{sensor}|{kind.value}|{(opened or ts).isoformat()}",
        kind=kind,
        severity=severity,
        enterprise_id=enterprise,
        sensor_id=sensor,
        hazard="co",
        ts=ts,
        value=value,
        message=f"CO {value} mg/m3 above 20 mg/m3",
        limit=20.0,
        details={"source": "rule"},
    )


async def _apply(database_url: str, *events: AlertEvent) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_machine_events(conn, list(events))


@pytest.fixture
async def app(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = _settings(database_url)
    async with serve(settings) as c:
        yield c, settings


async def test_alert_detail_has_history_and_the_readings_around_it(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    # Readings of a seeded sensor before, during and after a made-up alert on it.
    sensor = "E012-S01"
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("DELETE FROM readings WHERE sensor_id = %s", (sensor,))
        hazard = (await (await conn.execute(
            "SELECT hazard FROM sensors WHERE id = %s", (sensor,)
        )).fetchone())[0]  # type: ignore[index]  # fmt: skip
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit) VALUES (%s, %s, 'E012', %s, %s, 'x', %s, 'x')",
                [
                    (sensor, t0 + timedelta(minutes=m), hazard, float(m), float(m))
                    for m in range(-60, 61, 5)
                ],
            )
    opened = t0
    await _apply(
        database_url,
        _event("E012", sensor, opened),
        _event("E012", sensor, opened + timedelta(minutes=10), AlertAction.CLEAR, opened=opened),
    )
    officer = ensure_user(database_url, "t-alerts-officer-e012", Role.SAFETY_OFFICER, [], "E012")
    headers = bearer(settings, officer)
    page = (
        await client.get("/api/v1/alerts", params={"sensor_id": sensor}, headers=headers)
    ).json()
    assert page["total"] == 1
    (alert,) = page["items"]
    assert (alert["status"], alert["active"], alert["severity"]) == ("open", False, "critical")
    assert alert["unit"] == "mg/m3"
    r = await client.get(f"/api/v1/alerts/{alert['id']}", headers=headers)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert [h["action"] for h in detail["history"]] == ["open", "clear"]
    minutes = sorted(p["value"] for p in detail["readings"]["points"])
    # From 30 minutes before it opened to 30 minutes after it cleared (end excluded).
    assert minutes == [float(m) for m in range(-30, 40, 5)]


async def test_acknowledge_resolve_comment_over_http(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    sensor = f"E002-H{uuid.uuid4().hex[:6]}"
    await _apply(database_url, _event("E002", sensor, datetime(2026, 2, 1, 6, tzinfo=UTC)))
    inspector = ensure_user(database_url, "t-alerts-insp-kz23", Role.LABOUR_INSPECTOR, ["KZ-23"])
    worker = ensure_user(database_url, "t-alerts-worker-e002", Role.WORKER, [], "E002")
    h = bearer(settings, inspector)
    (alert,) = (await client.get("/api/v1/alerts", params={"sensor_id": sensor}, headers=h)).json()[
        "items"
    ]
    url = f"/api/v1/alerts/{alert['id']}"

    r = await client.post(f"{url}/acknowledge", headers=bearer(settings, worker))
    assert r.status_code == 403 and r.json()["detail"] == "a worker cannot act on alerts"
    r = await client.post(f"{url}/acknowledge", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "t-alerts-insp-kz23"
    r = await client.post(f"{url}/acknowledge", headers=h)
    assert r.status_code == 409
    assert r.json()["detail"].startswith("already acknowledged by t-alerts-insp-kz23")
    assert r.json()["alert"]["status"] == "acknowledged"  # how it is now, to show the person

    r = await client.post(f"{url}/resolve", json={"reason": "other"}, headers=h)
    assert r.status_code == 422 and "needs a comment" in r.json()["detail"][0]["msg"]
    r = await client.post(f"{url}/resolve", json={"reason": "mistake"}, headers=h)
    assert r.status_code == 422
    r = await client.post(
        f"{url}/resolve", json={"reason": "false_alarm", "comment": "calibration gas"}, headers=h
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolution"]) == ("resolved", "false_alarm")
    r = await client.post(f"{url}/comments", json={"text": ""}, headers=h)
    assert r.status_code == 422
    r = await client.post(f"{url}/comments", json={"text": "told the plant"}, headers=h)
    assert r.status_code == 200

    history = (await client.get(url, headers=h)).json()["history"]
    assert [(x["action"], x["actor"]) for x in history] == [
        ("open", "machine"),
        ("acknowledge", "t-alerts-insp-kz23"),
        ("resolve", "t-alerts-insp-kz23"),
        ("comment", "t-alerts-insp-kz23"),
    ]
    assert history[2]["comment"] == "calibration gas"

    # Filters: by status, severity, kind, enterprise, region, time.
    async def ids(**params: Any) -> set[int]:
        r = await client.get("/api/v1/alerts", params={"sensor_id": sensor, **params}, headers=h)
        assert r.status_code == 200, r.text
        return {a["id"] for a in r.json()["items"]}

    assert await ids(status="resolved") == {alert["id"]}
    assert await ids(status=["open", "acknowledged"]) == set()
    assert await ids(severity="warning") == set()
    assert await ids(kind="threshold", region_id="KZ-23", enterprise_id="E002") == {alert["id"]}
    assert await ids(kind="fire") == set()
    assert await ids(since="2026-02-01T06:00:00Z", until="2026-02-01T06:00:01Z") == {alert["id"]}
    assert await ids(since="2026-02-01T06:00:01Z") == set()
    r = await client.get("/api/v1/alerts", params={"since": "2026-02-01T06:00:00"}, headers=h)
    assert r.status_code == 422  # a time without its offset is refused, not guessed


@contextlib.asynccontextmanager
async def _server(settings: Settings) -> AsyncIterator[str]:
    """The API served by uvicorn on a free port (streams need a real server)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _feed(
    base: str, token: str, want: set[str], seen: list[dict[str, Any]], ready: asyncio.Event
) -> None:
    """Read the feed until changes for every sensor in ``want`` arrived (others are kept too)."""
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{base}/api/v1/alerts/feed", params={"access_token": token}) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                if event == "ready":
                    ready.set()
                elif event == "alert":
                    seen.append(orjson.loads(line.removeprefix("data: ")))
                    if want <= {s["alert"]["sensor_id"] for s in seen}:
                        return


async def test_live_feed_is_scoped_and_carries_machine_and_human_changes(
    database_url: str,
) -> None:
    settings = _settings(database_url)
    tag = uuid.uuid4().hex[:6]
    sensors = {e: f"{e}-F{tag}" for e in ("E001", "E002", "E003", "E008")}
    t = datetime(2026, 2, 2, 7, tzinfo=UTC)
    watchers = {
        "t-feed-officer-e001": (Role.SAFETY_OFFICER, [], "E001", {"E001"}),
        "t-feed-insp-kz55": (Role.LABOUR_INSPECTOR, ["KZ-55"], None, {"E003", "E008"}),
        "t-feed-national": (Role.CONTROL_ROOM, [], None, set(sensors)),
    }
    async with _server(settings) as base:
        tasks, seen, ready = {}, {}, []
        for name, (role, regions, ent, expect) in watchers.items():
            user = ensure_user(database_url, name, role, regions, ent)
            token = bearer(settings, user)["Authorization"].removeprefix("Bearer ")
            seen[name] = []
            ev = asyncio.Event()
            ready.append(ev)
            want = {sensors[e] for e in expect}
            tasks[name] = asyncio.create_task(_feed(base, token, want, seen[name], ev))
        async with asyncio.timeout(10):
            await asyncio.gather(*(e.wait() for e in ready))
        # The machine opens an alert in every enterprise; a person acknowledges E001's.
        await _apply(database_url, *(_event(e, s, t) for e, s in sensors.items()))
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            cur = await conn.execute(
                "SELECT id FROM alerts WHERE sensor_id = %s", (sensors["E001"],)
            )
            (e001_alert,) = await cur.fetchone()  # type: ignore[misc]
        officer = ensure_user(database_url, "t-feed-officer-e001", Role.SAFETY_OFFICER, [], "E001")
        async with httpx.AsyncClient(base_url=base, headers=bearer(settings, officer)) as c:
            r = await c.post(f"/api/v1/alerts/{e001_alert}/acknowledge")
            assert r.status_code == 200, r.text
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks.values())
        # Give a leak the chance to show: wait briefly for anything else on the wire.
        await asyncio.sleep(0.3)

    for name, (_role, _regions, _ent, expect) in watchers.items():
        ours = [s for s in seen[name] if s["alert"]["sensor_id"].endswith(f"-F{tag}")]
        got = {s["alert"]["enterprise_id"] for s in ours}
        assert got == expect, (name, got)
        assert all(s["alert"]["enterprise_id"] in expect for s in seen[name]), name
    officer_seen = seen["t-feed-officer-e001"]
    assert [(s["action"], s["actor"]) for s in officer_seen][:1] == [("open", "machine")]


async def test_feed_refuses_without_a_token(database_url: str) -> None:
    async with _server(_settings(database_url)) as base, httpx.AsyncClient() as c:
        r = await c.get(f"{base}/api/v1/alerts/feed")
        assert r.status_code == 401
        r = await c.get(f"{base}/api/v1/alerts/feed", params={"access_token": "forged"})
        assert r.status_code == 401


async def test_open_feeds_do_not_hold_database_connections(database_url: str) -> None:
    """A wall of feeds open for hours must leave the pool to everyone else: with a pool of 2
    connections, 6 open feeds and a normal request still get through."""
    settings = _settings(database_url).model_copy(update={"api_pool_size": 2})
    user = ensure_user(database_url, "t-feed-wall", Role.CONTROL_ROOM, [], None)
    headers = bearer(settings, user)
    async with _server(settings) as base, contextlib.AsyncExitStack() as stack:
        for _ in range(6):
            client = await stack.enter_async_context(httpx.AsyncClient(timeout=5))
            r = await stack.enter_async_context(
                client.stream("GET", f"{base}/api/v1/alerts/feed", headers=headers)
            )
            assert r.status_code == 200
        async with httpx.AsyncClient(timeout=5) as c:
            r = await c.get(f"{base}/api/v1/regions", headers=headers)
        assert r.status_code == 200


async def _events(
    base: str, headers: dict[str, str], count: int, ready: asyncio.Event | None = None
) -> list[tuple[str | None, str, dict[str, Any]]]:
    """The first ``count`` alert/resync events of a feed (``id``, ``event``, ``data``)."""
    out: list[tuple[str | None, str, dict[str, Any]]] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", f"{base}/api/v1/alerts/feed", headers=headers) as r,
    ):
        assert r.status_code == 200
        fields: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line:  # "name: value"; an empty line ends the event
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            event, data = fields.get("event", ""), fields.get("data")
            if event == "ready" and ready is not None:
                ready.set()
            elif data is not None and event != "ready":
                out.append((fields.get("id"), event, orjson.loads(data)))
                if len(out) >= count:
                    return out
            fields = {}
    return out


async def test_a_reconnecting_feed_first_gets_the_changes_it_missed(database_url: str) -> None:
    settings = _settings(database_url)
    tag = uuid.uuid4().hex[:6]
    officer = ensure_user(database_url, "t-feed-officer-e006", Role.SAFETY_OFFICER, [], "E006")
    headers = bearer(settings, officer)
    t = datetime(2026, 2, 3, 7, tzinfo=UTC)
    first, second = f"E006-R{tag}1", f"E006-R{tag}2"
    async with _server(settings) as base:
        ready = asyncio.Event()
        reader = asyncio.create_task(_events(base, headers, 1, ready))
        async with asyncio.timeout(10):
            await ready.wait()
            await _apply(database_url, _event("E006", first, t))
            ((seen_id, _, seen),) = await reader
        assert seen["alert"]["sensor_id"] == first and seen_id is not None
        # While the client is away: another alert of E006, one of E007 (not in its scope),
        # and a person acknowledging the first.
        await _apply(database_url, _event("E006", second, t), _event("E007", f"E007-R{tag}", t))
        async with httpx.AsyncClient(base_url=base, headers=headers) as c:
            r = await c.post(f"/api/v1/alerts/{seen['alert']['id']}/acknowledge")
            assert r.status_code == 200
        async with asyncio.timeout(10):
            missed = await _events(base, {**headers, "Last-Event-ID": seen_id}, 2)
    assert [(e, d["action"], d["alert"]["sensor_id"]) for _, e, d in missed] == [
        ("alert", "open", second),
        ("alert", "acknowledge", first),
    ]
    assert all(int(i or 0) > int(seen_id) for i, _, _ in missed)
    # The replayed alert is shown as it is now.
    assert missed[1][2]["alert"]["status"] == "acknowledged"
