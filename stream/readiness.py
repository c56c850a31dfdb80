"""Ready markers: a component touches ``<state_dir>/run/<name>.ready`` when it can do its job.

The local launcher waits for them (a bridge that has not subscribed yet would
let the first readings pass by a broker without persistence); container
orchestrators can use them as a readiness probe.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

__all__ = [
    "clear_ready",
    "kafka_lost",
    "mark_kafka_lost",
    "mark_ready",
    "read_stats",
    "ready_path",
    "write_stats",
]


def ready_path(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.ready"


def mark_ready(state_dir: Path, name: str) -> None:
    path = ready_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def clear_ready(state_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        ready_path(state_dir, name).unlink()


def write_stats(state_dir: Path, name: str, stats: dict[str, float]) -> None:
    """Counters of a running component, for the launcher and the benchmark to read."""
    path = state_dir / "run" / f"{name}.stats.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stats))
    os.replace(tmp, path)


def read_stats(state_dir: Path, name: str) -> dict[str, float]:
    try:
        return dict(json.loads((state_dir / "run" / f"{name}.stats.json").read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _kafka_lost_path(state_dir: Path) -> Path:
    return state_dir / "run" / "kafka-broker-lost.json"


def mark_kafka_lost(state_dir: Path, died_at: float, back_at: float) -> None:
    """The stack's memory-only Kafka-protocol broker died at ``died_at`` and had its
    topics declared again at ``back_at`` (wall clock): what it acknowledged and nobody
    had read is gone, and so is what it acknowledged before its topics were back."""
    path = _kafka_lost_path(state_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"died_at": died_at, "back_at": back_at}))
    os.replace(tmp, path)


def kafka_lost(state_dir: Path) -> tuple[float, float] | None:
    """(died_at, back_at) of the last time the stack's Kafka-protocol broker lost its
    memory (None: never)."""
    try:
        doc = json.loads(_kafka_lost_path(state_dir).read_text())
        return float(doc["died_at"]), float(doc["back_at"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
