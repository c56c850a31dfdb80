"""Ready markers: a component touches ``<state_dir>/run/<name>.ready`` when it can do its job.

The local launcher waits for them (a bridge that has not subscribed yet would
let the first readings pass by a broker without persistence); container
orchestrators can use them as a readiness probe.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["clear_ready", "mark_ready", "ready_path"]


def ready_path(state_dir: Path, name: str) -> Path:
    return state_dir / "run" / f"{name}.ready"


def mark_ready(state_dir: Path, name: str) -> None:
    path = ready_path(state_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(os.getpid()))


def clear_ready(state_dir: Path, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        ready_path(state_dir, name).unlink()
