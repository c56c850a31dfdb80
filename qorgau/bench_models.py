"""`qorgau bench --models`: CPU cost and memory of every online anomaly detector.

Each detector runs the way the stream worker runs it — wrapped in
`online_ml.LearningGuard` with the detector's alert threshold, ``score_one``
then ``learn_one`` for every reading — over ``sensors`` independent models fed
round-robin, as a worker with many sensors sees them. The readings come from
the simulator's sensor profiles (several hazards, a daily cycle with shift
changes, correlated noise, occasional incidents) at a 10 s interval.

Cost is CPU time of this thread (`time.thread_time`), not wall time: the
machine is shared. Memory is measured in a separate pass under `tracemalloc`
(which slows the code it traces), and the checkpoint is what the worker stores:
``zlib.compress(pickle.dumps(model, HIGHEST_PROTOCOL), 1)``.
"""

from __future__ import annotations

import gc
import os
import pickle
import platform
import random
import statistics
import time
import tracemalloc
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import orjson

from core.types import Sensor
from edge.profiles import profile_for
from online_ml import ALERT_THRESHOLDS, DETECTORS, LearningGuard, make_detector

__all__ = ["ModelBenchRow", "run_models_bench"]

#: Hazards the simulated sensors measure, in turn (sensor i measures _HAZARDS[i % len]).
_HAZARDS = ("co", "temperature", "noise", "h2s", "o2", "dust", "ch4", "humidity", "vibration")
_INTERVAL_S = 10.0
#: 01:00 UTC on a Monday is 06:00 in Kazakhstan: the 08:00 shift change comes early in the run.
_START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
_INCIDENT_P = 2e-4  # per reading
_WARMUP = 500
_REPEATS = 3
_SAVE_ROUNDS = 3


@dataclass
class ModelBenchRow:
    detector: str
    us_per_reading: float  # CPU, median of the repeats
    us_per_reading_min: float
    us_per_reading_max: float
    readings_per_s_per_core: float
    memory_kb_per_model: float  # tracemalloc growth / models
    checkpoint_kb_per_model: float  # zlib level 1 of the pickle
    save_restore_ms: float  # pickle + compress, then decompress + unpickle, one model
    refused_per_model: float  # readings the guard did not learn (flagged after warm-up)


def _stream(readings: int, sensors: int, seed: int = 7) -> list[tuple[int, dict[str, float]]]:
    """``readings`` simulated readings, round-robin over ``sensors`` sensors, every 10 s each."""
    rng = random.Random(seed)
    profiles = []
    for i in range(sensors):
        hazard = _HAZARDS[i % len(_HAZARDS)]
        sensor = Sensor(f"BM-S{i:03d}", "BM", "BM-Z1", hazard, _INTERVAL_S)
        profiles.append(profile_for(sensor, random.Random(rng.random()), zone_normal_c=22.0))
    out: list[tuple[int, dict[str, float]]] = []
    tick = 0
    while len(out) < readings:
        now = _START + timedelta(seconds=_INTERVAL_S * tick)
        t = now.timestamp()
        for i, prof in enumerate(profiles):
            if len(out) == readings:
                break
            if rng.random() < _INCIDENT_P:
                kind = "heat_rise" if prof.sensor.hazard == "temperature" else "gas_leak"
                prof.start_incident(now, kind)
            out.append((i, {"value": prof.value_at(now), "t": t}))
        tick += 1
    return out


def _models(name: str, sensors: int) -> list[LearningGuard]:
    return [
        LearningGuard(make_detector(name), warmup=_WARMUP, threshold=ALERT_THRESHOLDS[name])
        for _ in range(sensors)
    ]


def _feed(models: list[LearningGuard], stream: list[tuple[int, dict[str, float]]]) -> float:
    """Score then learn every reading; return the CPU seconds of this thread it took."""
    pairs = [(models[i], x) for i, x in stream]
    t0 = time.thread_time()
    for m, x in pairs:
        m.score_one(x)
        m.learn_one(x)
    return time.thread_time() - t0


