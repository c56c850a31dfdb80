"""The MQTT side attacked as a stranger and as a careless or compromised device would.

Against the test stack's real Mosquitto (passwords and ACLs rendered from the
database, client ids bound to user names) and the real bridge, worker and
PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.publisher import BulkPublisher, reading_topic
from qorgau.launcher import Credentials, Stack
from tests.e2e.devices import publisher, register_sensor
from tests.e2e.test_pipeline import _dead_letters, _wait_rows


class Client:
    """A paho client that records what happens to it."""

    def __init__(self, stack: Stack, creds: Credentials | None, client_id: str = "") -> None:
        self.connack: Any = None
        self.disconnects: list[str] = []
        self.messages: list[tuple[str, bytes]] = []
        self.subacks: list[list[str]] = []
        self._connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"probe-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv311,
        )
        if creds is not None:
            self.client.username_pw_set(*creds)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *a: self.disconnects.append(str(a[3]))
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.append(
            [str(r) for r in rcs]
        )
        self.client.reconnect_delay_set(60, 60)  # never by itself within a test
        s = stack.settings
        self.client.connect(s.mqtt_host, s.mqtt_port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, *a: Any) -> None:
        self.connack = a[3]
        self._connected.set()

    def wait_connack(self, timeout_s: float = 5.0) -> Any:
        assert self._connected.wait(timeout_s), "no CONNACK"
        return self.connack

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def client(stack: Stack, creds: Credentials | None, client_id: str = "") -> Iterator[Client]:
    c = Client(stack, creds, client_id)
    try:
        yield c
    finally:
        c.close()


def _reading(seq: int, value: float = 5.0, ts: datetime | None = None) -> bytes:
    when = (ts or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"ts": when, "hazard": "co", "value": value, "unit": "mg/m3", "seq": seq})


def test_nobody_connects_without_a_valid_identity(stack: Stack) -> None:
    with client(stack, None) as anonymous:
        assert anonymous.wait_connack().is_failure
    bridge = stack.service_credentials("bridge")
    with client(stack, Credentials(bridge.username, "guessed-" + "x" * 30)) as guesser:
        assert guesser.wait_connack().is_failure
    with client(stack, Credentials("nobody-" + uuid.uuid4().hex[:6], "whatever")) as stranger:
        assert stranger.wait_connack().is_failure


def test_a_sensor_publishes_only_its_own_topics(stack: Stack) -> None:
    own = register_sensor(stack, "E001", "co")
    neighbour = register_sensor(stack, "E001", "co")
    foreign = register_sensor(stack, "E002", "co")
    creds = stack.sensor_credentials(own, "E001")
    s = stack.settings
    pub = BulkPublisher(s.mqtt_host, s.mqtt_port, credentials=creds)
    try:
        pub.publish(reading_topic("E001", neighbour), _reading(1))  # another device's topic
        pub.publish(reading_topic("E002", foreign), _reading(2))  # another enterprise's
        pub.publish(reading_topic("E002", own), _reading(3))  # its own id, wrong enterprise
        pub.publish(reading_topic("E001", own), _reading(4))  # its own: the only one allowed
        assert pub.wait_acked(timeout_s=10)  # MQTT 3.1.1 acknowledges, then drops, the rest
    finally:
        pub.close()
    dsn = stack.settings.database_url or ""
    assert [r[0] for r in _wait_rows(dsn, own, 1)] == [4]
    time.sleep(1.0)  # the refused ones would have arrived with it
    assert _wait_rows(dsn, neighbour, 1, timeout_s=0.5) == []
    assert _wait_rows(dsn, foreign, 1, timeout_s=0.5) == []


def test_nobody_but_the_bridge_reads_readings_and_only_a_worker_reads_their_notices(
    stack: Stack,
) -> None:
    sensor = register_sensor(stack, "E001", "co")
    creds = stack.sensor_credentials(sensor, "E001")
    dsn = stack.settings.database_url or ""
    from core.access import Role
    from tests.people import ensure_user

    tag = uuid.uuid4().hex[:6]
    alice = ensure_user(dsn, f"t-sec-a{tag}", Role.WORKER, [], "E001")
    bob = ensure_user(dsn, f"t-sec-b{tag}", Role.WORKER, [], "E001")
    with (
        client(stack, creds) as snoop,
        client(stack, stack.app_credentials(alice.username, "E001")) as alice_app,
        client(stack, stack.app_credentials(bob.username, "E001")) as bob_app,
    ):
        for c in (snoop, alice_app, bob_app):
            assert not c.wait_connack().is_failure
        snoop.client.subscribe("#", qos=1)
        snoop.client.subscribe("qorgau/v1/+/sensors/+/reading", qos=1)
        alice_app.client.subscribe(f"qorgau/v1/E001/app/{bob.username}/notify", qos=1)
        alice_app.client.subscribe(f"qorgau/v1/E001/app/{alice.username}/notify", qos=1)
        time.sleep(0.5)
        # Readings flow, and the notifier (a service) tells both workers something.
        with publisher(stack, "E001") as pub:
            pub.publish(reading_topic("E001", sensor), _reading(1))
            assert pub.wait_acked(timeout_s=10)
        notifier = stack.service_credentials("notifier")
        with client(stack, notifier) as n:
            assert not n.wait_connack().is_failure
            for worker in (alice.username, bob.username):
                n.client.publish(f"qorgau/v1/E001/app/{worker}/notify", b"evacuate", qos=1)
            time.sleep(1.0)
        assert [r[0] for r in _wait_rows(dsn, sensor, 1)] == [1]
        assert snoop.messages == []  # not a reading, not a notice, not the bridge's traffic
        assert alice_app.messages == [(f"qorgau/v1/E001/app/{alice.username}/notify", b"evacuate")]
        assert len(bob_app.messages) == 0  # bob did not subscribe; alice could not read his


def test_a_device_cannot_forge_a_workers_notice_or_another_workers_report(stack: Stack) -> None:
    dsn = stack.settings.database_url or ""
    from core.access import Role
    from tests.people import ensure_user

    tag = uuid.uuid4().hex[:6]
    worker = ensure_user(dsn, f"t-sec-w{tag}", Role.WORKER, [], "E001")
    other = ensure_user(dsn, f"t-sec-o{tag}", Role.WORKER, [], "E001")
    with (
        client(stack, stack.app_credentials(worker.username, "E001")) as phone,
        client(stack, stack.gateway_credentials("E001")) as gateway,
        client(stack, stack.app_credentials(other.username, "E001")) as other_phone,
    ):
        for c in (phone, gateway, other_phone):
            assert not c.wait_connack().is_failure
        phone.client.subscribe(f"qorgau/v1/E001/app/{worker.username}/notify", qos=1)
        time.sleep(0.3)
        gateway.client.publish(f"qorgau/v1/E001/app/{worker.username}/notify", b"evacuate", qos=1)
        other_phone.client.publish(
            f"qorgau/v1/E001/app/{worker.username}/notify", b"evacuate", qos=1
        )
        other_phone.client.publish(
            f"qorgau/v1/E001/app/{worker.username}/report", b'{"type": "sos"}', qos=1
        )
        time.sleep(1.0)
        assert phone.messages == []
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM reports WHERE worker_id = %s", (worker.username,)
        ).fetchone()
    assert row == (0,)


def test_nobody_takes_over_the_bridges_session(stack: Stack) -> None:
    sensor = register_sensor(stack, "E001", "co")
    attacker = stack.sensor_credentials(register_sensor(stack, "E001", "co"), "E001")
    bridge_id = stack.service_credentials("bridge").username
    # A valid device claiming the bridge's client id, with a persistent session: the
    # broker names every client by its user name, so this is just the device again.
    c = Client(stack, attacker, client_id=bridge_id)
    try:
        assert not c.wait_connack().is_failure
        c.client.subscribe("qorgau/v1/+/sensors/+/reading", qos=1)
        with publisher(stack, "E001") as pub:
            for i in range(16):
                pub.publish(reading_topic("E001", sensor), _reading(i, ts=_t(i)))
            assert pub.wait_acked(timeout_s=10)
        rows = _wait_rows(stack.settings.database_url or "", sensor, 16)
    finally:
        c.close()
    assert [r[0] for r in rows] == list(range(16))  # every one reached the database
    assert c.messages == []


def _t(i: int) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=60) + timedelta(milliseconds=10 * i)


async def test_a_spoofed_topic_is_dead_lettered_and_the_genuine_reading_is_stored(
    stack: Stack,
) -> None:
    sensor = register_sensor(stack, "E001", "co")
    ts = datetime.now(UTC) - timedelta(seconds=5)
    # E002's gateway may publish for every sensor of E002: it names E001's sensor there.
    with publisher(stack, "E002") as forger:
        forger.publish(reading_topic("E002", sensor), _reading(666, value=500.0, ts=ts))
        assert forger.wait_acked(timeout_s=10)
    found = await _dead_letters(stack, f"E002/sensors/{sensor}")
    assert [(d["stage"], d["reason"]) for d in found] == [("bridge", "enterprise_mismatch")]
    s = stack.settings
    genuine = BulkPublisher(
        s.mqtt_host, s.mqtt_port, credentials=stack.sensor_credentials(sensor, "E001")
    )
    with genuine:
        genuine.publish(reading_topic("E001", sensor), _reading(1, value=5.0, ts=ts))
        assert genuine.wait_acked(timeout_s=10)
    rows = _wait_rows(s.database_url or "", sensor, 1)
    assert [(r[0], r[1], r[5]) for r in rows] == [(1, 5.0, "E001")]  # the same (sensor, ts)


@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_a_revoked_or_rotated_identity_is_disconnected_and_refused(
    stack: Stack, action: str
) -> None:
    from core.identities import mosquitto_hash
    from qorgau.devices import sync_broker_auth
    from storage import devices

    sensor = register_sensor(stack, "E001", "co")
    creds = stack.sensor_credentials(sensor, "E001")
    dsn = stack.settings.database_url or ""
    with client(stack, creds) as device:
        assert not device.wait_connack().is_failure
        with psycopg.connect(dsn) as conn:
            if action == "revoke":
                assert devices.revoke_identity(conn, username=sensor)
            else:
                assert devices.set_secret_hash(
                    conn, username=sensor, password_hash=mosquitto_hash("a new secret " * 3)
                )
        sync_broker_auth(
            dsn, stack.state_dir / "mqtt" / "auth", stack.env["QORGAU_MQTT_RELOAD_COMMAND"]
        )
        deadline = time.monotonic() + 5
        while not device.disconnects and time.monotonic() < deadline:
            time.sleep(0.05)
        assert device.disconnects, "the broker kept a revoked identity connected"
    with client(stack, creds) as again:
        assert again.wait_connack().is_failure
