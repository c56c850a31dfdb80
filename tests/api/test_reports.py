"""Workers' reports, photos and workplace through the API, on a real database and a real
Mosquitto; attacked as a stranger would (hostile bodies and bytes, other workers)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from core.access import Role
from core.settings import Settings
from storage.detection import ReportRecord, store_report
from tests.alerts.conftest import free_port
from tests.alerts.conftest import mqtt_broker as mqtt_broker  # a fixture
from tests.asgi import serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

PNG = b"\x89PNG\r\n\x1a\n" + bytes(100)
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(50)


def _settings(database_url: str, mqtt_url: str | None = None) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        mqtt_url=mqtt_url or f"mqtt://127.0.0.1:{free_port()}",
    )


def _body(**extra: Any) -> dict[str, Any]:
    return {
        "report_id": str(uuid.uuid4()),
        "kind": "hazard_observation",
        "ts": datetime.now(UTC).isoformat(),
        "text": "oil on the stairs",
        **extra,
    }


async def _store(dsn: str, enterprise: str, worker: str, kind: str = "near_miss") -> str:
    report_id = str(uuid.uuid4())
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        outcome = await store_report(
            conn,
            ReportRecord(
                report_id, enterprise, worker, kind, datetime.now(UTC), None, "x", None, None, None
            ),
        )
        await conn.commit()
    assert outcome == "new"
    return report_id


@pytest.fixture(scope="module")
def people(database_url: str) -> dict[str, Any]:
    return {
        "w1": ensure_user(database_url, "t-rep-w1-e002", Role.WORKER, [], "E002"),
        "w2": ensure_user(database_url, "t-rep-w2-e002", Role.WORKER, [], "E002"),
        "officer": ensure_user(database_url, "t-rep-o-e002", Role.SAFETY_OFFICER, [], "E002"),
        "officer_other": ensure_user(
            database_url, "t-officer-e001", Role.SAFETY_OFFICER, [], "E001"
        ),
    }


@pytest.fixture(scope="module")
async def no_broker(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = _settings(database_url)
    async with serve(settings) as c:
        yield c, settings


# --- sending: refused clearly, never a 500 ------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "fire"}, "kind"),
        ({"report_id": "not-a-uuid"}, "report_id"),
        ({"ts": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "ts"),
        ({"ts": (datetime.now(UTC) - timedelta(days=8)).isoformat()}, "ts"),
        ({"ts": "2026-03-01T08:00:00"}, "ts"),  # no offset
        ({"text": ""}, "text"),  # a hazard report needs one
        ({"text": "x" * 4001}, "text"),
        ({"lat": 91.0, "lon": 0.0}, "lat"),
        ({"lat": 50.0}, "lon"),  # lat without lon
        ({"lat": 50.0, "lon": 70.0, "accuracy_m": -1}, "accuracy_m"),
        ({"accuracy_m": 5}, "accuracy_m"),  # accuracy of no location
        ({"enterprise_id": "E001"}, "enterprise_id"),  # never from the body
        ({"worker_id": "someone"}, "worker_id"),
    ],
)
async def test_a_bad_report_is_a_422_naming_the_field(
    no_broker: tuple[httpx.AsyncClient, Settings],
    people: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    client, settings = no_broker
    r = await client.post(
        "/api/v1/reports", json=_body(**change), headers=bearer(settings, people["w1"])
    )
    assert r.status_code == 422, r.text
    assert any(e["loc"][-1] == field for e in r.json()["detail"]), r.text


async def test_only_a_worker_sends_reports_and_without_a_broker_is_told_to_retry(
    no_broker: tuple[httpx.AsyncClient, Settings], people: dict[str, Any], database_url: str
) -> None:
    client, settings = no_broker
    r = await client.post(
        "/api/v1/reports", json=_body(), headers=bearer(settings, people["officer"])
    )
    assert r.status_code == 403
    body = _body(kind="sos", text="")
    r = await client.post("/api/v1/reports", json=body, headers=bearer(settings, people["w1"]))
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert "send it again" in r.json()["detail"]
    # Another worker's stored report id is not taken over (and not published).
    taken = await _store(database_url, "E002", people["w2"].username)
    r = await client.post(
        "/api/v1/reports", json=_body(report_id=taken), headers=bearer(settings, people["w1"])
    )
    assert r.status_code == 409, r.text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@hsettings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    overrides=st.dictionaries(
        st.sampled_from(
            ["report_id", "kind", "ts", "text", "lat", "lon", "accuracy_m", "zone_id", "x"]
        ),
        json_values,
        max_size=4,
    ),
    raw=st.one_of(st.none(), st.binary(max_size=64)),
)
async def test_hostile_report_bodies_never_give_a_500(
    no_broker: tuple[httpx.AsyncClient, Settings],
    people: dict[str, Any],
    overrides: dict[str, Any],
    raw: bytes | None,
) -> None:
    client, settings = no_broker
    headers = {**bearer(settings, people["w1"]), "content-type": "application/json"}
    content = (
        raw
        if raw is not None
        else orjson.dumps({**_body(), **overrides}, option=orjson.OPT_NON_STR_KEYS)
        if _encodable(overrides)
        else b"{}"
    )
    r = await client.post("/api/v1/reports", content=content, headers=headers)
    assert r.status_code in (202, 400, 409, 422, 503), (r.status_code, r.text)


def _encodable(value: Any) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


# --- through a real broker: what the API publishes ----------------------------------------


async def test_a_report_is_published_on_the_workers_topic_as_the_app_contract_says(
    database_url: str, people: dict[str, Any], mqtt_broker: tuple[str, int]
) -> None:
    host, port = mqtt_broker
    got: list[tuple[str, dict[str, Any]]] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"listen-{uuid.uuid4().hex[:6]}")
    listener.on_connect = lambda c, *_: c.subscribe("qorgau/v1/+/app/+/report", qos=1)
    listener.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
    listener.on_message = lambda _c, _u, m: got.append((m.topic, orjson.loads(m.payload)))
    listener.connect(host, port)
    listener.loop_start()
    try:
        async with asyncio.timeout(5):
            await subscribed.wait()
        settings = _settings(database_url, f"mqtt://{host}:{port}")
        async with serve(settings, bearer(settings, people["w1"])) as client:
            async with asyncio.timeout(10):
                while not (await client.get("/api/v1/ready")).json()["checks"]["mqtt"]["ok"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            body = _body(kind="man_down", text="", lat=47.1, lon=51.9, accuracy_m=12.5)
            r = await client.post("/api/v1/reports", json=body)
            assert r.status_code == 202, r.text
            assert r.json() == {"report_id": body["report_id"], "status": "sent"}
        async with asyncio.timeout(5):
            while not got:  # noqa: ASYNC110 - paho's thread appends
                await asyncio.sleep(0.02)
    finally:
        listener.loop_stop()
        listener.disconnect()
    ((topic, payload),) = got
    assert topic == f"qorgau/v1/E002/app/{people['w1'].username}/report"
    assert payload == {
        "type": "man_down",
        "id": body["report_id"],
        "ts": datetime.fromisoformat(body["ts"]).isoformat(),
        "text": "",
        "location": {"lat": 47.1, "lon": 51.9, "accuracy_m": 12.5},
    }


# --- reading reports and photos -----------------------------------------------------------


async def test_photos_only_from_the_worker_who_made_the_report_and_only_images(
    no_broker: tuple[httpx.AsyncClient, Settings], people: dict[str, Any], database_url: str
) -> None:
    client, settings = no_broker
    mine = await _store(database_url, "E002", people["w1"].username)
    as_w1, as_w2 = bearer(settings, people["w1"]), bearer(settings, people["w2"])
    url = f"/api/v1/reports/{mine}/photo"

    assert (await client.post(url, content=b"GIF89a" + bytes(20), headers=as_w1)).status_code == 422
    assert (
        await client.post(url, content=b"<svg onload=alert(1)>", headers=as_w1)
    ).status_code == 422
    big = b"\xff\xd8\xff" + bytes(5 * 1024 * 1024)
    assert (await client.post(url, content=big, headers=as_w1)).status_code == 413
    # Another worker of the same enterprise: not theirs, as if it did not exist.
    r = await client.post(url, content=PNG, headers=as_w2)
    assert r.status_code == 404
    assert (await client.get(url, headers=as_w2)).status_code == 404
    assert (await client.get(f"/api/v1/reports/{mine}", headers=as_w2)).status_code == 404
    # A report not stored (yet): 404 with Retry-After.
    r = await client.post(f"/api/v1/reports/{uuid.uuid4()}/photo", content=PNG, headers=as_w1)
    assert (r.status_code, r.headers.get("retry-after")) == (404, "2")

    r = await client.post(url, content=PNG, headers=as_w1)
    assert r.status_code == 201, r.text
    assert (r.json()["content_type"], r.json()["size_bytes"], r.json()["url"]) == (
        "image/png",
        len(PNG),
        url,
    )
    r = await client.post(url, content=WEBP, headers=as_w1)  # sent again: replaces it
    assert r.json()["content_type"] == "image/webp"
    for who in (as_w1, bearer(settings, people["officer"])):
        got = await client.get(url, headers=who)
        assert got.status_code == 200
        assert got.content == WEBP
        assert got.headers["content-type"] == "image/webp"
        assert got.headers["x-content-type-options"] == "nosniff"
    report = (await client.get(f"/api/v1/reports/{mine}", headers=as_w1)).json()
    assert (report["photo_ref"], report["has_photo"]) == (url, True)
    # Another enterprise's officer: not found.
    assert (
        await client.get(url, headers=bearer(settings, people["officer_other"]))
    ).status_code == 404


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=256))
async def test_hostile_photo_bytes_never_give_a_500(
    no_broker: tuple[httpx.AsyncClient, Settings],
    people: dict[str, Any],
    database_url: str,
    data: bytes,
) -> None:
    client, settings = no_broker
    mine = await _store(database_url, "E002", people["w1"].username)
    r = await client.post(
        f"/api/v1/reports/{mine}/photo", content=data, headers=bearer(settings, people["w1"])
    )
    assert r.status_code in (201, 422), (r.status_code, r.text)


async def test_a_worker_lists_their_own_reports_an_officer_the_enterprises_newest_first(
    no_broker: tuple[httpx.AsyncClient, Settings], people: dict[str, Any], database_url: str
) -> None:
    client, settings = no_broker
    a = await _store(database_url, "E002", people["w1"].username, "incident")
    b = await _store(database_url, "E002", people["w2"].username, "incident")
    params = {"kind": "incident", "limit": "500"}
    mine = (
        await client.get("/api/v1/reports", params=params, headers=bearer(settings, people["w1"]))
    ).json()
    ids = [r["report_id"] for r in mine["items"]]
    assert a in ids and b not in ids
    assert {r["worker_id"] for r in mine["items"]} == {people["w1"].username}
    theirs = (
        await client.get(
            "/api/v1/reports", params=params, headers=bearer(settings, people["officer"])
        )
    ).json()
    ids = [r["report_id"] for r in theirs["items"]]
    assert ids.index(b) < ids.index(a)  # newest first
    assert theirs["total"] >= 2
    other = (
        await client.get(
            "/api/v1/reports", params=params, headers=bearer(settings, people["officer_other"])
        )
    ).json()
    assert {r["enterprise_id"] for r in other["items"]} <= {"E001"}


# --- my workplace -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plant(database_url: str) -> dict[str, str]:
    """An enterprise of this test's own: one zone, sensors in every state."""
    tag = uuid.uuid4().hex[:5].upper()
    eid, zone = f"W{tag}", f"W{tag}-Z1"
    now = datetime.now(UTC)
    sensors = {
        "co_red": ("co", 10.0, [(now - timedelta(seconds=5), 150.0, True)]),
        "co_green": ("co", 10.0, [(now - timedelta(seconds=5), 5.0, True)]),
        "co_silent": ("co", 10.0, [(now - timedelta(minutes=10), 5.0, True)]),
        "o2_low": ("o2", 10.0, [(now - timedelta(seconds=5), 17.0, True)]),
        "noise_none": ("noise", 10.0, []),
        "h2s_broken": ("h2s", 10.0, [(now - timedelta(seconds=5), 1.0, False)]),
    }
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO enterprises (id, name, name_ru, region_id, industry_code, emergency_phone)"
            " VALUES (%s, 'Test works', 'Тестовый завод', 'KZ-55', 'C', '+7 (7182) 00-00-01')",
            (eid,),
        )
        conn.execute(
            "INSERT INTO zones (id, enterprise_id, name, kind) VALUES (%s, %s, 'Цех 1', 'workshop')",
            (zone, eid),
        )
        for name, (hazard, interval, readings) in sensors.items():
            sid = f"{eid}-{name}"
            conn.execute(
                "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s)"
                " VALUES (%s, %s, %s, %s, %s)",
                (sid, eid, zone, hazard, interval),
            )
            for ts, value, plausible in readings:
                conn.execute(
                    "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                    " raw_value, raw_unit, plausible) VALUES (%s, %s, %s, %s, %s, '', %s, '', %s)",
                    (sid, ts, eid, hazard, value, value, plausible),
                )
    return {"enterprise": eid, "zone": zone}


