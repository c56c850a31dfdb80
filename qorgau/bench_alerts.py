"""`qorgau bench --alerts`: from the reading that opens a critical alert to a phone's push service.

The whole stack runs (broker, bridge, workers, notifier, database) under the
ordinary bench load (``--readings`` at ``--rate`` from publisher processes). A
safety officer of enterprise E007 has a Web Push subscription whose endpoint
is a push service in this process: a real HTTP server that decrypts every
message with the subscription's private key (RFC 8291) and notes when it
arrived. Every ``--probe-every`` seconds the bench publishes one critical CO
reading (150 mg/m3) on a fresh sensor of E007 and notes when; the latency of a
probe is the push service's arrival time minus that publish time (one clock).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import http_ece
import orjson
import psycopg
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerts.channels.webpush import b64url
from api.security import hash_password
from core.access import Role
from core.errors import QorgauError
from core.settings import Settings
from core.types import Sensor
from edge.loadgen import LeanPublisher
from edge.publisher import reading_topic
from qorgau.bench import bench_settings, start_publishers
from qorgau.launcher import Stack, pick_port
from storage import people
from storage.reference import add_sensors

__all__ = ["AlertBenchResult", "run_alert_bench"]

ENTERPRISE = "E007"


@dataclass
class AlertBenchResult:
    probes: int
    delivered: int
    missing: int
    background_readings: int
    background_rate: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float


class _PushService:
    """A push service on 127.0.0.1 that decrypts what it is sent and notes the arrival."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)
        self.p256dh = b64url(
            self.key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        self.port = pick_port(18443)
        self.arrivals: dict[str, float] = {}  # sensor id -> time.time() of arrival
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        arrived = time.time()
        doc = orjson.loads(
            http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        )
        sensor = doc.get("sensor_id")
        if doc.get("action") == "open" and sensor and sensor not in self.arrivals:
            self.arrivals[sensor] = arrived
        return web.Response(status=201)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _subscribe(dsn: str, push: _PushService, run: str) -> None:
    with psycopg.connect(dsn) as conn:
        user = people.create_user(
            conn,
            username=f"bench-officer-{run}",
            role=Role.SAFETY_OFFICER,
            password_hash=hash_password(uuid.uuid4().hex),
            enterprise_id=ENTERPRISE,
        )
        conn.execute(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)"
            " VALUES (%s, %s, %s, %s)",
            (user.id, f"http://127.0.0.1:{push.port}/push/{run}", push.p256dh, b64url(push.auth)),
        )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_alert_bench(settings: Settings, args: argparse.Namespace) -> AlertBenchResult:
    settings = bench_settings(settings, "bench-alerts")
    run = uuid.uuid4().hex[:6]
    push = _PushService()
    push.start()
    probes: dict[str, float] = {}
    rate = args.rate or 5000.0
    try:
        with Stack(settings, components=("bridge", "worker", "notifier")) as stack:
            s = stack.settings
            assert s.database_url is not None
            _subscribe(s.database_url, push, run)
            # The load must outlast the probes, or the last ones are measured on a quiet stack.
            needed = int(rate * (args.probes * args.probe_every + 5))
            # Each probe on a fresh sensor of ENTERPRISE (no alarm of an earlier one open),
            # each in the registry like every real sensor.
            probe_sensors = [f"{ENTERPRISE}-P{run}{k:03d}" for k in range(args.probes)]
            zone = _first_zone(s.database_url, ENTERPRISE)
            since = time.time()
            add_sensors(
                s.database_url,
                [Sensor(sid, ENTERPRISE, zone, "co", 10.0) for sid in probe_sensors],
            )
            stack.wait_for_registry(since)
            procs, queue = start_publishers(
                stack,
                run,
                sensors=args.sensors,
                per_sensor=max(1, max(args.readings, needed) // args.sensors),
                batch=args.batch[0],
                rate=rate,
                publishers=args.publishers,
            )
            probe_pub = LeanPublisher(
                s.mqtt_host, s.mqtt_port, credentials=stack.gateway_credentials(ENTERPRISE)
            )
            time.sleep(2.0)  # let the load settle before the first probe
            for k in range(args.probes):
                sensor = probe_sensors[k]
                ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
                reading = {"ts": ts, "hazard": "co", "value": 150.0, "unit": "mg/m3", "seq": 1}
                probes[sensor] = time.time()
                probe_pub.publish(reading_topic(ENTERPRISE, sensor), orjson.dumps(reading))
                probe_pub.flush()
                deadline = time.monotonic() + args.probe_every
                while time.monotonic() < deadline:
                    probe_pub.service()
                    time.sleep(0.005)
                if not args.json:
                    done = sum(1 for x in probes if x in push.arrivals)
                    print(f"\r  probes {k + 1}/{args.probes}, pushed {done}", end="", flush=True)
            probe_pub.wait_acked(timeout_s=30)
            probe_pub.close()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(push.arrivals) < len(probes):
                time.sleep(0.1)
            for proc in procs:
                proc.join(timeout=args.timeout)
                if proc.exitcode not in (0, None):
                    raise QorgauError(f"a publisher process failed (exit code {proc.exitcode})")
            published = sum(queue.get(timeout=60)["readings"] for _ in procs)
    finally:
        push.stop()
    if not args.json:
        print()
    lat = [1000 * (push.arrivals[x] - t) for x, t in probes.items() if x in push.arrivals]
    return AlertBenchResult(
        probes=len(probes),
        delivered=len(lat),
        missing=len(probes) - len(lat),
        background_readings=published,
        background_rate=rate,
        latency_p50_ms=round(statistics.median(lat), 1) if lat else float("nan"),
        latency_p90_ms=round(_pct(lat, 0.90), 1),
        latency_p99_ms=round(_pct(lat, 0.99), 1),
        latency_max_ms=round(max(lat), 1) if lat else float("nan"),
    )


def _first_zone(dsn: str, enterprise_id: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT min(id) FROM zones WHERE enterprise_id = %s", (enterprise_id,)
        ).fetchone()
    if row is None or row[0] is None:
        raise QorgauError(f"enterprise {enterprise_id} has no zone")
    return str(row[0])


def print_alert_bench(result: AlertBenchResult, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2).decode())
        return
    print(
        f"critical reading → Web Push accepted by the push service, under a background load of "
        f"{result.background_readings:,} readings at {result.background_rate:,.0f} readings/s "
        f"({os.cpu_count()}-core shared machine):\n"
        f"  probes {result.probes}, pushed {result.delivered}, missing {result.missing}\n"
        f"  latency p50 {result.latency_p50_ms:,.0f} ms, p90 {result.latency_p90_ms:,.0f} ms,"
        f" p99 {result.latency_p99_ms:,.0f} ms, max {result.latency_max_ms:,.0f} ms"
        f"  (target p99 ≤ 2,000 ms)"
    )


