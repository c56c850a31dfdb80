"""The simulator and the device-side publisher against a real MQTT broker."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.catalogue import load_catalogue
from core.reference import load_reference
from edge.publisher import ReplayWindow, make_client
from edge.simulator import Simulator
from qorgau.launcher import pick_port, port_is_free, wait_for_port

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


class Broker:
    """A private Mosquitto with persistence, which a test may stop and start again."""

    def __init__(self, tmp: Path) -> None:
        assert MOSQUITTO is not None
        self.port = pick_port(0)
        self.conf = tmp / "mosquitto.conf"
        (tmp / "data").mkdir()
        (tmp / "data").chmod(0o777)
        self.conf.write_text(
            # `user root`: stay as the invoking user (mosquitto ignores it when not root),
            # so the persistence file can be written inside pytest's private tmp dir.
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\nuser root\n"
            f"persistence_location {tmp / 'data'}/\nset_tcp_nodelay true\n"
            "max_inflight_messages 1000\nmax_queued_messages 100000\n"
            "autosave_interval 1\n"  # as deployed: the store is written every 1-2 s
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, proc=self.proc, name="mosquitto")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)


class Collector:
    """A persistent-session QoS 1 subscriber recording every message per topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: dict[str, list[bytes]] = defaultdict(list)
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="collector", clean_session=False
        )
        self.client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages[msg.topic].append(bytes(msg.payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_port_picking_never_takes_a_port_in_use() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        assert not port_is_free(taken)
        assert pick_port(taken) != taken
    assert port_is_free(taken)


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_simulator_publishes_believable_readings(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    ref = load_reference()
    enterprise = ref.enterprise("E001")
    assert enterprise is not None
    collector = Collector(broker.port, "qorgau/v1/E001/#")
    time.sleep(0.3)
    sim = Simulator(
        [enterprise],
        load_catalogue(),
        "127.0.0.1",
        broker.port,
        interval_scale=0.02,
        gateway_batch=5,
        incident_every_s=0,
    )
    thread = threading.Thread(target=sim.run)
    thread.start()
    time.sleep(4)
    sim.stop()
    thread.join(10)
    time.sleep(0.5)
    collector.close()
    broker.stop()
    msgs = collector.messages
    statuses = {t for t in msgs if t.endswith("/status")}
    assert len(statuses) == len(enterprise.sensors)
    assert all(msgs[t][0] == b"online" and msgs[t][-1] == b"offline" for t in statuses)
    readings = {t: v for t, v in msgs.items() if t.endswith("/reading")}
    assert len(readings) == len(enterprise.sensors)  # every sensor reported
    cat = load_catalogue()
    units: set[str] = set()
    batches = 0
    for sensor in enterprise.sensors:
        seqs = []
        for raw in readings[f"qorgau/v1/E001/sensors/{sensor.id}/reading"]:
            doc = orjson.loads(raw)
            items = doc.get("readings", [doc])
            batches += "readings" in doc
            assert not sensor.gateway or "readings" in doc
            for item in items:
                assert item["hazard"] == sensor.hazard
                units.add(item["unit"])
                value = cat.convert(sensor.hazard, item["value"], item["unit"])
                assert cat[sensor.hazard].is_plausible(value)
                seqs.append(item["seq"])
        assert seqs == list(range(1, len(seqs) + 1)), sensor.id  # no gap, no repeat
    assert batches > 0
    assert "ppm" in units and "mg/m3" in units


def test_a_slow_sensor_behind_a_gateway_is_not_held_back_until_the_batch_fills(
    tmp_path: Path,
) -> None:
    """E006-S07 reports every 15 s through a gateway: ten of them would wait 150 s, longer
    than the stale rule's 60 s, and the pipeline would call it silent."""
    broker = Broker(tmp_path)
    ref = load_reference()
    enterprise = ref.enterprise("E006")
    assert enterprise is not None
    collector = Collector(broker.port, "qorgau/v1/E006/sensors/+/reading")
    time.sleep(0.3)
    sim = Simulator(
        [enterprise], load_catalogue(), "127.0.0.1", broker.port, interval_scale=0.1,
        gateway_batch=10, gateway_max_hold_s=2.0, incident_every_s=0,
    )  # fmt: skip
    thread = threading.Thread(target=sim.run)
    thread.start()
    time.sleep(6)
    sim.stop()
    thread.join(10)
    time.sleep(0.3)
    collector.close()
    broker.stop()
    slow = [orjson.loads(m) for m in collector.messages["qorgau/v1/E006/sensors/E006-S07/reading"]]
    assert slow, "the slow sensor's readings never left the gateway"
    assert all(len(batch["readings"]) <= 2 for batch in slow)  # 1.5 s apart, held <= 2 s
    fast = [
        orjson.loads(m)
        for t, ms in collector.messages.items()
        for m in ms
        if t != "qorgau/v1/E006/sensors/E006-S07/reading"
    ]
    assert any(len(b.get("readings", [])) == 10 for b in fast)  # full batches still go whole


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_device_publisher_loses_nothing_across_a_broker_restart(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    collector = Collector(broker.port, "qorgau/v1/E9/sensors/S1/reading")
    time.sleep(0.3)
    device = make_client("device-S1")
    device.connect("127.0.0.1", broker.port)
    device.loop_start()
    topic = "qorgau/v1/E9/sensors/S1/reading"
    for seq in range(1, 201):
        device.publish(topic, orjson.dumps({"seq": seq}), qos=1)
        if seq == 100:
            broker.stop()  # the broker goes away mid-stream...
        if seq == 150:
            broker.start()  # ...and comes back; paho reconnects and re-sends
        time.sleep(0.01)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with collector.lock:
            got = {orjson.loads(m)["seq"] for m in collector.messages[topic]}
        if len(got) >= 200:
            break
        time.sleep(0.2)
    device.disconnect()
    device.loop_stop()
    collector.close()
    broker.stop()
    assert got == set(range(1, 201))


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_what_a_killed_broker_had_acknowledged_is_published_again(tmp_path: Path) -> None:
    """Mosquitto acknowledges a QoS 1 message before it is on disk; with the only
    subscriber away (a bridge restarting) nobody else holds it either. SIGKILL then
    loses it, unless the device publishes it again after the reconnect."""
    broker = Broker(tmp_path)
    topic = "qorgau/v1/E9/sensors/S2/reading"
    collector = Collector(broker.port, topic)
    deadline = time.monotonic() + 10
    while not collector.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # subscribed
    collector.close()  # away: the broker queues for its persistent session
    acked: list[Any] = []
    window = ReplayWindow(on_acknowledged=acked.append)
    device = make_client("device-S2")
    window.attach(device)
    device.connect("127.0.0.1", broker.port)
    device.loop_start()
    try:
        time.sleep(2.5)  # the collector's session is saved (every 1-2 s) before we publish
        for seq in range(1, 51):
            window.publish(device, topic, orjson.dumps({"seq": seq}), tag=seq)
        deadline = time.monotonic() + 10
        while len(acked) < 50 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert sorted(acked) == list(range(1, 51))  # the broker has every one of them...
        broker.kill()  # ...and dies before its next save
        broker.start()
        # The collector is back (subscribed again) before the device's reconnect (>= 1 s).
        collector = Collector(broker.port, topic)
        deadline = time.monotonic() + 15
        while window.resent == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert window.resent == 50  # all of them were acknowledged in the last seconds
        deadline = time.monotonic() + 15
        got: set[int] = set()
        while time.monotonic() < deadline and len(got) < 50:
            time.sleep(0.1)
            with collector.lock:
                got = {orjson.loads(m)["seq"] for m in collector.messages[topic]}
        collector.close()
        assert got == set(range(1, 51))
        assert sorted(acked) == list(range(1, 51))  # re-sends are not counted again
    finally:
        device.disconnect()
        device.loop_stop()
        broker.stop()


def test_the_replay_window_keeps_only_the_last_seconds_before_the_drop() -> None:
    """Only what was acknowledged within ``seconds`` of the connection dropping comes
    back, once; a first connection re-sends nothing."""
    window = ReplayWindow(seconds=0.3)
    assert window._reconnected() == []
    for mid in (1, 2):
        assert window._published(mid, "t", bytes([mid]), tag=mid) is None
        assert window._acknowledged(mid) == mid
    time.sleep(0.4)  # 1 and 2 are now older than the window
    assert window._acknowledged(3) is None  # read before its publish returned
    assert window._published(3, "t", b"3", tag=3) == 3
    window._disconnected()
    time.sleep(0.4)  # how long the broker was away does not matter
    assert window._reconnected() == [("t", b"3")]
    assert window._reconnected() == []
    assert window.resent == 1
