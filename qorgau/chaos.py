"""``qorgau chaos``: numbered readings at a steady rate while each component is killed.

A fault harness on the local stack (the demo's topology: embedded PostgreSQL,
Mosquitto with persistence, Tansu, bridge, worker(s), notifier, supervised).
Gateways publish readings numbered per sensor (QoS 1, persistent sessions,
re-sent after a reconnect as real devices do) and note every one the MQTT
broker acknowledged. Meanwhile each component in turn is killed with SIGKILL;
the stack's supervisor starts it again. At the end every acknowledged reading
is looked for in the database by (sensor, seq):

- **lost**: acknowledged by the broker, never stored;
- **duplicated**: stored more than once (storage is idempotent: must be 0);
- per fault: how long until the component was running again, and the
  **outage** — from the kill until every sensor had a reading published after
  it stored (the part of the pipeline hit worst, e.g. the killed worker's
  partitions, decides).

With ``--faults none --duration 3600`` it is a soak: the resident memory of
every component is printed each ``--rss-every`` seconds, and the growth over
the last three quarters of the run at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from core.errors import QorgauError
from core.settings import Settings
from edge.publisher import ReplayWindow, reading_topic
from qorgau.bench import bench_sensor, bench_settings, register_bench_sensors
from qorgau.launcher import Credentials, Stack

__all__ = ["ChaosReport", "FaultResult", "add_parser", "rss_growth", "run_chaos"]

# Readings published this long before a kill count for that kill (they were in flight).
IN_FLIGHT_S = 1.0

ALL_FAULTS = ("bridge", "worker", "notifier", "mqtt-broker", "kafka-broker", "postgres")


@dataclass
class FaultResult:
    component: str
    killed_at: float  # wall clock
    restarted_after_s: float | None = None
    outage_s: float | None = None
    published: int = 0  # readings published from this kill to the next (IN_FLIGHT_S before each)
    lost: int = 0  # of those, acknowledged by the broker and never stored


@dataclass
class ChaosReport:
    rate: float
    sensors: int
    published: int = 0
    acknowledged: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    unacknowledged: int = 0  # published, never acknowledged (the device still holds them)
    resent: int = 0  # acknowledged, then published again after a reconnect (ReplayWindow)
    faults: list[FaultResult] = field(default_factory=list)
    rss_mb: list[dict[str, float]] = field(default_factory=list)  # one sample per interval
    lost_examples: list[str] = field(default_factory=list)


class _Gateway:
    """One enterprise's gateway, as a real one must behave: a paho client with a
    persistent session, publishing QoS 1, re-sending what the broker has not
    acknowledged after every reconnect (paho does) and what it acknowledged in the
    seconds before the connection dropped (:class:`edge.publisher.ReplayWindow`)."""

    def __init__(self, host: str, port: int, creds: Credentials) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=creds.username,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.username_pw_set(*creds)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)  # keep everything while the broker is away
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.lock = threading.Lock()
        self.confirmed: list[tuple[str, int]] = []  # (sensor, seq) acknowledged
        self.window = ReplayWindow(on_acknowledged=self._confirm)
        self.window.attach(self.client)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _confirm(self, tag: Any) -> None:
        with self.lock:
            self.confirmed.append(tag)

    def publish(self, enterprise: str, sensor: str, seq: int, when: datetime) -> None:
        payload = orjson.dumps(
            {
                "ts": when.isoformat().replace("+00:00", "Z"),
                "hazard": "co",
                "value": 5.0 + seq % 7,
                "unit": "mg/m3",
                "seq": seq,
            }
        )
        # Not under our lock: paho calls on_publish holding its own, which publish() needs.
        self.window.publish(
            self.client, reading_topic(enterprise, sensor), payload, tag=(sensor, seq)
        )

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _Load(threading.Thread):
    """Numbered readings at ``rate`` per second, round robin over the sensors."""

    def __init__(
        self,
        stack: Stack,
        run: str,
        creds: dict[str, Credentials],
        sensors: list[tuple[str, str]],
        rate: float,
    ) -> None:
        super().__init__(name="chaos-load", daemon=True)
        s = stack.settings
        self.gateways = {e: _Gateway(s.mqtt_host, s.mqtt_port, c) for e, c in creds.items()}
        self.sensors = sensors
        self.rate = rate
        self.stop_event = threading.Event()
        self.published: dict[tuple[str, int], float] = {}  # (sensor, seq) -> wall clock

    def run(self) -> None:
        t0 = time.monotonic()
        n = 0
        seqs = dict.fromkeys((s for _, s in self.sensors), 0)
        while not self.stop_event.is_set():
            due = t0 + n / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(min(delay, 0.05))
                continue
            enterprise, sensor = self.sensors[n % len(self.sensors)]
            seqs[sensor] += 1
            now = datetime.now(UTC)
            self.gateways[enterprise].publish(enterprise, sensor, seqs[sensor], now)
            self.published[(sensor, seqs[sensor])] = now.timestamp()
            n += 1

    def acknowledged(self) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for g in self.gateways.values():
            with g.lock:
                out.update(g.confirmed)
        return out

    def close(self) -> None:
        self.stop_event.set()
        self.join(5)
        for g in self.gateways.values():
            g.close()


def _rss_mb(stack: Stack) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in list(stack.children):
        try:
            p = psutil.Process(c.proc.pid)
            procs = [p, *p.children(recursive=True)]
            out[c.name] = round(sum(q.memory_info().rss for q in procs) / 2**20, 1)
        except psutil.Error:
            continue
    pid = stack.postgres_pid()
    if pid is not None:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            procs = [p, *p.children(recursive=True)]
            # Shared buffers count in every backend's RSS: the postmaster's USS plus the
            # backends' private memory is what the server really holds.
            out["postgres"] = round(sum(q.memory_full_info().uss for q in procs) / 2**20, 1)
    return out


def _stored(dsn: str, like: str) -> tuple[set[tuple[str, int]], int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT sensor_id, seq FROM readings WHERE sensor_id LIKE %s", (like,)
        ).fetchall()
    return {(s, int(q)) for s, q in rows}, len(rows)


def _all_flowing_after(dsn: str, like: str, after: float, sensors: int) -> float | None:
    """Wall clock by which every sensor had a reading published after ``after`` stored: the
    end of the outage for the part of the pipeline hit worst (None until then, and while
    the database is down: it may be the component killed)."""
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*), extract(epoch FROM max(first)) FROM ("
                " SELECT min(ingested_at) AS first FROM readings"
                " WHERE sensor_id LIKE %s AND ts > to_timestamp(%s) GROUP BY sensor_id) AS f",
                (like, after),
            ).fetchone()
    except psycopg.OperationalError:
        return None
    if row is None or int(row[0]) < sensors or row[1] is None:
        return None
    return float(row[1])


def run_chaos(
    settings: Settings,
    *,
    rate: float = 200.0,
    sensors: int = 40,
    faults: tuple[str, ...] = ALL_FAULTS,
    hold_s: float = 20.0,
    duration_s: float = 0.0,
    settle_s: float = 90.0,
    rss_every_s: float = 60.0,
    say: Any = print,
) -> ChaosReport:
    settings = bench_settings(settings, "chaos")
    report = ChaosReport(rate=rate, sensors=sensors)
    run = uuid.uuid4().hex[:6]
    with Stack(settings, components=("bridge", "worker", "notifier")) as stack:
        dsn = stack.settings.database_url
        assert dsn is not None
        creds = register_bench_sensors(stack, run, sensors)
        pairs = [bench_sensor(run, i) for i in range(sensors)]
        like = f"B{run}-S%"
        load = _Load(stack, run, creds, pairs, rate)
        sampler_stop = threading.Event()

        def sample() -> None:
            while not sampler_stop.wait(rss_every_s):
                rss = _rss_mb(stack)
                report.rss_mb.append(rss)
                say(
                    f"  {time.strftime('%H:%M:%S')}  RSS MB: "
                    + ", ".join(f"{k} {v:,.0f}" for k, v in sorted(rss.items()))
                )

        report.rss_mb.append(_rss_mb(stack))
        sampler = threading.Thread(target=sample, name="chaos-rss", daemon=True)
        sampler.start()
        load.start()
        try:
            time.sleep(min(hold_s, 10.0))  # the pipeline flowing before the first fault
            for name in faults:
                report.faults.append(_fault(stack, name, dsn, like, sensors, hold_s, say))
            end = time.monotonic() + duration_s
            while time.monotonic() < end:
                time.sleep(1.0)
        finally:
            load.stop_event.set()
            load.join(5)
            sampler_stop.set()
        acked = _wait_settled(load, dsn, like, settle_s, say)
        load.close()
        stored, rows = _stored(dsn, like)
        lost = sorted(acked - stored)
        report.published = len(load.published)
        report.acknowledged = len(acked)
        report.resent = sum(g.window.resent for g in load.gateways.values())
        report.stored = len(stored)
        report.lost = len(lost)
        report.duplicated = rows - len(stored)
        report.unacknowledged = len(set(load.published) - acked - stored)
        report.lost_examples = [f"{s}#{q}" for s, q in lost[:20]]
        # A reading published just before a kill was still on its way when it came:
        # it counts for that kill.
        bounds = [f.killed_at - IN_FLIGHT_S for f in report.faults] + [float("inf")]
        for i, f in enumerate(report.faults):
            window = [k for k, t in load.published.items() if bounds[i] <= t < bounds[i + 1]]
            f.published = len(window)
            lost_set = set(lost)
            f.lost = sum(1 for k in window if k in lost_set)
    return report


def _fault(
    stack: Stack, name: str, dsn: str, like: str, sensors: int, hold_s: float, say: Any
) -> FaultResult:
    if name == "worker" and name not in {c.name for c in stack.children}:
        name = stack.worker_names[0]
    before = len(stack.restarts)
    killed = time.time()
    if name == "postgres":
        stack.kill_postgres()
    else:
        stack.kill_component(name)
    result = FaultResult(name, killed)
    say(f"  {time.strftime('%H:%M:%S')}  kill -9 {name}")
    deadline = time.monotonic() + max(hold_s, 60.0)
    while time.monotonic() < deadline:
        mine = [r for r in stack.restarts[before:] if r.name == name and not r.recycled]
        if mine:
            result.restarted_after_s = round(mine[0].at - killed, 1)
            break
        time.sleep(0.1)
    while time.monotonic() < deadline:
        flowing = _all_flowing_after(dsn, like, killed + 0.5, sensors)
        if flowing is not None:
            result.outage_s = round(flowing - killed, 1)
            break
        time.sleep(0.2)
    say(
        f"  {time.strftime('%H:%M:%S')}  {name}: running again after"
        f" {result.restarted_after_s} s, readings stored again after {result.outage_s} s"
    )
    rest = killed + hold_s - time.time()
    if rest > 0:
        time.sleep(rest)
    return result


def _wait_settled(
    load: _Load, dsn: str, like: str, settle_s: float, say: Any
) -> set[tuple[str, int]]:
    """Until every acknowledged reading is stored, the devices have nothing left to send,
    or ``settle_s`` passes."""
    deadline = time.monotonic() + settle_s
    while True:
        acked = load.acknowledged()
        try:
            stored, _ = _stored(dsn, like)
        except psycopg.OperationalError:
            stored = set()
        waiting = len(acked - stored)
        unsent = len(load.published) - len(acked | stored)
        if (waiting == 0 and unsent == 0) or time.monotonic() > deadline:
            return acked
        say(f"  settling: {waiting} acknowledged not stored yet, {unsent} not acknowledged")
        time.sleep(2.0)


def print_report(report: ChaosReport, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(asdict(report), option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"qorgau chaos — {report.rate:,.0f} readings/s over {report.sensors} sensors")
    for col in ("kill -9", "running again after (s)", "outage (s)", "published", "lost"):
        t.add_column(col, justify="right")
    for f in report.faults:
        t.add_row(
            f.component,
            f"{f.restarted_after_s}",
            f"{f.outage_s}",
            f"{f.published:,}",
            f"{f.lost:,}",
        )
    console = Console()
    console.print(t)
    console.print(
        f"published {report.published:,}, acknowledged by the broker {report.acknowledged:,},"
        f" stored {report.stored:,}, lost {report.lost:,}, duplicated {report.duplicated:,}"
        f" (not acknowledged and not stored: {report.unacknowledged:,};"
        f" published again after a reconnect: {report.resent:,})"
    )
    if report.lost_examples:
        console.print("lost, e.g.: " + ", ".join(report.lost_examples))
    if len(report.rss_mb) >= 8:
        growth = rss_growth(report.rss_mb)
        console.print(
            "RSS, highest in the last quarter of the run against the second quarter: "
            + ", ".join(f"{k} {v:+.1f}%" for k, v in sorted(growth.items()))
        )


def rss_growth(samples: list[dict[str, float]]) -> dict[str, float]:
    """Per component, the highest RSS in the last quarter of the samples against the
    highest in the second quarter, in percent: flat memory (a sawtooth included, such as
    the recycled Kafka-protocol broker's) gives about 0, a leak a steady rise.

    >>> rss_growth([{"a": 100.0}] * 4 + [{"a": 110.0}] * 4)
    {'a': 10.0}
    """
    n = len(samples)
    early, late = samples[n // 4 : n // 2], samples[3 * n // 4 :]
    out = {}
    for name in late[-1]:
        before = max((s.get(name, 0.0) for s in early), default=0.0)
        after = max((s.get(name, 0.0) for s in late), default=0.0)
        if before > 0:
            out[name] = round(100.0 * (after - before) / before, 1)
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "chaos",
        help="kill each component in turn under a steady load; count what was lost",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rate", type=float, default=200.0, help="readings per second")
    p.add_argument("--sensors", type=int, default=40)
    p.add_argument(
        "--faults",
        default=",".join(ALL_FAULTS),
        help=f"components to kill, in order (default: {','.join(ALL_FAULTS)}; 'none' for a soak)",
    )
    p.add_argument("--hold", type=float, default=20.0, help="seconds from one kill to the next")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run after the faults")
    p.add_argument("--settle", type=float, default=90.0, help="most seconds to wait at the end")
    p.add_argument("--rss-every", type=float, default=60.0, help="seconds between RSS samples")
    p.add_argument("--json", action="store_true")


def cmd_chaos(settings: Settings, args: argparse.Namespace) -> int:
    faults = () if args.faults == "none" else tuple(f for f in args.faults.split(",") if f)
    unknown = [f for f in faults if f not in ALL_FAULTS]
    if unknown:
        raise QorgauError(f"unknown component(s) {unknown}; choose from {', '.join(ALL_FAULTS)}")
    with contextlib.suppress(ValueError):  # not in the main thread (tests)
        signal.signal(signal.SIGTERM, lambda *_a: os.kill(os.getpid(), signal.SIGINT))
    report = run_chaos(
        settings,
        rate=args.rate,
        sensors=args.sensors,
        faults=faults,
        hold_s=args.hold,
        duration_s=args.duration,
        settle_s=args.settle,
        rss_every_s=args.rss_every,
        say=(lambda *_a: None) if args.json else (lambda *a: print(*a, flush=True)),
    )
    print_report(report, as_json=args.json)
    return 0 if report.lost == 0 else 1