def _measure(
    name: str, stream: list[tuple[int, dict[str, float]]], sensors: int, repeats: int
) -> ModelBenchRow:
    runs = []
    for _ in range(repeats):
        models = _models(name, sensors)
        gc.collect()
        runs.append(1e6 * _feed(models, stream) / len(stream))
        del models

    # Memory: a separate pass, traced from before the models are built.
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    models = _models(name, sensors)
    for i, x in stream:
        m = models[i]
        m.score_one(x)
        m.learn_one(x)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    blobs = [zlib.compress(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL), 1) for m in models]
    t0 = time.thread_time()
    for _ in range(_SAVE_ROUNDS):
        for m in models:
            blob = zlib.compress(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL), 1)
            pickle.loads(zlib.decompress(blob))
    save_s = (time.thread_time() - t0) / (_SAVE_ROUNDS * len(models))

    us = statistics.median(runs)
    return ModelBenchRow(
        detector=name,
        us_per_reading=round(us, 2),
        us_per_reading_min=round(min(runs), 2),
        us_per_reading_max=round(max(runs), 2),
        readings_per_s_per_core=round(1e6 / us, 1),
        memory_kb_per_model=round(grown / len(models) / 1024, 1),
        checkpoint_kb_per_model=round(sum(map(len, blobs)) / len(blobs) / 1024, 1),
        save_restore_ms=round(1e3 * save_s, 3),
        refused_per_model=round(sum(m.refused for m in models) / len(models), 1),
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


_COLUMNS = (
    ("detector", "detector"),
    (f"µs/reading (CPU, median of {_REPEATS})", "us_per_reading"),
    ("readings/s/core", "readings_per_s_per_core"),
    ("memory/model (KB)", "memory_kb_per_model"),
    ("checkpoint/model (KB)", "checkpoint_kb_per_model"),
    ("save+restore (ms)", "save_restore_ms"),
)


def _print_table(rows: list[ModelBenchRow], header: str, readings: int, sensors: int) -> None:
    cells = [
        [
            r.detector,
            f"{r.us_per_reading:,.2f}",
            f"{r.readings_per_s_per_core:,.0f}",
            f"{r.memory_kb_per_model:,.1f}",
            f"{r.checkpoint_kb_per_model:,.1f}",
            f"{r.save_restore_ms:,.3f}",
        ]
        for r in rows
    ]
    widths = [max(len(title), *(len(c[k]) for c in cells)) for k, (title, _) in enumerate(_COLUMNS)]
    print(header)
    print()
    print(
        "  ".join(
            title.ljust(w) if k == 0 else title.rjust(w)
            for k, ((title, _), w) in enumerate(zip(_COLUMNS, widths, strict=True))
        )
    )
    for c in cells:
        print(
            "  ".join(
                v.ljust(w) if k == 0 else v.rjust(w)
                for k, (v, w) in enumerate(zip(c, widths, strict=True))
            )
        )
    per = readings // sensors
    spread = ", ".join(
        f"{r.detector} {r.us_per_reading_min:,.2f}-{r.us_per_reading_max:,.2f}" for r in rows
    )
    refused = ", ".join(f"{r.detector} {r.refused_per_model:,.0f}" for r in rows)
    print()
    print(
        f"µs/reading: CPU time (time.thread_time) of score_one + learn_one through\n"
        f"  LearningGuard(warmup={_WARMUP}, threshold=ALERT_THRESHOLDS[name]), median of "
        f"{_REPEATS} runs with fresh models\n"
        f"  (min-max: {spread}); readings/s/core = 1e6 / µs.\n"
        f"memory/model: tracemalloc growth over a separate run (building the models + the same\n"
        f"  readings) / {sensors} models, after {per:,} readings per model; likelihood histories\n"
        f"  (4 B per raw score, up to `history`) grow until full, so longer runs can hold more.\n"
        f"checkpoint/model: len(zlib.compress(pickle.dumps(model, HIGHEST_PROTOCOL), 1)), as the\n"
        f"  worker stores it; save+restore: that, then decompress + unpickle, per model.\n"
        f"readings not learnt (flagged after warm-up), per model: {refused}."
    )


def run_models_bench(
    readings: int = 50_000,
    sensors: int = 20,
    detectors: list[str] | None = None,
    *,
    as_json: bool = False,
) -> int:
    """Print, for every online detector (default: all of `online_ml.DETECTORS`), its
    CPU cost per reading and its memory and checkpoint size per sensor model."""
    names = list(DETECTORS) if detectors is None else list(detectors)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; known: {', '.join(sorted(DETECTORS))}")
    if sensors < 1 or readings < sensors:
        raise ValueError("need at least one sensor and one reading per sensor")
    stream = _stream(readings, sensors)
    rows = [_measure(name, stream, sensors, _REPEATS) for name in names]
    machine = {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    span_h = readings // sensors * _INTERVAL_S / 3600
    if as_json:
        doc = {
            "machine": machine,
            "readings": readings,
            "sensors": sensors,
            "interval_s": _INTERVAL_S,
            "warmup": _WARMUP,
            "repeats": _REPEATS,
            "detectors": [asdict(r) for r in rows],
        }
        print(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return 0
    header = (
        f"online anomaly models on one core — {machine['cpu_count']}-core shared machine, "
        f"{machine['cpu_model']}, {machine['python']}\n"
        f"{readings:,} simulated readings ({', '.join(_HAZARDS[: min(sensors, len(_HAZARDS))])};"
        f" every {_INTERVAL_S:.0f} s, {span_h:.1f} h of event time), "
        f"{sensors} sensor models fed round-robin"
    )
    _print_table(rows, header, readings, sensors)
    return 0