def run_escalation_bench(settings: Settings, alerts: int, *, as_json: bool) -> dict[str, float]:
    """How long one notifier tick takes with ``alerts`` unacknowledged critical alerts open.

    A fresh embedded database (or ``QORGAU_DATABASE_URL``) gets that many active critical
    alerts in E007, whose people are nobody (so the figure is the tick's own work:
    reading the alerts, deciding, claiming each step, writing its history). Two ticks
    are timed: one where no step is due yet, one where every alert climbs a level.
    """
    from datetime import timedelta

    from psycopg_pool import AsyncConnectionPool

    from alerts.delivery import Deliverer
    from alerts.dispatcher import Dispatcher
    from alerts.lifecycle import apply_machine_events
    from alerts.routing import load_routing
    from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
    from core.catalogue import load_catalogue

    settings = bench_settings(settings, "bench-esc", workers=None)
    run = uuid.uuid4().hex[:6]
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)

    async def measure(dsn: str) -> dict[str, float]:
        events = [
            AlertEvent(
                action=AlertAction.OPEN,
                key=f"{ENTERPRISE}-E{run}{i:05d}|threshold|{t0.isoformat()}",
                kind=AlertKind.THRESHOLD,
                severity=Severity.CRITICAL,
                enterprise_id=ENTERPRISE,
                sensor_id=f"{ENTERPRISE}-E{run}{i:05d}",
                hazard="co",
                ts=t0,
                value=150.0,
                message="CO 150 mg/m3",
                details={"source": "rule"},
            )
            for i in range(alerts)
        ]
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await conn.execute(
                "UPDATE users SET active = false WHERE enterprise_id = %s", (ENTERPRISE,)
            )
            started = time.perf_counter()
            await apply_machine_events(conn, events)
            opened_s = time.perf_counter() - started
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(dsn, open=False, max_size=4)
        await pool.open(wait=True)
        try:
            d = Dispatcher(pool, Deliverer(pool, {}), load_routing(), load_catalogue())
            started = time.perf_counter()
            quiet = await d.tick(t0 + timedelta(minutes=9))
            quiet_s = time.perf_counter() - started
            started = time.perf_counter()
            busy = await d.tick(t0 + timedelta(minutes=10))
            busy_s = time.perf_counter() - started
        finally:
            await pool.close()
        assert quiet.escalated == 0 and busy.escalated >= alerts, (quiet, busy)
        return {
            "alerts": float(alerts),
            "open_ms_per_alert": round(1000 * opened_s / alerts, 3),
            "tick_nothing_due_ms": round(1000 * quiet_s, 1),
            "tick_all_escalate_ms": round(1000 * busy_s, 1),
            "escalate_ms_per_alert": round(1000 * busy_s / busy.escalated, 3),
        }

    with Stack(settings, components=()) as stack:
        assert stack.settings.database_url is not None
        result = asyncio.run(measure(stack.settings.database_url))
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(
            f"notifier tick with {alerts:,} unacknowledged critical alerts"
            f" ({os.cpu_count()}-core shared machine):\n"
            f"  nothing due:          {result['tick_nothing_due_ms']:,.1f} ms per tick\n"
            f"  every alert escalates: {result['tick_all_escalate_ms']:,.1f} ms per tick"
            f" ({result['escalate_ms_per_alert']} ms per alert: claim + history + notify)\n"
            f"  (opening them took {result['open_ms_per_alert']} ms per alert)"
        )
    return result