async def test_my_workplace_judges_each_sensor_against_the_limits(
    no_broker: tuple[httpx.AsyncClient, Settings], database_url: str, plant: dict[str, str]
) -> None:
    client, settings = no_broker
    worker = ensure_user(
        database_url, f"t-wp-{plant['enterprise'].lower()}", Role.WORKER, [], plant["enterprise"]
    )
    r = await client.get("/api/v1/me/workplace", headers=bearer(settings, worker))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["enterprise"]["emergency_phone"] == "+7 (7182) 00-00-01"
    assert body["zone_assigned"] is False
    (zone,) = body["zones"]
    assert (zone["id"], zone["state"]) == (plant["zone"], "red")
    assert zone["messages"]["ru"] == "Цех 1: опасно — выйдите из зоны"
    states = {s["sensor_id"].split("-", 1)[1]: (s["state"], s["reason"]) for s in zone["sensors"]}
    assert states == {
        "co_red": ("red", "critical"),
        "co_green": ("green", None),
        "co_silent": ("unknown", "silent"),
        "o2_low": ("red", "critical"),  # oxygen: too little is the danger
        "noise_none": ("unknown", "no_data"),
        "h2s_broken": ("unknown", "implausible"),
    }
    red = next(s for s in zone["sensors"] if s["sensor_id"].endswith("co_red"))
    assert (red["value"], red["unit"]) == (150.0, "mg/m3")
    assert red["critical"] is not None and red["value"] >= red["critical"]
    assert red["messages"] == {
        "ru": "Оксид углерода: опасный уровень — выйдите из зоны",
        "kk": "Көміртек оксиді: қауіпті деңгей — аймақтан шығыңыз",
        "en": "Carbon monoxide: dangerous level — leave the zone",
    }
    # Only a worker has a workplace here.
    officer = ensure_user(database_url, "t-rep-o-e002", Role.SAFETY_OFFICER, [], "E002")
    assert (
        await client.get("/api/v1/me/workplace", headers=bearer(settings, officer))
    ).status_code == 403


async def test_the_enterprise_shows_its_emergency_phone(
    no_broker: tuple[httpx.AsyncClient, Settings], people: dict[str, Any]
) -> None:
    client, settings = no_broker
    r = await client.get("/api/v1/enterprises/E002", headers=bearer(settings, people["officer"]))
    assert r.json()["emergency_phone"] == "+7 (71237) 9-00-11"
