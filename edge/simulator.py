"""A simulated set of enterprises publishing over MQTT, as real devices would.

Every sensor is its own MQTT client (its own last will: ``offline`` on its
status topic, retained), reports every ``interval_s`` seconds with a per-sensor
``seq``; sensors behind a gateway publish their readings in batches
(``{"readings": [...]}``). Incidents — a gas leak, a heat rise with smoke in the
same zone — are injected now and then so the demo has something to show.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import structlog

from core.catalogue import Catalogue
from core.types import Enterprise, Sensor
from edge.profiles import SensorProfile, profile_for
from edge.publisher import ReplayWindow, make_client, reading_topic, status_topic

__all__ = ["SimulatedSensor", "Simulator", "format_ts"]

log = structlog.get_logger(__name__)
_GAS = {"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4"}


def format_ts(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class SimulatedSensor:
    sensor: Sensor
    profile: SensorProfile
    unit: str
    per_unit: float = 1.0  # canonical value / per_unit = value in ``unit``
    client: mqtt.Client | None = None
    seq: int = 0
    next_due: float = 0.0
    pending: list[dict[str, Any]] = field(default_factory=list)
    window: ReplayWindow = field(default_factory=ReplayWindow)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        assert self.client is not None
        self.window.publish(self.client, topic, payload, retain=retain)

    def reading(self, t: datetime) -> dict[str, Any]:
        self.seq += 1
        value = self.profile.value_at(t)
        if self.per_unit != 1.0:  # e.g. a gas sensor reporting ppm: the pipeline converts
            value = round(value / self.per_unit, 3)
        return {
            "ts": format_ts(t),
            "hazard": self.sensor.hazard,
            "value": value,
            "unit": self.unit,
            "seq": self.seq,
        }


class Simulator:
    """Runs the simulated sensors of ``enterprises`` until `stop` is called."""

    def __init__(
        self,
        enterprises: Sequence[Enterprise],
        catalogue: Catalogue,
        host: str,
        port: int,
        *,
        seed: int = 42,
        gateway_batch: int = 10,
        incident_every_s: float = 120.0,
        interval_scale: float = 1.0,
        on_publish: Callable[[int], None] | None = None,
        credentials: dict[str, str] | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.rng = random.Random(seed)
        self.gateway_batch = gateway_batch
        self.incident_every_s = incident_every_s
        self.interval_scale = interval_scale
        self.on_publish = on_publish
        self.credentials = credentials or {}  # sensor id -> its secret (its MQTT identity)
        self.published = 0
        self._stop = threading.Event()
        self.sensors: list[SimulatedSensor] = []
        self.zones: dict[str, list[SimulatedSensor]] = {}
        for ent in enterprises:
            for zone in ent.zones:
                for s in zone.sensors:
                    prof = profile_for(
                        s, random.Random(self.rng.random()), zone.normal_temperature_c
                    )
                    hazard = catalogue[s.hazard]
                    # Every other gas sensor reports ppm, as many real ones do.
                    if hazard.molar_mass_g_mol and hazard.unit == "mg/m3" and len(self.sensors) % 2:
                        sim = SimulatedSensor(
                            s, prof, unit="ppm", per_unit=catalogue.convert(s.hazard, 1.0, "ppm")
                        )
                    else:
                        sim = SimulatedSensor(s, prof, unit=hazard.unit)
                    self.sensors.append(sim)
                    self.zones.setdefault(zone.id, []).append(sim)

    def _connect(self, sim: SimulatedSensor) -> None:
        s = sim.sensor
        secret = self.credentials.get(s.id)
        client = make_client(
            f"sim-{s.id}",
            max_inflight=100,
            username=s.id if secret is not None else None,
            password=secret,
        )
        client.will_set(status_topic(s.enterprise_id, s.id), b"offline", qos=1, retain=True)

        def on_connect(c: mqtt.Client, *_a: Any) -> None:
            sim.window.publish(c, status_topic(s.enterprise_id, s.id), b"online", retain=True)

        client.on_connect = on_connect
        # After a reconnect: what the broker acknowledged just before, again.
        sim.window.attach(client)
        sim.client = client
        client.connect_async(self.host, self.port, keepalive=30)
        client.loop_start()

    def _maybe_incident(self, now: datetime) -> None:
        if self.incident_every_s <= 0 or self.rng.random() > 1.0 / self.incident_every_s:
            return
        zone_id = self.rng.choice(sorted(self.zones))
        members = self.zones[zone_id]
        temps = [m for m in members if m.sensor.hazard == "temperature"]
        gases = [m for m in members if m.sensor.hazard in _GAS]
        if temps and self.rng.random() < 0.4:
            for m in temps:
                m.profile.start_incident(now, "heat_rise")
            for m in members:
                if m.sensor.hazard == "smoke":
                    m.profile.start_incident(now, "smoke")
                elif m.sensor.hazard == "co":
                    m.profile.start_incident(now, "gas_leak")
            log.info("incident injected", kind="heat_rise", zone=zone_id)
        elif gases:
            m = self.rng.choice(gases)
            m.profile.start_incident(now, "gas_leak")
            log.info(
                "incident injected", kind="gas_leak", sensor=m.sensor.id, hazard=m.sensor.hazard
            )

    def run(self) -> None:
        for sim in self.sensors:
            self._connect(sim)
            sim.next_due = (
                time.monotonic() + self.rng.random() * sim.sensor.interval_s * self.interval_scale
            )
        log.info("simulator running", sensors=len(self.sensors), broker=f"{self.host}:{self.port}")
        last_tick = 0.0
        while not self._stop.is_set():
            mono = time.monotonic()
            now = datetime.now(UTC)
            if mono - last_tick >= 1.0:
                last_tick = mono
                self._maybe_incident(now)
            for sim in self.sensors:
                if mono < sim.next_due:
                    continue
                sim.next_due += sim.sensor.interval_s * self.interval_scale
                reading = sim.reading(now)
                s = sim.sensor
                assert sim.client is not None
                if s.gateway:
                    sim.pending.append(reading)
                    if len(sim.pending) >= self.gateway_batch:
                        payload = orjson.dumps({"readings": sim.pending})
                        sim.publish(reading_topic(s.enterprise_id, s.id), payload)
                        sim.pending = []
                else:
                    sim.publish(reading_topic(s.enterprise_id, s.id), orjson.dumps(reading))
                self.published += 1
                if self.on_publish:
                    self.on_publish(self.published)
            self._stop.wait(0.05)
        for sim in self.sensors:
            if sim.client is not None:
                # A clean disconnect: no last will, so say "offline" ourselves.
                s = sim.sensor
                sim.publish(status_topic(s.enterprise_id, s.id), b"offline", retain=True)
                sim.client.disconnect()
                sim.client.loop_stop()

    def stop(self) -> None:
        self._stop.set()
