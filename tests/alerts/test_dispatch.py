"""Routing, evacuation, digests, late routes and escalation, over real transports.

People are real users in the database with real addresses: Web Push
subscriptions pointing at a local push service (whose messages the test
decrypts with the subscription's private key), e-mail to an aiosmtpd server,
signed webhooks to an HTTP receiver, an apprise ``json://`` URL, and the
workers' app topic on Mosquitto. Time is injected: no test sleeps for an
escalation.

The tests use enterprises E010 (region KZ-15) and E011 (KZ-47), which no other
test gives people with addresses.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import http_ece
import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from psycopg_pool import AsyncConnectionPool

from alerts import lifecycle
from alerts.channels import (
    AppriseChannel,
    EmailChannel,
    MqttChannel,
    WebhookChannel,
    WebPushChannel,
    generate_vapid_key,
    verify_signature,
)
from alerts.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER
from alerts.delivery import Deliverer
from alerts.dispatcher import Dispatcher
from alerts.lifecycle import Actor
from alerts.routing import load_routing
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import load_catalogue
from storage import people
from tests.alerts.conftest import Receiver, http_receiver, subscription_keys
from tests.people import ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

CATALOGUE = load_catalogue()
WEBHOOK_SECRET = "dispatch-test-default-secret"


@dataclass
class Person:
    username: str
    user_id: int
    push_key: Any = None  # the subscription's private key, to decrypt what it receives
    push_auth: bytes = b""


@dataclass
class World:
    dispatcher: Dispatcher
    deliverer: Deliverer
    receiver: Receiver  # push service, webhooks and apprise share it, by path
    mailbox: Any
    people: dict[str, Person]
    tag: str
    mqtt: tuple[str, int]


def _person(
    dsn: str,
    name: str,
    role: Role,
    regions: list[str],
    enterprise: str | None,
    receiver: Receiver,
    *,
    push: bool = False,
    email_to: str | None = None,
    webhook: bool = False,
    apprise: bool = False,
    tags: list[str] | None = None,
) -> Person:
    user = ensure_user(dsn, name, role, regions, enterprise, tags=tags or [], email=email_to)
    p = Person(name, user.id)
    with psycopg.connect(dsn) as conn:
        if webhook:
            people.add_channel(
                conn, user_id=user.id, channel="webhook", address=f"{receiver.url}/hook/{name}"
            )
        if apprise:
            people.add_channel(
                conn,
                user_id=user.id,
                channel="apprise",
                address=f"json://{receiver.url.removeprefix('http://')}/apprise/{name}",
            )
        if push:
            key, p256dh, auth, auth_b64 = subscription_keys()
            conn.execute(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)"
                " VALUES (%s, %s, %s, %s)",
                (user.id, f"{receiver.url}/push/{name}", p256dh, auth_b64),
            )
            p.push_key, p.push_auth = key, auth
    return p


@pytest.fixture
async def world(
    database_url: str,
    pool: AsyncConnectionPool[Any],
    smtp_server: Any,
    mqtt_broker: tuple[str, int],
) -> AsyncIterator[World]:
    controller, mailbox = smtp_server
    tag = uuid.uuid4().hex[:6]
    async with http_receiver([201]) as receiver:
        u = receiver
        staff = [
            _person(database_url, f"t-d{tag}-labour15", Role.LABOUR_INSPECTOR, ["KZ-15"], None, u,
                    push=True, email_to=f"labour15-{tag}@example.kz"),
            _person(database_url, f"t-d{tag}-head15", Role.LABOUR_INSPECTOR, ["KZ-15"], None, u,
                    webhook=True, tags=["head"]),
            _person(database_url, f"t-d{tag}-labour47", Role.LABOUR_INSPECTOR, ["KZ-47"], None, u,
                    push=True, webhook=True),
            _person(database_url, f"t-d{tag}-fire15", Role.FIRE_INSPECTOR, ["KZ-15"], None, u,
                    webhook=True),
            _person(database_url, f"t-d{tag}-officer10", Role.SAFETY_OFFICER, [], "E010", u,
                    webhook=True, email_to=f"officer10-{tag}@example.kz"),
            _person(database_url, f"t-d{tag}-officer11", Role.SAFETY_OFFICER, [], "E011", u,
                    webhook=True),
            _person(database_url, f"t-d{tag}-control15", Role.CONTROL_ROOM, ["KZ-15"], None, u,
                    apprise=True),
            _person(database_url, f"t-d{tag}-national", Role.CONTROL_ROOM, [], None, u,
                    push=True, webhook=True),
            # worker10 opened the web app and allowed notifications: a Web Push subscription.
            _person(database_url, f"t-d{tag}-worker10", Role.WORKER, [], "E010", u, push=True),
            _person(database_url, f"t-d{tag}-worker11", Role.WORKER, [], "E011", u),
        ]  # fmt: skip
        vapid_pem, _ = generate_vapid_key()
        host, port = mqtt_broker
        channels = {
            "webpush": WebPushChannel(vapid_private_key=vapid_pem, subject="mailto:t@qorgau.kz"),
            "email": EmailChannel(host="127.0.0.1", port=controller.port, sender="q@qorgau.kz"),
            "webhook": WebhookChannel(default_secret=WEBHOOK_SECRET),
            "mqtt": MqttChannel(host=host, port=port),
            "apprise": AppriseChannel(),
        }
        deliverer = Deliverer(pool, channels)
        dispatcher = Dispatcher(
            pool, deliverer, load_routing(), CATALOGUE, public_url="http://q.test"
        )
        try:
            yield World(
                dispatcher,
                deliverer,
                receiver,
                mailbox,
                {p.username.removeprefix(f"t-d{tag}-"): p for p in staff},
                tag,
                mqtt_broker,
            )
        finally:
            await deliverer.close()
            # Other tests share the database: these people must not be told about theirs.
            with psycopg.connect(database_url) as conn:
                conn.execute(
                    "UPDATE users SET active = false WHERE username LIKE %s", (f"t-d{tag}-%",)
                )
                conn.execute(
                    "DELETE FROM digest_items WHERE recipient = ANY(%s)",
                    ([f"user:{p.user_id}" for p in staff],),
                )


def _change(
    world: World,
    kind: str,
    severity: str,
    hazard: str,
    ts: datetime,
    enterprise: str = "E010",
    action: str = "open",
) -> AlertEvent:
    sensor = f"{enterprise}-D{world.tag}"
    wire = {
        "key": f"{sensor}|{kind}|{ts.isoformat()}",
        "action": action,
        "ts": ts.isoformat().replace("+00:00", "Z"),
        "enterprise_id": enterprise,
        "sensor_id": sensor,
        "hazard": hazard,
        "kind": kind,
        "severity": severity,
        "value": 90.0,
        "message": f"{hazard} 90",
        "zone_id": f"{enterprise}-Z01",
        "limit": 20.0,
        "details": {"source": "rule"},
    }
    return AlertEvent.from_wire(wire)


def _about_this_test(world: World, path: str, body: bytes) -> bool:
    """Whether a request concerns this test's alerts (the dispatcher's tick serves every
    alert in the shared database; other tests' alerts may reach these people too)."""
    if path.startswith("/push/"):
        person = world.people[path.rsplit("/", 1)[1].removeprefix(f"t-d{world.tag}-")]
        body = http_ece.decrypt(
            body, private_key=person.push_key, auth_secret=person.push_auth, version="aes128gcm"
        )
    return world.tag.encode() in body


