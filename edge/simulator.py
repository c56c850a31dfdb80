"""A simulated set of enterprises publishing over MQTT, as real devices would.

Every sensor is its own MQTT client (its own last will: ``offline`` on its
status topic, retained), reports every ``interval_s`` seconds with a per-sensor
``seq``; sensors behind a gateway publish their readings in batches
(``{"readings": [...]}``). Incidents — a gas leak, a heat rise with smoke in the
same zone — are injected now and then so the demo has something to show, and on
request (`IncidentRequest`, dropped as a JSON file into ``requests_dir`` by
``qorgau incident``): a major one whose readings cross the critical limits, so a
newcomer can watch a critical alarm reach the wall and people's inboxes.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson
import paho.mqtt.client as mqtt
import structlog

from core.catalogue import Catalogue
from core.limits import Limits
from core.types import Enterprise, Sensor
from edge.profiles import Incident, SensorProfile, profile_for
from edge.publisher import ReplayWindow, make_client, reading_topic, status_topic

__all__ = ["IncidentRequest", "SimulatedSensor", "Simulator", "format_ts"]

log = structlog.get_logger(__name__)
_GAS = {"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4"}
GATEWAY_MAX_HOLD_S = 20.0


@dataclass(frozen=True, slots=True)
class IncidentRequest:
    """A major incident asked for: a gas leak at one gas sensor, or a fire in one zone."""

    enterprise_id: str
    kind: Literal["gas", "fire"] = "gas"
    zone_id: str | None = None
    sensor_id: str | None = None

    @classmethod
    def from_json(cls, raw: bytes) -> IncidentRequest:
        doc = orjson.loads(raw)
        if not isinstance(doc, dict) or not isinstance(doc.get("enterprise_id"), str):
            raise ValueError("an incident request needs an enterprise_id")
        kind = doc.get("kind", "gas")
        if kind not in ("gas", "fire"):
            raise ValueError(f"kind {kind!r} is not gas or fire")
        zone, sensor = doc.get("zone_id"), doc.get("sensor_id")
        if not all(x is None or isinstance(x, str) for x in (zone, sensor)):
            raise ValueError("zone_id and sensor_id are ids")
        return cls(doc["enterprise_id"], kind, zone, sensor)


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
    pending_since: float = 0.0  # monotonic time of the oldest reading in ``pending``
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
        limits: Limits | None = None,
        requests_dir: Path | None = None,
        gateway_max_hold_s: float = GATEWAY_MAX_HOLD_S,
    ) -> None:
        self.host, self.port = host, port
        self.rng = random.Random(seed)
        self.gateway_batch = gateway_batch
        self.gateway_max_hold_s = gateway_max_hold_s
        self.incident_every_s = incident_every_s
        self.interval_scale = interval_scale
        self.on_publish = on_publish
        self.credentials = credentials or {}  # sensor id -> its secret (its MQTT identity)
        self.catalogue = catalogue
        self.limits = limits
        self.requests_dir = requests_dir
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

    def _take_requests(self, now: datetime) -> None:
        """Start the incidents asked for in ``requests_dir``; answer each in ``NAME.done``."""
        if self.requests_dir is None or not self.requests_dir.is_dir():
            return
        for path in sorted(self.requests_dir.glob("*.json")):
            try:
                answer = self.start_major_incident(
                    IncidentRequest.from_json(path.read_bytes()), now
                )
            except (OSError, ValueError) as exc:
                answer = f"refused: {exc}"
            done = path.with_suffix(".done")
            done.write_text(answer + "\n")
            path.unlink(missing_ok=True)
            log.info("incident requested", request=path.name, answer=answer)

    def start_major_incident(self, request: IncidentRequest, now: datetime) -> str:
        """Start ``request`` (readings crossing the critical limits); what was started, in words.
        Raises ValueError when the enterprise, zone or sensor has nothing to start it on."""
        members = [
            m
            for zone, ms in self.zones.items()
            for m in ms
            if m.sensor.enterprise_id == request.enterprise_id
            and (request.zone_id is None or zone == request.zone_id)
        ]
        if not members:
            raise ValueError(
                f"no simulated sensors at {request.enterprise_id} {request.zone_id or ''}"
            )
        if request.kind == "fire":
            zones = sorted({m.sensor.zone_id for m in members if m.sensor.hazard == "temperature"})
            if not zones:
                raise ValueError("no temperature sensor there: a fire cannot be seen")
            zone = zones[0]
            for m in self.zones[zone]:
                if m.sensor.hazard == "temperature":
                    m.profile.incidents.append(
                        Incident("heat_rise", now, 45.0, ramp=timedelta(seconds=90))
                    )
                elif m.sensor.hazard == "smoke":
                    m.profile.start_incident(now, "smoke")
                elif m.sensor.hazard == "co":
                    m.profile.start_incident(now, "gas_leak")
            return f"fire in zone {zone}: heat (+45 °C over 90 s), smoke and CO"
        gases = [
            m
            for m in members
            if m.sensor.hazard in _GAS
            and (request.sensor_id is None or m.sensor.id == request.sensor_id)
        ]
        if not gases:
            raise ValueError("no gas sensor there")
        m = gases[0]
        critical = self._critical(m.sensor.hazard)
        if critical is None:
            raise ValueError(f"no critical limit for {m.sensor.hazard}")
        peak = critical * 1.5 - m.profile.baseline
        m.profile.incidents.append(Incident("gas_leak", now, peak, ramp=timedelta(seconds=30)))
        unit = self.catalogue[m.sensor.hazard].unit
        return (
            f"gas leak at {m.sensor.id} ({m.sensor.hazard}): rising to {critical * 1.5:g} {unit}"
            f" over 30 s, held 2 min (critical limit {critical:g} {unit})"
        )

    def _critical(self, hazard: str) -> float | None:
        if self.limits is None:
            return None
        levels = [r.critical for r in self.limits.rules(hazard) if r.window_min == 0 and r.critical]
        return min(levels) if levels else None

    def _flush(self, sim: SimulatedSensor) -> None:
        s = sim.sensor
        sim.publish(reading_topic(s.enterprise_id, s.id), orjson.dumps({"readings": sim.pending}))
        sim.pending = []

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
                self._take_requests(now)
            for sim in self.sensors:
                s = sim.sensor
                if (
                    s.gateway
                    and sim.pending
                    and mono - sim.pending_since >= self.gateway_max_hold_s
                ):
                    # Held long enough: a gateway never sits on a reading for longer than
                    # the stale rule waits (3 intervals, at least 60 s).
                    self._flush(sim)
                if mono < sim.next_due:
                    continue
                sim.next_due += s.interval_s * self.interval_scale
                reading = sim.reading(now)
                assert sim.client is not None
                if s.gateway:
                    if not sim.pending:
                        sim.pending_since = mono
                    sim.pending.append(reading)
                    if len(sim.pending) >= self.gateway_batch:
                        self._flush(sim)
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
