"""One batch of readings through storage and safety detection, in one transaction.

The Faust worker calls `BatchProcessor.process` per batch; it is plain async
code over a database connection, so tests drive it directly.

Per batch: enterprises not yet held are restored (checkpoint + the readings
stored after it) -> untrustworthy timestamps are refused (not stored) ->
readings are stored, and only those never stored before go through detection
(a redelivered batch changes nothing) -> alert changes, per-minute exposures
and due checkpoints are written -> the caller publishes the alert changes and
commits. If anything fails the transaction rolls back and the batch's
enterprises are dropped from memory, to be restored again on the retry.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import structlog

from core.alarms import AlertEvent
from core.errors import InvalidReading
from core.types import Reading
from storage.detection import (
    ExposureRecord,
    load_checkpoint,
    readings_since_checkpoint,
    record_alert_events,
    save_checkpoint,
    store_exposures,
)
from storage.ingest import ingest_new_readings
from stream.detection.detector import Detector

__all__ = ["BatchOutcome", "BatchProcessor"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class BatchOutcome:
    stored: int = 0  # readings new to storage (and run through detection)
    duplicates: int = 0  # already stored: redelivered
    refused: list[tuple[Reading, InvalidReading]] = field(default_factory=list)
    alerts: list[AlertEvent] = field(default_factory=list)
    detect_s: float = 0.0  # CPU spent in detection for this batch


class BatchProcessor:
    def __init__(self, detector: Detector, *, checkpoint_every_s: float = 5.0) -> None:
        self.detector = detector
        self.checkpoint_every_s = checkpoint_every_s
        self._loaded: set[str] = set()
        self.last_batch_wall = time.time()  # when the last readings arrived (wall clock)
        self._checkpointed: dict[str, float] = {}  # enterprise -> monotonic time of last save

    async def _restore(
        self, conn: psycopg.AsyncConnection, enterprise_id: str, earliest: datetime
    ) -> int:
        """Bring an enterprise's detection state up to what storage holds."""
        cp = await load_checkpoint(conn, enterprise_id)
        lateness = timedelta(seconds=self.detector.limits.health.lateness_s)
        if cp is not None:
            self.detector.import_state(enterprise_id, cp.state)
            not_before = (cp.watermark - lateness) if cp.watermark else None
            backlog = await readings_since_checkpoint(
                conn, enterprise_id, saved_at=cp.saved_at, not_before=not_before
            )
        else:
            # No checkpoint yet: replay the longest averaging window before this batch.
            backlog = await readings_since_checkpoint(
                conn, enterprise_id, saved_at=None, not_before=earliest - timedelta(hours=8)
            )
        for r in backlog:  # alerts from these were emitted when they first arrived
            try:
                self.detector.process(r)
            except InvalidReading:
                continue
        self.detector.drain_exposures()  # stored when they were first computed
        self._loaded.add(enterprise_id)
        self._checkpointed[enterprise_id] = time.monotonic()
        if backlog:
            log.info(
                "detection state restored",
                enterprise=enterprise_id,
                checkpoint=cp is not None,
                replayed=len(backlog),
            )
        return len(backlog)

    async def process(
        self, conn: psycopg.AsyncConnection, readings: Sequence[Reading]
    ) -> BatchOutcome:
        """Store and check ``readings``; the caller owns the transaction around this."""
        out = BatchOutcome()
        if readings:
            self.last_batch_wall = time.time()
        enterprises = {r.enterprise_id for r in readings}
        try:
            for eid in sorted(enterprises - self._loaded):
                earliest = min(r.ts for r in readings if r.enterprise_id == eid)
                await self._restore(conn, eid, earliest)
            ordered = sorted(readings, key=lambda r: r.ts)
            accepted: list[Reading] = []
            for r in ordered:
                try:
                    self.detector.check_timestamp(r)
                    accepted.append(r)
                except InvalidReading as exc:
                    out.refused.append((r, exc))
            new = await ingest_new_readings(conn, accepted)
            out.stored, out.duplicates = len(new), len(accepted) - len(new)
            started = time.thread_time()  # CPU time: the machine is shared
            for r in new:
                try:
                    out.alerts += self.detector.process(r)
                except InvalidReading as exc:  # too late against a reading of this batch
                    out.refused.append((r, exc))
            out.detect_s = time.thread_time() - started
            await store_exposures(
                conn,
                [
                    ExposureRecord(
                        e.sensor_id, e.ts, e.enterprise_id, e.hazard, e.twa, e.stel, e.ceiling
                    )
                    for e in self.detector.drain_exposures()
                ],
            )
            await record_alert_events(conn, out.alerts)
            await self._checkpoint(conn, enterprises)
            return out
        except BaseException:
            self.forget(enterprises)
            raise

    async def _checkpoint(self, conn: psycopg.AsyncConnection, enterprises: set[str]) -> None:
        now = time.monotonic()
        wm = self.detector.watermark
        watermark = datetime.fromtimestamp(wm, UTC) if wm is not None else None
        for eid in sorted(enterprises):
            if now - self._checkpointed.get(eid, 0.0) >= self.checkpoint_every_s:
                await save_checkpoint(conn, eid, self.detector.export_state(eid), watermark)
                self._checkpointed[eid] = now

    async def advance(self, conn: psycopg.AsyncConnection, to: datetime) -> list[AlertEvent]:
        """Move event time forward without readings (total silence); store what it raises."""
        events = self.detector.advance(to)
        if events:
            await record_alert_events(conn, events)
            await self._checkpoint(conn, {e.enterprise_id for e in events})
        return events

    async def checkpoint_all(self, conn: psycopg.AsyncConnection) -> None:
        """Save every held enterprise now (before a clean shutdown or a rebalance)."""
        self._checkpointed.clear()
        await self._checkpoint(conn, set(self._loaded))

    def forget(self, enterprises: set[str]) -> None:
        for eid in enterprises:
            self.detector.drop_enterprise(eid)
            self._loaded.discard(eid)
            self._checkpointed.pop(eid, None)