def _paths(receiver: Receiver, world: World | None = None) -> list[str]:
    return sorted(
        r.path
        for r in receiver.requests
        if world is None or _about_this_test(world, r.path, r.body)
    )


def _who(world: World, paths: list[str]) -> list[str]:
    prefix = f"t-d{world.tag}-"
    return sorted(p.rsplit("/", 1)[1].removeprefix(prefix) for p in paths)


def _decrypt(world: World, path: str) -> dict[str, Any]:
    person = world.people[path.rsplit("/", 1)[1].removeprefix(f"t-d{world.tag}-")]
    (req,) = [r for r in world.receiver.requests if r.path == path]
    body = http_ece.decrypt(
        req.body, private_key=person.push_key, auth_secret=person.push_auth, version="aes128gcm"
    )
    return dict(orjson.loads(body))


class _AppTopic:
    """A worker's phone: subscribed to its app topic on the real broker."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.messages: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        loop = asyncio.get_running_loop()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"phone-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: loop.call_soon_threadsafe(self.ready.set)
        self.client.on_message = lambda _c, _u, m: self.messages.append(orjson.loads(m.payload))
        self.client.connect(host, port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_a_critical_gas_alert_reaches_exactly_the_right_people(world: World) -> None:
    host, port = world.mqtt
    phone = _AppTopic(host, port, f"qorgau/v1/E010/app/t-d{world.tag}-worker10/notify")
    other_phone = _AppTopic(host, port, f"qorgau/v1/E011/app/t-d{world.tag}-worker11/notify")
    try:
        async with asyncio.timeout(5):
            await phone.ready.wait()
            await other_phone.ready.wait()
        t = datetime(2026, 4, 1, 10, tzinfo=UTC)
        change = _change(world, "threshold", "critical", "co", t)
        outcomes = await asyncio.gather(*await world.dispatcher.handle(change))
        assert {o.status.value for o in outcomes} == {"sent"}
        async with asyncio.timeout(5):
            while not phone.messages:  # noqa: ASYNC110 - paho's thread appends
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # room for a wrong message to arrive on the other phone
    finally:
        phone.close()
        other_phone.close()

    paths = _paths(world.receiver)
    # Web Push: the region's labour inspector, the national control room, and the worker's
    # browser (the evacuation notice, as on the app).
    assert _who(world, [p for p in paths if p.startswith("/push/")]) == [
        "labour15",
        "national",
        "worker10",
    ]
    evacuate = _decrypt(world, f"/push/t-d{world.tag}-worker10")
    assert (evacuate["purpose"], evacuate["enterprise_id"], evacuate["zone_id"]) == (
        "evacuate",
        "E010",
        "E010-Z01",
    )
    # Webhooks: the region's labour inspectors (the head is one too), the enterprise's safety
    # officer and the national control room (critical alerts).
    assert _who(world, [p for p in paths if p.startswith("/hook/")]) == [
        "head15",
        "national",
        "officer10",
    ]
    # apprise: the region's control room (critical alerts).
    assert _who(world, [p for p in paths if p.startswith("/apprise/")]) == ["control15"]
    # Nobody of another region or enterprise, no fire inspector for CO, no escalation level yet.
    payload = _decrypt(world, f"/push/t-d{world.tag}-labour15")
    stamp = change.ts.isoformat().replace("+00:00", "Z")
    assert payload["change_id"] == f"{change.key}|open|{stamp}"
    assert (payload["severity"], payload["hazard"], payload["unit"]) == ("critical", "co", "mg/m3")
    assert payload["link"] == f"http://q.test/api/v1/alerts?sensor_id=E010-D{world.tag}"
    hook = next(r for r in world.receiver.requests if r.path.endswith("officer10"))
    assert verify_signature(
        WEBHOOK_SECRET, hook.headers[TIMESTAMP_HEADER], hook.body, hook.headers[SIGNATURE_HEADER]
    )
    mails = sorted(rcpt for env in world.mailbox.envelopes for rcpt in env.rcpt_tos)
    assert mails == sorted(
        [f"labour15-{world.tag}@example.kz", f"officer10-{world.tag}@example.kz"]
    )
    msg = email.message_from_bytes(world.mailbox.envelopes[0].content, policy=email.policy.default)
    assert msg["Subject"]
    # The worker of E010 is told to evacuate on the app; E011's worker hears nothing.
    (notice,) = phone.messages
    assert (notice["purpose"], notice["enterprise_id"], notice["zone_id"]) == (
        "evacuate",
        "E010",
        "E010-Z01",
    )
    assert other_phone.messages == []

    # The same change again (Kafka redelivers at least once): nobody is told twice.
    before = len(world.receiver.requests)
    again = await asyncio.gather(*await world.dispatcher.handle(change))
    assert all(o.duplicate for o in again)
    assert len(world.receiver.requests) == before


async def test_fire_and_flammable_gas_go_to_fire_inspectors(world: World) -> None:
    t = datetime(2026, 4, 1, 11, tzinfo=UTC)
    await asyncio.gather(
        *await world.dispatcher.handle(_change(world, "fire", "critical", "temperature", t))
    )
    await asyncio.gather(
        *await world.dispatcher.handle(_change(world, "ceiling", "warning", "ch4", t, "E010"))
    )
    hooks = [p for p in _paths(world.receiver) if p.startswith("/hook/")]
    assert _who(world, hooks).count("fire15") == 2
    # A flammable-gas warning is not the labour inspector's (nor in their digest).
    assert "labour15" not in _who(
        world, [p for p in _paths(world.receiver) if "/push/" in p and "ch4" in p]
    )


async def test_warnings_wait_for_a_digest_and_go_out_as_one_message(world: World) -> None:
    t = datetime(2026, 4, 1, 12, tzinfo=UTC)
    for minutes in (0, 1, 2):
        change = _change(world, "stel", "warning", "co", t + timedelta(minutes=minutes))
        await asyncio.gather(*await world.dispatcher.handle(change))
    # The safety officer is told each time; the labour inspector nothing yet.
    assert (
        _who(world, [p for p in _paths(world.receiver) if p.startswith("/hook/")])
        == ["officer10"] * 3
    )
    assert not [p for p in _paths(world.receiver) if p.startswith("/push/")]
    report = await world.dispatcher.tick(datetime.now(UTC) + timedelta(minutes=10))
    assert report.digests == 0  # not half an hour old yet
    report = await world.dispatcher.tick(datetime.now(UTC) + timedelta(minutes=31))
    await report.outcomes()
    assert report.digests >= 2  # push and e-mail of the labour inspector
    pushes = [p for p in _paths(world.receiver, world) if p.startswith("/push/")]
    assert _who(world, pushes) == ["labour15"]
    digest = _decrypt(world, pushes[0])
    assert digest["purpose"] == "digest"
    assert len(digest["items"]) == 3
    report = await world.dispatcher.tick(datetime.now(UTC) + timedelta(minutes=70))
    assert report.digests == 0  # sent once


async def _open_critical(database_url: str, enterprise: str, sensor: str, t: datetime) -> int:
    event = AlertEvent(
        action=AlertAction.OPEN,
        key=f"{sensor}|threshold|{t.isoformat()}",
        kind=AlertKind.THRESHOLD,
        severity=Severity.CRITICAL,
        enterprise_id=enterprise,
        sensor_id=sensor,
        hazard="h2s",
        ts=t,
        value=40.0,
        message="H2S 40 mg/m3",
        limit=10.0,
        details={"source": "rule"},
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await lifecycle.apply_machine_events(conn, [event])
        cur = await conn.execute("SELECT id FROM alerts WHERE alert_key = %s", (event.key,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_an_unacknowledged_critical_alert_climbs_the_chain_until_acknowledged(
    world: World, database_url: str
) -> None:
    t0 = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)  # 3 a.m.
    alert_id = await _open_critical(database_url, "E010", f"E010-X{world.tag}", t0)
    d = world.dispatcher

    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT coalesce(nullif(name_ru, ''), name) FROM enterprises WHERE id = 'E010'"
        ).fetchone()
    assert row is not None
    e010_name = row[0]

    async def tick(minutes: float) -> list[str]:
        report = await d.tick(t0 + timedelta(minutes=minutes))
        outcomes = await report.outcomes()
        assert all(o.status.value == "sent" for o in outcomes), outcomes
        hooks = [
            r
            for r in world.receiver.requests
            if r.path.startswith("/hook/") and _about_this_test(world, r.path, r.body)
        ]
        # Named as people know the enterprise, even on the first escalation the notifier makes.
        assert all(orjson.loads(r.body)["enterprise_name"] == e010_name for r in hooks)
        world.receiver.requests.clear()
        return _who(world, sorted(r.path for r in hooks))

    assert await tick(9) == []  # still within the 10 minutes to acknowledge
    # 10 min: sent again to everyone told so far, and to the head of regional inspection.
    assert await tick(10) == ["head15", "national", "officer10"]
    assert await tick(12) == []
    assert await tick(15) == ["head15", "national", "officer10"]  # a reminder
    # 20 min: the national control room, the last level (it had critical alerts anyway).
    assert await tick(20) == ["head15", "national", "officer10"]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT escalation_level, reminders FROM alerts WHERE id = %s", (alert_id,)
        )
        assert await cur.fetchone() == (2, 0)
        cur = await conn.execute(
            "SELECT action, comment FROM alert_history WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        )
        assert await cur.fetchall() == [
            ("open", None),
            ("escalate_level", "sent to head of regional inspection"),
            ("remind", None),
            ("escalate_level", "sent to national control room"),
        ]
    assert await tick(25) == ["head15", "national", "officer10"]  # reminders go on
    officer = world.people["officer10"]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await lifecycle.acknowledge(
            conn,
            actor=Actor(officer.user_id, officer.username, Role.SAFETY_OFFICER, _scope("E010")),
            alert_id=alert_id,
            at=t0 + timedelta(minutes=26),
        )
    assert await tick(30) == []
    assert await tick(120) == []


def _scope(enterprise: str):  # type: ignore[no-untyped-def]
    from core.access import Scope

    return Scope(enterprise_id=enterprise)


async def test_a_sensor_broken_for_hours_reaches_the_labour_inspector_once(
    world: World, database_url: str
) -> None:
    t0 = datetime.now(UTC) - timedelta(hours=5)
    sensor = f"E010-F{world.tag}"
    event = AlertEvent(
        action=AlertAction.OPEN,
        key=f"{sensor}|sensor_fault|{t0.isoformat()}",
        kind=AlertKind.SENSOR_FAULT,
        severity=Severity.WARNING,
        enterprise_id="E010",
        sensor_id=sensor,
        hazard="co",
        ts=t0,
        value=-5.0,
        message="impossible value",
        details={"source": "rule"},
    )
    handled = await world.dispatcher.handle(event)
    await asyncio.gather(*handled)
    assert _who(world, _paths(world.receiver)) == ["officer10"]  # the safety officer only
    world.receiver.requests.clear()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await lifecycle.apply_machine_events(conn, [event])
    report = await world.dispatcher.tick(t0 + timedelta(hours=3))
    assert _paths(world.receiver, world) == []
    report = await world.dispatcher.tick(t0 + timedelta(hours=4, seconds=1))
    await report.outcomes()
    assert report.late_routed >= 1
    assert _who(world, _paths(world.receiver, world)) == ["head15", "labour15"]
    world.receiver.requests.clear()
    report = await world.dispatcher.tick(t0 + timedelta(hours=5))
    await report.outcomes()
    assert _paths(world.receiver, world) == []  # once
