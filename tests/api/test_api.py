"""The HTTP API against a real, migrated and seeded PostgreSQL database.

Each test that writes readings uses its own sensors, so tests sharing the
session's database never see each other's rows.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from core.access import Role
from core.catalogue import load_catalogue
from core.settings import Settings
from tests.alerts.conftest import free_port
from tests.asgi import serve as _serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CATALOGUE = load_catalogue()


def _settings(database_url: str, *, mqtt_url: str | None = None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        mqtt_url=mqtt_url or f"mqtt://127.0.0.1:{free_port()}",
    )


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in as an admin, who sees the whole country."""
    settings = _settings(database_url)
    admin = ensure_user(database_url, "t-admin", Role.ADMIN)
    async with _serve(settings, bearer(settings, admin)) as c:
        yield c


def _hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def _insert_readings(
    database_url: str, sensor_id: str, rows: list[tuple[datetime, float, bool]]
) -> None:
    """Store ``(ts, value, plausible)`` readings for a seeded sensor, in its canonical unit."""
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT enterprise_id, hazard FROM sensors WHERE id = %s", (sensor_id,)
        )
        found = await cur.fetchone()
        assert found is not None, sensor_id
        enterprise_id, hazard = found
        unit = CATALOGUE[hazard].unit
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit, plausible) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (sensor_id, ts, enterprise_id, hazard, v, unit, v, unit, ok)
                    for ts, v, ok in rows
                ],
            )


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


# --- health -------------------------------------------------------------------------------


async def test_liveness_at_root_and_under_api_prefix(client: httpx.AsyncClient) -> None:
    for path in ("/health", "/api/v1/health"):
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.json() == {"status": "ok"}


async def test_openapi_is_titled_and_every_numeric_field_is_described(
    client: httpx.AsyncClient,
) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["info"]["title"] == "Qorgau API"
    assert doc["info"]["description"]
    assert "/api/v1/sensors/{sensor_id}/readings" in doc["paths"]
    assert "/health" in doc["paths"]
    assert (await client.get("/docs")).status_code == 200

    def is_numeric(prop: dict[str, Any]) -> bool:
        types = {prop.get("type")} | {alt.get("type") for alt in prop.get("anyOf", [])}
        return bool(types & {"number", "integer"})

    numeric = [
        (name, field, prop)
        for name, schema in doc["components"]["schemas"].items()
        if name.endswith("Public")
        for field, prop in schema.get("properties", {}).items()
        if is_numeric(prop)
    ]
    assert len(numeric) >= 10
    for name, field, prop in numeric:
        assert prop.get("description"), f"{name}.{field} has no description"


# --- reference data -----------------------------------------------------------------------


