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

__all__ = ["clear_ready", "mark_ready", "read_stats", "ready_path", "write_stats"]


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
