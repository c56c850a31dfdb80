"""``qorgau replay``: the detection pipeline over a file of readings, no broker, no database.

Input: JSON Lines, each a reading payload plus ``enterprise_id`` and
``sensor_id``. The readings are sorted by timestamp (ties keep file order)
and run through the same `Detector` as the stream worker, then (unless left
out) the same online models (`ModelBank`). Output: one JSON line per alert
*opened*. Lines that cannot be read are reported with their
line number and reason, and skipped; nothing else is lost.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from core.alarms import AlertAction, AlertEvent
from core.catalogue import Catalogue
from core.errors import InvalidReading
from core.types import Reading
from stream.codec import normalise, parse_reading_payload
from stream.detection.detector import Detector
from stream.detection.models import ModelBank

__all__ = ["ReplaySummary", "load_readings", "replay"]


@dataclass(slots=True)
class ReplaySummary:
    lines: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    opened: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)  # the first few rejections, for humans

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds > 0 else 0.0


def _parse_line(raw: bytes, catalogue: Catalogue) -> Reading:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidReading("bad_json", str(exc)) from None
    if not isinstance(doc, dict):
        raise InvalidReading("bad_payload", "a line must be a JSON object")
    eid, sid = doc.pop("enterprise_id", None), doc.get("sensor_id")
    if not isinstance(eid, str) or not eid or not isinstance(sid, str) or not sid:
        raise InvalidReading("bad_payload", "enterprise_id and sensor_id are required strings")
    [item] = parse_reading_payload(orjson.dumps(doc), sid)
    return normalise(eid, item, catalogue)


def load_readings(
    lines: Iterator[bytes], catalogue: Catalogue, summary: ReplaySummary
) -> list[Reading]:
    """Parse every line; rejected ones are counted (and a few kept as examples)."""
    readings: list[Reading] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        summary.lines += 1
        try:
            readings.append(_parse_line(raw, catalogue))
        except InvalidReading as exc:
            summary.rejected[exc.reason] += 1
            if len(summary.examples) < 10:
                summary.examples.append(f"line {number}: {exc.reason}: {exc.detail}")
    readings.sort(key=lambda r: r.ts)  # stable: equal timestamps keep file order
    return readings


def replay(
    source: Path,
    out: IO[bytes],
    detector: Detector,
    *,
    models: ModelBank | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ReplaySummary:
    """Run ``detector`` (then ``models``) over the readings in ``source``; write opened
    alerts to ``out``."""
    summary = ReplaySummary()
    started = time.perf_counter()
    with open(source, "rb") as fh:
        readings = load_readings(iter(fh), detector.catalogue, summary)
    total = len(readings)
    step = max(1, total // 200)
    for i, reading in enumerate(readings):
        try:
            events = detector.process(reading)
        except InvalidReading as exc:
            summary.rejected[exc.reason] += 1
            if len(summary.examples) < 10:
                summary.examples.append(
                    f"{reading.sensor_id} {reading.ts.isoformat()}: {exc.reason}: {exc.detail}"
                )
            continue
        summary.readings += 1
        if models is not None:
            sid = reading.sensor_id
            events += models.process(
                reading, faulty=detector.faulty(sid), covered=detector.covered(sid)
            )
        _write(events, out, summary)
        if progress is not None and i % step == 0:
            progress(i + 1, total)
    _write(detector.flush(), out, summary)  # averages still waiting for late readings
    if progress is not None:
        progress(total, total)
    summary.seconds = time.perf_counter() - started
    return summary


def _write(events: list[AlertEvent], out: IO[bytes], summary: ReplaySummary) -> None:
    for e in events:
        if e.action is AlertAction.OPEN:
            summary.opened[e.kind.value] += 1
            out.write(orjson.dumps(e.replay_record()) + b"\n")


def summary_record(summary: ReplaySummary) -> dict[str, Any]:
    return {
        "lines": summary.lines,
        "readings": summary.readings,
        "rejected": dict(summary.rejected),
        "alerts_opened": dict(summary.opened),
        "seconds": round(summary.seconds, 3),
        "readings_per_s": round(summary.readings_per_s, 1),
    }