async def test_regions_list_counts_enterprises(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/regions")
    assert r.status_code == 200
    regions = r.json()
    assert len(regions) == 20
    assert [x["id"] for x in regions] == sorted(x["id"] for x in regions)
    by_id = {x["id"]: x for x in regions}
    assert by_id["KZ-55"]["enterprise_count"] == 2
    assert sum(x["enterprise_count"] for x in regions) == 12


async def test_enterprises_list_and_filters(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/enterprises")
    assert r.status_code == 200
    all_ = r.json()
    assert [e["id"] for e in all_] == [f"E{i:03d}" for i in range(1, 13)]
    assert sum(e["sensor_count"] for e in all_) == 192
    e001 = all_[0]
    assert (e001["name"], e001["region_id"], e001["industry_code"]) == (
        "Nura Steel Works",
        "KZ-35",
        "C",
    )

    async def ids(**params: Any) -> list[str]:
        resp = await client.get("/api/v1/enterprises", params=params)
        assert resp.status_code == 200, resp.text
        return [e["id"] for e in resp.json()]

    assert await ids(region_id="KZ-55") == ["E003", "E008"]
    assert await ids(industry_code="B") == ["E002", "E004", "E008", "E011"]
    assert await ids(region_id="KZ-55", industry_code="B") == ["E008"]
    assert await ids(region_id="KZ-XX") == []
    assert await ids(limit=5, offset=10) == ["E011", "E012"]
    assert await ids(limit=2) == ["E001", "E002"]
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert (await client.get("/api/v1/enterprises", params=bad)).status_code == 422, bad


async def test_enterprise_detail_and_sensors(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/enterprises/E001")
    assert r.status_code == 200
    enterprise = r.json()
    assert enterprise["id"] == "E001"
    assert enterprise["city"] == "Temirtau"

    r = await client.get("/api/v1/enterprises/E001/sensors")
    assert r.status_code == 200
    sensors = r.json()
    assert len(sensors) == enterprise["sensor_count"] > 0
    assert {s["enterprise_id"] for s in sensors} == {"E001"}
    s01 = next(s for s in sensors if s["id"] == "E001-S01")
    assert (s01["hazard"], s01["unit"], s01["zone_id"]) == ("co", "mg/m3", "E001-Z01")
    assert s01["zone_name"] == "Blast furnace No. 2 casthouse"


async def test_unknown_enterprise_and_sensor_are_404(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/v1/enterprises/E999",
        "/api/v1/enterprises/E999/sensors",
        "/api/v1/sensors/E999-S01",
        "/api/v1/sensors/E999-S01/readings",
    ):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "not found" in r.json()["detail"]


async def test_sensor_detail_has_latest_reading(
    client: httpx.AsyncClient, database_url: str
) -> None:
    before = (await client.get("/api/v1/sensors/E006-S01")).json()
    assert before["last_reading_at"] is None
    assert before["last_value"] is None
    assert (before["hazard"], before["unit"]) == ("temperature", CATALOGUE["temperature"].unit)

    base = _hour_floor(datetime.now(UTC)) - timedelta(hours=5)
    await _insert_readings(
        database_url,
        "E006-S01",
        [
            (base, 31.0, True),
            (base + timedelta(minutes=2), 33.5, True),
            (base + timedelta(minutes=1), 32.0, True),
        ],
    )
    after = (await client.get("/api/v1/sensors/E006-S01")).json()
    assert _ts(after["last_reading_at"]) == base + timedelta(minutes=2)
    assert after["last_value"] == 33.5


# --- readings -----------------------------------------------------------------------------


async def test_readings_raw_when_few(client: httpx.AsyncClient, database_url: str) -> None:
    sensor = "E003-S01"
    base = _hour_floor(datetime.now(UTC)) - timedelta(days=1)
    start, end = base, base + timedelta(minutes=10)
    inside = [
        (base, 1.5, True),
        (base + timedelta(seconds=10), 2.0, True),
        (base + timedelta(seconds=20), 2.5, True),
        (base + timedelta(seconds=30), 99_999.0, False),
        (base + timedelta(minutes=9, seconds=59), 3.0, True),
    ]
    outside = [(start - timedelta(seconds=1), 7.0, True), (end, 8.0, True)]
    await _insert_readings(database_url, sensor, inside + outside)

    r = await client.get(
        f"/api/v1/sensors/{sensor}/readings",
        params={"start": start.isoformat(), "end": end.isoformat(), "max_points": 10},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sensor_id"] == sensor
    assert (body["hazard"], body["unit"]) == ("so2", CATALOGUE["so2"].unit)
    assert _ts(body["start"]) == start
    assert _ts(body["end"]) == end
    assert body["downsampled"] is False
    assert body["bucket_seconds"] is None
    got = [(_ts(p["ts"]), p["value"], p["plausible"]) for p in body["points"]]
    assert got == inside  # [start, end): the reading at `end` and the one before are out
    for p in body["points"]:
        assert p["min"] == p["max"] == p["value"]
        assert p["count"] == 1


async def test_readings_downsample_only_above_max_points(
    client: httpx.AsyncClient, database_url: str
) -> None:
    base = _hour_floor(datetime.now(UTC)) - timedelta(days=1, hours=3)
    start, end = base, base + timedelta(minutes=5)
    for sensor, n, expect_downsampled in (("E004-S01", 10, False), ("E004-S02", 11, True)):
        await _insert_readings(
            database_url,
            sensor,
            [(base + timedelta(seconds=10 * i), float(i), True) for i in range(n)],
        )
        r = await client.get(
            f"/api/v1/sensors/{sensor}/readings",
            params={"start": start.isoformat(), "end": end.isoformat(), "max_points": 10},
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["downsampled"] is expect_downsampled, sensor
        if expect_downsampled:
            assert body["bucket_seconds"] == 30  # ceil(300 s / 10)
            assert [p["count"] for p in body["points"]] == [3, 3, 3, 2]
        else:
            assert len(body["points"]) == n


async def test_readings_downsampled_buckets(client: httpx.AsyncClient, database_url: str) -> None:
    sensor = "E005-S01"
    base = _hour_floor(datetime.now(UTC)) - timedelta(days=1, hours=1)
    readings = [
        (base + timedelta(seconds=30 * i), round(20 + 10 * math.sin(i), 3), i % 37 != 5)
        for i in range(126)
    ]
    await _insert_readings(database_url, sensor, readings)
    # A start off the bucket grid: buckets stay aligned to the epoch, not to `start`.
    start = base + timedelta(seconds=90)
    end = start + timedelta(hours=1)
    max_points = 10
    width = math.ceil((end - start).total_seconds() / max_points)
    assert width == 360

    # The expected buckets, by hand from what was inserted.
    expected: dict[datetime, list[tuple[float, bool]]] = {}
    for ts, value, ok in readings:
        if start <= ts < end:
            offset = (ts - EPOCH).total_seconds()
            key = EPOCH + timedelta(seconds=offset // width * width)
            expected.setdefault(key, []).append((value, ok))
    assert sum(len(v) for v in expected.values()) == 120
    assert min(expected) == base < start

    r = await client.get(
        f"/api/v1/sensors/{sensor}/readings",
        params={"start": start.isoformat(), "end": end.isoformat(), "max_points": max_points},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["downsampled"] is True
    assert body["bucket_seconds"] == width
    assert body["unit"] == CATALOGUE["nh3"].unit
    points = body["points"]
    assert [_ts(p["ts"]) for p in points] == sorted(expected)
    assert len(points) == 11  # max_points + 1: `start` falls inside the first bucket
    for p in points:
        bucket = expected[_ts(p["ts"])]
        values = [v for v, _ in bucket]
        assert p["count"] == len(bucket)
        assert p["value"] == pytest.approx(sum(values) / len(values), rel=1e-12)
        assert p["min"] == min(values)
        assert p["max"] == max(values)
        assert p["plausible"] is all(ok for _, ok in bucket)
    assert [p["count"] for p in points] == [9] + [12] * 9 + [3]
    assert not all(p["plausible"] for p in points)  # i = 5, 42, 79, 116 are flagged


async def test_readings_default_to_the_last_hour(
    client: httpx.AsyncClient, database_url: str
) -> None:
    sensor = "E007-S01"
    now = datetime.now(UTC).replace(microsecond=0)
    recent = now - timedelta(minutes=10)
    await _insert_readings(
        database_url, sensor, [(now - timedelta(hours=2), 1.0, True), (recent, 2.0, True)]
    )
    r = await client.get(f"/api/v1/sensors/{sensor}/readings")
    assert r.status_code == 200, r.text
    body = r.json()
    start, end = _ts(body["start"]), _ts(body["end"])
    assert end - start == timedelta(hours=1)
    assert abs((end - datetime.now(UTC)).total_seconds()) < 60
    assert [(_ts(p["ts"]), p["value"]) for p in body["points"]] == [(recent, 2.0)]


async def test_readings_reject_bad_ranges(client: httpx.AsyncClient) -> None:
    url = "/api/v1/sensors/E001-S01/readings"
    t = datetime(2025, 6, 1, tzinfo=UTC)

    r = await client.get(url, params={"start": t.isoformat(), "end": t.isoformat()})
    assert r.status_code == 422
    assert "must be before end" in r.json()["detail"][0]["msg"]

    later = (t + timedelta(hours=1)).isoformat()
    r = await client.get(url, params={"start": later, "end": t.isoformat()})
    assert r.status_code == 422
    assert "must be before end" in r.json()["detail"][0]["msg"]

    r = await client.get(
        url, params={"start": t.isoformat(), "end": (t + timedelta(days=367)).isoformat()}
    )
    assert r.status_code == 422
    assert "366 days" in r.json()["detail"][0]["msg"]
    r = await client.get(
        url, params={"start": t.isoformat(), "end": (t + timedelta(days=366)).isoformat()}
    )
    assert r.status_code == 200

    # No time zone: ambiguous, refused by validation.
    r = await client.get(url, params={"start": "2025-06-01T00:00:00", "end": later})
    assert r.status_code == 422
    for max_points in (9, 5001):
        r = await client.get(url, params={"max_points": max_points})
        assert r.status_code == 422, max_points


# --- readiness ----------------------------------------------------------------------------


def _assert_check(check: dict[str, Any], *, ok: bool) -> None:
    assert set(check) == {"ok", "latency_ms", "error"}
    assert check["ok"] is ok
    assert isinstance(check["latency_ms"], float)
    assert 0 <= check["latency_ms"] < 3500
    if ok:
        assert check["error"] is None
    else:
        assert isinstance(check["error"], str)
        assert check["error"]


async def test_ready_is_503_when_kafka_and_mqtt_are_down(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable"
    assert set(body["checks"]) == {"database", "kafka", "mqtt"}
    _assert_check(body["checks"]["database"], ok=True)
    _assert_check(body["checks"]["kafka"], ok=False)
    _assert_check(body["checks"]["mqtt"], ok=False)
    assert "ConnectionRefused" in body["checks"]["mqtt"]["error"]


def _mosquitto_listening() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _mosquitto_listening(), reason="no MQTT broker on 127.0.0.1:1883")
async def test_ready_mqtt_ok_against_real_broker(database_url: str) -> None:
    async with _serve(_settings(database_url, mqtt_url="mqtt://127.0.0.1:1883")) as client:
        await _ready_mqtt(client, ok=True)  # the API's session connects in the background
        r = await client.get("/api/v1/ready")
    assert r.status_code == 503  # Kafka is still pointed at a closed port
    checks = r.json()["checks"]
    _assert_check(checks["database"], ok=True)
    _assert_check(checks["mqtt"], ok=True)
    _assert_check(checks["kafka"], ok=False)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """MQTT's variable byte integer at ``data[at:]``: (value, index after it)."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


@asynccontextmanager
async def _fake_broker(connack: bytes | None) -> AsyncIterator[tuple[int, list[bytes]]]:
    """An MQTT peer: records every CONNECT it receives and answers ``connack`` (or nothing),
    then holds the connection until the client leaves."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(1)
            length = bytearray()
            while not length or length[-1] & 0x80:
                length += await reader.readexactly(1)
            size, _ = _varint(bytes(length), 0)
            received.append(first + bytes(length) + await reader.readexactly(size))
            if connack is not None:
                writer.write(connack)
                await writer.drain()
            while await reader.read(1024):  # PINGREQ, DISCONNECT...: until the client leaves
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        server.close()


async def _ready_mqtt(client: httpx.AsyncClient, *, ok: bool) -> dict[str, Any]:
    """/ready's MQTT check once it says ``ok`` (the API connects in the background)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        mqtt = (await client.get("/api/v1/ready")).json()["checks"]["mqtt"]
        if mqtt["ok"] is ok or asyncio.get_running_loop().time() > deadline:
            return mqtt  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)


_CONNACK_V5_OK = bytes([0x20, 0x03, 0x00, 0x00, 0x00])


@pytest.mark.parametrize(
    ("userinfo", "flags", "client_id", "credentials"),
    [
        ("", 0x02, None, b""),  # clean start only; a random client id
        ("ops@", 0x80 | 0x02, "ops", b"\x00\x03ops"),
        ("ops:s3cret@", 0x80 | 0x40 | 0x02, "ops", b"\x00\x03ops\x00\x06s3cret"),
    ],
)
async def test_ready_mqtt_is_the_apis_own_mqtt5_session(
    database_url: str, userinfo: str, flags: int, client_id: str | None, credentials: bytes
) -> None:
    async with _fake_broker(_CONNACK_V5_OK) as (port, received):
        settings = _settings(database_url, mqtt_url=f"mqtt://{userinfo}127.0.0.1:{port}")
        async with _serve(settings) as client:
            _assert_check(await _ready_mqtt(client, ok=True), ok=True)
            for _ in range(3):  # readiness asks the session; it opens none of its own
                _assert_check((await client.get("/api/v1/ready")).json()["checks"]["mqtt"], ok=True)
    (connect,) = received
    assert connect[0] == 0x10
    size, at = _varint(connect, 1)
    assert size == len(connect) - at
    assert connect[at : at + 6] == b"\x00\x04MQTT"
    assert connect[at + 6] == 5  # MQTT 5: a refused publish is heard in its PUBACK
    assert connect[at + 7] == flags
    _properties, at = _varint(connect, at + 10)
    at += _properties
    id_len = int.from_bytes(connect[at : at + 2], "big")
    sent_id = connect[at + 2 : at + 2 + id_len].decode()
    if client_id is None:
        assert sent_id.startswith("qorgau-api-") and len(sent_id) > len("qorgau-api-")
    else:
        assert sent_id == client_id  # the broker binds it to the user name anyway
    assert connect[at + 2 + id_len :] == credentials


async def test_ready_mqtt_reports_refused_connack(database_url: str) -> None:
    not_authorized = bytes([0x20, 0x03, 0x00, 0x87, 0x00])
    async with _fake_broker(not_authorized) as (port, _):
        settings = _settings(database_url, mqtt_url=f"mqtt://127.0.0.1:{port}")
        async with _serve(settings) as client:
            mqtt = await _ready_mqtt(client, ok=False)
            deadline = asyncio.get_running_loop().time() + 10
            while "Not authorized" not in (mqtt["error"] or ""):
                assert asyncio.get_running_loop().time() < deadline, mqtt
                await asyncio.sleep(0.1)
                mqtt = (await client.get("/api/v1/ready")).json()["checks"]["mqtt"]
            r = await client.get("/api/v1/ready")
    assert r.status_code == 503
    _assert_check(mqtt, ok=False)
    assert "CONNACK refused the connection: Not authorized" in mqtt["error"]


async def test_ready_mqtt_is_down_at_once_while_the_broker_does_not_answer(
    database_url: str,
) -> None:
    async with _fake_broker(None) as (port, _received):
        settings = _settings(database_url, mqtt_url=f"mqtt://127.0.0.1:{port}")
        async with _serve(settings) as client:
            r = await client.get("/api/v1/ready")
    assert r.status_code == 503
    mqtt = r.json()["checks"]["mqtt"]
    assert mqtt["ok"] is False
    assert "the API has no MQTT session" in mqtt["error"]
    assert mqtt["latency_ms"] < 1000  # its own state: no waiting for a broker that is silent
