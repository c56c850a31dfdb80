"""`qorgau bench`: end-to-end throughput, latency, loss and CPU of the running pipeline.

Publishes N readings over MQTT (QoS 1) from publisher processes as fast as the
stack takes them (or at ``--rate``), each reading's ``ts`` being the moment it
was published, then counts every one into the database by ``(sensor, seq)``:
lost = published - stored, duplicated = stored rows - distinct (sensor, seq),
latency = ``ingested_at - ts`` (the database's clock at insert minus the
publisher's clock at publish; same machine, same clock).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psutil
import psycopg

from core.errors import QorgauError
from core.reference import ReferenceData
from core.settings import Settings
from core.types import Enterprise, Sensor, Zone
from edge.loadgen import GatewayFleet
from edge.publisher import reading_topic
from qorgau.launcher import Credentials, Stack
from storage.reference import seed_reference
from stream.readiness import read_stats

__all__ = [
    "BenchResult",
    "bench_sensor",
    "bench_settings",
    "register_bench_sensors",
    "run_bench",
    "run_one",
    "start_publishers",
]

_ENTERPRISES = 48


@dataclass
class BenchResult:
    shape: str
    readings: int
    messages: int
    batch: int
    sensors: int
    target_rate: float
    publish_s: float
    publish_rate: float
    end_to_end_s: float
    end_to_end_rate: float
    stored: int
    lost: int
    duplicated: int
    latency_p50_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    cpu_s: dict[str, float] = field(default_factory=dict)
    cpu_pct_of_core: dict[str, float] = field(default_factory=dict)
    detection_us_per_reading: float = float("nan")  # CPU inside the workers: safety rules
    models_us_per_reading: float = float("nan")  # ...and online models


def bench_sensor(run: str, i: int) -> tuple[str, str]:
    # Fresh enterprises per run: no detection history (checkpoints, stale sensors) carries over.
    return f"BENCH{run}-{i % _ENTERPRISES:02d}", f"B{run}-S{i:05d}"


def _publisher(
    host: str,
    port: int,
    run: str,
    sensor_ids: list[int],
    per_sensor: int,
    batch: int,
    rate: float,
    out: Any,
    credentials: dict[str, tuple[str, str]],
) -> None:
    """One publisher process: ``per_sensor`` readings for each of its sensors, connected as
    the gateway of each enterprise they belong to."""
    pub = GatewayFleet(host, port, credentials)
    owner = {i: bench_sensor(run, i)[0] for i in sensor_ids}
    topics = {i: reading_topic(*bench_sensor(run, i)) for i in sensor_ids}
    seqs = dict.fromkeys(sensor_ids, 0)
    total = per_sensor * len(sensor_ids)
    messages = 0
    sent = 0
    t0 = time.perf_counter()
    while sent < total:
        for i in sensor_ids:
            if seqs[i] >= per_sensor:
                continue
            n = min(batch, per_sensor - seqs[i])
            now = datetime.now(UTC)
            items = []
            for k in range(n):
                seqs[i] += 1
                ts = (now + timedelta(microseconds=k)).isoformat().replace("+00:00", "Z")
                items.append(
                    {"ts": ts, "hazard": "co", "value": 10.0, "unit": "ppm", "seq": seqs[i]}
                )
            payload = orjson.dumps({"readings": items} if batch > 1 else items[0])
            pub.publish(owner[i], topics[i], payload)
            messages += 1
            sent += n
            if rate > 0:
                pub.flush(owner[i])
                ahead = sent / rate - (time.perf_counter() - t0)
                while ahead > 0.002:
                    pub.service()
                    time.sleep(min(ahead, 0.005))
                    ahead = sent / rate - (time.perf_counter() - t0)
    ok = pub.wait_acked(timeout_s=600)
    elapsed = time.perf_counter() - t0
    pub.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put(
        {
            "messages": messages,
            "readings": sent,
            "publish_s": elapsed,
            "acked": ok,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }
    )


def _proc_tree_cpu(pid: int) -> float:
    try:
        p = psutil.Process(pid)
        procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for q in procs:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _detection(stack: Stack) -> tuple[float, float, float]:
    """(rules CPU seconds, models CPU seconds, readings stored) summed over the workers."""
    stats = [read_stats(stack.state_dir, n) for n in stack.worker_names]
    return (
        sum(s.get("detect_s", 0.0) for s in stats),
        sum(s.get("model_s", 0.0) for s in stats),
        sum(s.get("stored", 0.0) for s in stats),
    )


def _component_cpu(stack: Stack) -> dict[str, float]:
    cpu = {c.name: _proc_tree_cpu(c.proc.pid) for c in stack.children}
    pg = getattr(stack, "_pg", None)
    if pg is not None:
        cpu["postgres"] = _proc_tree_cpu(pg.get_pid())
    return cpu


def register_bench_sensors(stack: Stack, run: str, sensors: int) -> dict[str, Credentials]:
    """Put the run's enterprises and sensors in the registry (the bridge refuses readings of
    sensors it does not know) and give each enterprise a gateway identity."""
    assert stack.settings.database_url is not None
    region, industry = "KZ-35", "C"
    enterprises: dict[str, list[Sensor]] = {}
    for i in range(sensors):
        eid, sid = bench_sensor(run, i)
        enterprises.setdefault(eid, []).append(Sensor(sid, eid, f"{eid}-Z1", "co", 1.0))
    ref = ReferenceData(
        (),
        (),
        tuple(
            Enterprise(
                eid,
                f"Bench {eid}",
                region,
                industry,
                "Karaganda",
                zones=(Zone(f"{eid}-Z1", eid, "bench", "workshop", sensors=tuple(ss)),),
            )
            for eid, ss in sorted(enterprises.items())
        ),
    )
    since = time.time()
    seed_reference(stack.settings.database_url, ref)
    creds = stack.gateways(sorted(enterprises))
    stack.wait_for_registry(since)
    return creds


def start_publishers(
    stack: Stack,
    run: str,
    *,
    sensors: int,
    per_sensor: int,
    batch: int,
    rate: float,
    publishers: int,
) -> tuple[list[Any], Any]:
    """Publisher processes sharing ``sensors`` (``rate`` readings/s in all, 0 = flat out);
    each puts its figures on the returned queue when done."""
    s = stack.settings
    creds = register_bench_sensors(stack, run, sensors)
    ctx = mp.get_context("spawn")
    queue: Any = ctx.Queue()
    procs = []
    for p in range(publishers):
        mine = list(range(p, sensors, publishers))
        owners = {bench_sensor(run, i)[0] for i in mine}
        proc = ctx.Process(
            target=_publisher,
            args=(
                s.mqtt_host,
                s.mqtt_port,
                run,
                mine,
                per_sensor,
                batch,
                rate / publishers if rate else 0.0,
                queue,
                {e: tuple(creds[e]) for e in owners},
            ),
        )
        proc.start()
        procs.append(proc)
    return procs, queue


def bench_settings(settings: Settings, subdir: str, *, workers: int | None = 2) -> Settings:
    """The settings a bench runs on: its own state directory (unless one is given), two
    workers (one per core, as deployed; unless given), and a fresh embedded database for
    every run, so figures do not depend on how many earlier runs filled the tables."""
    if "state_dir" not in settings.model_fields_set:
        settings = settings.model_copy(update={"state_dir": settings.state_dir / subdir})
    if workers is not None and "workers" not in settings.model_fields_set:
        settings = settings.model_copy(update={"workers": workers})
    if settings.database_url is None:
        shutil.rmtree(settings.state_dir.resolve() / "pgdata", ignore_errors=True)
    return settings


def run_one(
    stack: Stack,
    *,
    readings: int,
    batch: int,
    sensors: int,
    rate: float,
    publishers: int,
    timeout_s: float,
    progress: Callable[[int, int], None] | None = None,
) -> BenchResult:
    s = stack.settings
    assert s.database_url is not None
    run = uuid.uuid4().hex[:6]
    per_sensor = max(1, readings // sensors)
    total = per_sensor * sensors
    cpu0 = _component_cpu(stack)
    det0 = _detection(stack)
    procs, queue = start_publishers(
        stack,
        run,
        sensors=sensors,
        per_sensor=per_sensor,
        batch=batch,
        rate=rate,
        publishers=publishers,
    )

    like = f"B{run}-S%"
    stored = 0
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(s.database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM readings WHERE sensor_id LIKE %s", (like,)
            ).fetchone()
            stored = int(row[0]) if row else 0
            if progress is not None:
                progress(stored, total)
            if stored >= total:
                break
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed:
                raise QorgauError(f"a publisher process failed (exit codes {failed})")
            time.sleep(0.25)
        pubs = [queue.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(10)
        stats = conn.execute(
            "SELECT count(*), count(DISTINCT (sensor_id, seq)),"
            " min(ts), max(ingested_at),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY ingested_at - ts),"
            " percentile_cont(0.99) WITHIN GROUP (ORDER BY ingested_at - ts),"
            " max(ingested_at - ts)"
            " FROM readings WHERE sensor_id LIKE %s",
            (like,),
        ).fetchone()
    assert stats is not None
    rows, distinct, first_ts, last_in, p50, p99, pmax = stats
    time.sleep(2.5)  # workers write their counters every 2 s
    det1 = _detection(stack)
    cpu1 = _component_cpu(stack)
    publish_s = max(p["publish_s"] for p in pubs)
    e2e_s = (last_in - first_ts).total_seconds() if rows else float("nan")
    cpu = {k: round(cpu1.get(k, 0.0) - cpu0.get(k, 0.0), 2) for k in cpu1}
    cpu["publishers"] = round(sum(p["cpu_s"] for p in pubs), 2)
    wall = max(e2e_s, publish_s)

    def ms(d: timedelta | None) -> float:
        return round(d.total_seconds() * 1000, 1) if d is not None else float("nan")

    return BenchResult(
        shape="single" if batch == 1 else f"batch-{batch}",
        readings=total,
        messages=sum(p["messages"] for p in pubs),
        batch=batch,
        sensors=sensors,
        target_rate=rate,
        publish_s=round(publish_s, 2),
        publish_rate=round(total / publish_s, 1),
        end_to_end_s=round(e2e_s, 2),
        end_to_end_rate=round(distinct / e2e_s, 1),
        stored=int(distinct),
        lost=total - int(distinct),
        duplicated=int(rows) - int(distinct),
        latency_p50_ms=ms(p50),
        latency_p99_ms=ms(p99),
        latency_max_ms=ms(pmax),
        detection_us_per_reading=round(1e6 * (det1[0] - det0[0]) / max(1.0, det1[2] - det0[2]), 2),
        models_us_per_reading=round(1e6 * (det1[1] - det0[1]) / max(1.0, det1[2] - det0[2]), 2),
        cpu_s=cpu,
        cpu_pct_of_core={k: round(100 * v / wall, 1) for k, v in cpu.items()},
    )


def _print_table(results: list[BenchResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(
        title=f"qorgau bench — {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, shared machine"
    )
    t.add_column("metric")
    for r in results:
        t.add_column(
            r.shape + (f" @ {r.target_rate:,.0f}/s" if r.target_rate else ""), justify="right"
        )
    rows: list[tuple[str, str]] = [
        ("readings published", "readings"),
        ("MQTT messages", "messages"),
        ("publish time (s)", "publish_s"),
        ("publish rate (readings/s)", "publish_rate"),
        ("end-to-end time (s)", "end_to_end_s"),
        ("sustained end to end (readings/s)", "end_to_end_rate"),
        ("stored", "stored"),
        ("lost", "lost"),
        ("duplicated", "duplicated"),
        ("latency p50 publish→stored (ms)", "latency_p50_ms"),
        ("latency p99 publish→stored (ms)", "latency_p99_ms"),
        ("latency max (ms)", "latency_max_ms"),
        ("safety rules in the workers (µs CPU/reading)", "detection_us_per_reading"),
        ("online models in the workers (µs CPU/reading)", "models_us_per_reading"),
    ]
    for label, attr in rows:
        t.add_row(label, *[f"{getattr(r, attr):,}" for r in results])
    for comp in results[0].cpu_s:
        t.add_row(
            f"CPU {comp} (s / % of one core)",
            *[
                f"{r.cpu_s.get(comp, 0):.1f} / {r.cpu_pct_of_core.get(comp, 0):.0f}%"
                for r in results
            ],
        )
    Console().print(t)


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    settings = bench_settings(settings, "bench")
    for stale in (settings.state_dir / "run").glob("*.stats.json"):
        stale.unlink()  # counters of an earlier bench's workers
    results = []
    with Stack(settings, components=("bridge", "worker")) as stack:
        for batch in args.batch:
            r = run_one(
                stack,
                readings=args.readings,
                batch=batch,
                sensors=args.sensors,
                rate=args.rate,
                publishers=args.publishers,
                timeout_s=args.timeout,
            )
            results.append(r)
            if not args.json:
                print(
                    f"{r.shape}: {r.end_to_end_rate:,.0f} readings/s end to end, "
                    f"lost {r.lost}, duplicated {r.duplicated}, "
                    f"p99 {r.latency_p99_ms:,.0f} ms",
                    flush=True,
                )
    if args.json:
        print(orjson.dumps([asdict(r) for r in results], option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(results)
    return 0 if all(r.lost == 0 and r.duplicated == 0 for r in results) else 1


def run_detection_bench(readings: int, *, as_json: bool = False) -> dict[str, float]:
    """Detection cost on one core: the rules alone, and replay's parse + rules.

    The readings come from the simulator's profiles for every seeded sensor
    (192 sensors, 12 enterprises), reporting at their configured intervals,
    with incidents, so every rule family does real work.
    """
    import random as _random

    from core.catalogue import load_catalogue
    from core.limits import load_limits
    from core.reference import load_reference
    from core.types import Reading
    from edge.profiles import profile_for
    from stream.codec import normalise, parse_reading_payload
    from stream.detection.detector import Detector
    from stream.detection.models import ModelBank, ModelSettings

    catalogue = load_catalogue()
    ref = load_reference(catalogue)
    rng = _random.Random(7)
    profiles = [
        (e.id, s, profile_for(s, _random.Random(rng.random()), z.normal_temperature_c))
        for e in ref.enterprises
        for z in e.zones
        for s in z.sensors
    ]
    t0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    lines: list[bytes] = []
    i = 0
    tick = 0
    while len(lines) < readings:
        now = t0 + timedelta(seconds=tick)
        for eid, sensor, prof in profiles:
            if tick % max(1, int(sensor.interval_s)) == 0:
                if rng.random() < 1e-4:
                    prof.start_incident(
                        now, "heat_rise" if sensor.hazard == "temperature" else "gas_leak"
                    )
                lines.append(
                    orjson.dumps(
                        {
                            "ts": now.isoformat().replace("+00:00", "Z"),
                            "hazard": sensor.hazard,
                            "value": prof.value_at(now),
                            "unit": catalogue[sensor.hazard].unit,
                            "seq": i,
                            "sensor_id": sensor.id,
                            "enterprise_id": eid,
                        }
                    )
                )
                i += 1
        tick += 1
    lines = lines[:readings]
    parsed: list[Reading] = []
    t_parse = time.perf_counter()
    for raw in lines:
        doc = orjson.loads(raw)
        eid = doc.pop("enterprise_id")
        [item] = parse_reading_payload(orjson.dumps(doc), doc["sensor_id"])
        parsed.append(normalise(eid, item, catalogue))
    parse_s = time.perf_counter() - t_parse
    limits = load_limits(catalogue=catalogue)
    detector = Detector(catalogue, limits, ref)
    events = 0
    t_detect = time.thread_time()
    for r in parsed:
        events += len(detector.process(r))
    detect_s = time.thread_time() - t_detect
    # The online models after the rules, as the worker runs them (rules state held fixed).
    models = ModelBank(catalogue, limits, ModelSettings(), ref)
    t_models = time.thread_time()
    for r in parsed:
        events += len(models.process(r))
    models.drain_scores()
    models_s = time.thread_time() - t_models
    result = {
        "readings": float(len(parsed)),
        "sensors": float(len(profiles)),
        "event_time_span_h": round(tick / 3600, 2),
        "alert_changes": float(events),
        "rules_readings_per_s": round(len(parsed) / detect_s, 1),
        "rules_us_per_reading": round(1e6 * detect_s / len(parsed), 2),
        "parse_and_rules_readings_per_s": round(len(parsed) / (detect_s + parse_s), 1),
        "models_us_per_reading": round(1e6 * models_s / len(parsed), 2),
        "rules_and_models_readings_per_s": round(len(parsed) / (detect_s + models_s), 1),
    }
    if as_json:
        print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    else:
        print(
            f"detection on one core ({os.cpu_count()}-core shared machine): "
            f"{result['readings']:,.0f} readings from {result['sensors']:.0f} sensors over "
            f"{result['event_time_span_h']} h of event time, {events} alert changes\n"
            f"  rules only:        {result['rules_readings_per_s']:,.0f} readings/s"
            f" ({result['rules_us_per_reading']} µs per reading)\n"
            f"  parse + rules:     {result['parse_and_rules_readings_per_s']:,.0f} readings/s\n"
            f"  online models:     {result['models_us_per_reading']} µs per reading"
            f" (default detector, drift, zone fire risk, per-minute scores)\n"
            f"  rules + models:    {result['rules_and_models_readings_per_s']:,.0f} readings/s"
            " (CPU time of one thread)"
        )
    return result
