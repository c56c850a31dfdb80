"""One batch of readings through storage and safety detection, in one transaction.

The Faust worker calls `BatchProcessor.process` per batch; it is plain async
code over a database connection, so tests drive it directly.

Per batch: enterprises not yet held are restored (checkpoint + the readings
stored after it) -> untrustworthy timestamps (future, too old) are refused
(not stored) -> readings are stored (one that came later than the allowed
lateness too: a true measurement is never lost, but detection cannot use it) -> and only those never stored before go through the
safety rules (a redelivered batch changes nothing) -> their alert changes and
per-minute exposures are written and *published* -> only then the online
models (`ModelBank`) see the same readings: their state is restored if
needed, anomaly and drift alerts and scores are written and published -> due
checkpoints are written -> the caller commits. A limit alarm therefore never
waits for a model. If anything fails the transaction rolls back and the
batch's enterprises are dropped from memory, to be restored again on the
retry (alerts already published are published again with the same keys).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
import structlog

from alerts.lifecycle import LifecyclePolicy, apply_machine_events
from core.alarms import AlertEvent
from core.errors import InvalidReading
from core.types import Reading
from storage.detection import (
    ExposureRecord,
    load_checkpoint,
    load_model_state,
    readings_since_checkpoint,
    save_checkpoint,
    save_model_state,
    store_exposures,
    store_scores,
)
from storage.ingest import ingest_new_readings
from stream.detection.detector import Detector
from stream.detection.models import ModelBank

__all__ = ["BatchOutcome", "BatchProcessor"]

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class BatchOutcome:
    stored: int = 0  # readings new to storage (and run through detection)
    duplicates: int = 0  # already stored: redelivered
    refused: list[tuple[Reading, InvalidReading]] = field(default_factory=list)
    failed: list[tuple[Reading, Exception]] = field(default_factory=list)  # stored, not checked
    late: int = 0  # stored, but too late for detection (``too_late``)
    alerts: list[AlertEvent] = field(default_factory=list)  # rules' first, then the models'
    detect_s: float = 0.0  # CPU spent in the safety rules for this batch
    model_s: float = 0.0  # CPU spent in the online models for this batch


Publish = Callable[[list[AlertEvent]], Awaitable[None]]


class BatchProcessor:
    def __init__(
        self,
        detector: Detector,
        *,
        checkpoint_every_s: float = 5.0,
        models: ModelBank | None = None,
        model_checkpoint_every_s: float = 300.0,
        model_catchup_s: float = 3600.0,
        lifecycle: LifecyclePolicy | None = None,
    ) -> None:
        self.detector = detector
        self.lifecycle = lifecycle or LifecyclePolicy()
        self.models = models
        self.checkpoint_every_s = checkpoint_every_s
        self.model_checkpoint_every_s = model_checkpoint_every_s
        self.model_catchup_s = model_catchup_s  # history learnt by a model with no checkpoint
        self._loaded: set[str] = set()
        self._models_loaded: set[str] = set()
        self.last_batch_wall = time.time()  # when the last readings arrived (wall clock)
        self._checkpointed: dict[str, float] = {}  # enterprise -> monotonic time of last save
        self._models_checkpointed: dict[str, float] = {}

    async def _restore(
        self, conn: psycopg.AsyncConnection, enterprise_id: str, earliest: datetime
    ) -> int:
        """Bring an enterprise's detection state up to what storage holds."""
        cp = await load_checkpoint(conn, enterprise_id)
        lateness = timedelta(seconds=self.detector.limits.health.lateness_s)
        if cp is not None:
            try:
                self.detector.import_state(enterprise_id, cp.state)
            except Exception:  # an unreadable checkpoint: start from the stored readings
                log.exception(
                    "detection checkpoint unreadable; rebuilding", enterprise=enterprise_id
                )
                self.detector.drop_enterprise(enterprise_id)
                cp = None
        if cp is not None:
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

    async def _restore_models(
        self,
        conn: psycopg.AsyncConnection,
        enterprise_id: str,
        earliest: datetime,
        skip: set[tuple[str, datetime]],
    ) -> int:
        """Bring an enterprise's models up to what storage holds (but ``skip``: this batch)."""
        assert self.models is not None
        cp = await load_model_state(conn, enterprise_id)
        try:
            restored = cp is not None and self.models.import_state(enterprise_id, cp.state)
        except Exception:  # an unreadable checkpoint: learn from the stored readings
            log.exception("model checkpoint unreadable; relearning", enterprise=enterprise_id)
            self.models.drop_enterprise(enterprise_id)
            restored = False
        if cp is not None and restored:
            backlog = await readings_since_checkpoint(
                conn, enterprise_id, saved_at=cp.saved_at, not_before=None
            )
        else:  # no usable checkpoint: learn from the recent history
            backlog = await readings_since_checkpoint(
                conn,
                enterprise_id,
                saved_at=None,
                not_before=earliest - timedelta(seconds=self.model_catchup_s),
            )
        learnt = 0
        for r in backlog:
            if (r.sensor_id, r.ts) not in skip:
                self.models.process(r, emit=False)
                learnt += 1
        self._models_loaded.add(enterprise_id)
        self._models_checkpointed[enterprise_id] = time.monotonic()
        if learnt or restored:
            log.info(
                "online models restored",
                enterprise=enterprise_id,
                checkpoint=restored,
                learnt=learnt,
            )
        return learnt

    async def process(
        self,
        conn: psycopg.AsyncConnection,
        readings: Sequence[Reading],
        publish: Publish | None = None,
    ) -> BatchOutcome:
        """Store and check ``readings``; the caller owns the transaction around this.

        ``publish`` is awaited with the rules' alert changes before any model runs,
        then with the models' (the caller must not publish ``outcome.alerts`` again).
        """
        out = BatchOutcome()
        if readings:
            self.last_batch_wall = time.time()
        # Timestamps the receiver's clock refuses are out before anything is restored for
        # them (and before any date arithmetic is done with them).
        sane: list[Reading] = []
        for r in readings:
            try:
                self.detector.check_clock(r)
            except InvalidReading as exc:
                out.refused.append((r, exc))
                continue
            sane.append(r)
        enterprises = {r.enterprise_id for r in sane}
        try:
            for eid in sorted(enterprises - self._loaded):
                earliest = min(r.ts for r in sane if r.enterprise_id == eid)
                await self._restore(conn, eid, earliest)
            ordered = sorted(sane, key=lambda r: r.ts)
            accepted: list[Reading] = []
            late: set[tuple[str, datetime]] = set()
            for r in ordered:
                try:
                    self.detector.check_timestamp(r)
                except InvalidReading as exc:
                    if exc.reason != "too_late":
                        out.refused.append((r, exc))
                        continue
                    late.add((r.sensor_id, r.ts))
                accepted.append(r)
            new = await ingest_new_readings(conn, accepted)
            out.stored, out.duplicates = len(new), len(accepted) - len(new)
            if late:
                new = [r for r in new if (r.sensor_id, r.ts) not in late]
                out.late = out.stored - len(new)
            started = time.thread_time()  # CPU time: the machine is shared
            checked: list[tuple[Reading, bool, bool]] = []  # (reading, faulty, covered)
            for r in new:
                try:
                    out.alerts += self.detector.process(r)
                except InvalidReading:  # too late against a reading of this batch: stored
                    out.late += 1
                    continue
                except Exception as exc:  # a fault of ours must not cost the batch: stored
                    log.exception("detection failed", sensor=r.sensor_id, ts=r.ts.isoformat())
                    out.failed.append((r, exc))
                    continue
                sid = r.sensor_id
                checked.append((r, self.detector.faulty(sid), self.detector.covered(sid)))
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
            await apply_machine_events(conn, out.alerts, self.lifecycle)
            if publish is not None:
                await publish(out.alerts)  # limit alarms leave before any model runs
            if self.models is not None and checked:
                await self._run_models(conn, checked, enterprises, out, publish)
            await self._checkpoint(conn, enterprises)
            return out
        except BaseException:
            self.forget(enterprises)
            raise

    async def _run_models(
        self,
        conn: psycopg.AsyncConnection,
        checked: list[tuple[Reading, bool, bool]],
        enterprises: set[str],
        out: BatchOutcome,
        publish: Publish | None,
    ) -> None:
        models = self.models
        assert models is not None
        missing = enterprises - self._models_loaded
        if missing:
            skip = {(r.sensor_id, r.ts) for r, _, _ in checked}
            for eid in sorted(missing):
                earliest = min(
                    (r.ts for r, _, _ in checked if r.enterprise_id == eid), default=None
                )
                if earliest is not None:
                    await self._restore_models(conn, eid, earliest, skip)
        started = time.thread_time()
        events: list[AlertEvent] = []
        for r, faulty, covered in checked:
            events += models.process(r, faulty=faulty, covered=covered)
        out.model_s = time.thread_time() - started
        await store_scores(conn, models.drain_scores())
        await apply_machine_events(conn, events, self.lifecycle)
        if publish is not None:
            await publish(events)
        out.alerts += events

    async def _checkpoint(self, conn: psycopg.AsyncConnection, enterprises: set[str]) -> None:
        now = time.monotonic()
        for eid in sorted(enterprises):
            if now - self._checkpointed.get(eid, 0.0) >= self.checkpoint_every_s:
                wm = self.detector.watermarks.get(eid)
                watermark = datetime.fromtimestamp(wm, UTC) if wm is not None else None
                await save_checkpoint(conn, eid, self.detector.export_state(eid), watermark)
                self._checkpointed[eid] = now
        if self.models is None:
            return
        for eid in sorted(enterprises & self._models_loaded):
            if now - self._models_checkpointed.get(eid, 0.0) >= self.model_checkpoint_every_s:
                await save_model_state(conn, eid, self.models.export_state(eid))
                self._models_checkpointed[eid] = now

    async def advance(self, conn: psycopg.AsyncConnection, seconds: float) -> list[AlertEvent]:
        """Move every enterprise's event time on by ``seconds`` of total silence; store
        what it raises."""
        events = self.detector.advance_by(seconds)
        if events:
            await apply_machine_events(conn, events, self.lifecycle)
            await self._checkpoint(conn, {e.enterprise_id for e in events})
        return events

    async def checkpoint_all(self, conn: psycopg.AsyncConnection, *, models: bool = False) -> None:
        """Save every held enterprise's detection state now, and its models if ``models``
        (a clean shutdown) or if due (models are larger: saved every few minutes)."""
        self._checkpointed.clear()
        if models:
            self._models_checkpointed.clear()
        await self._checkpoint(conn, set(self._loaded))

    def forget(self, enterprises: set[str]) -> None:
        for eid in enterprises:
            self.detector.drop_enterprise(eid)
            self._loaded.discard(eid)
            self._checkpointed.pop(eid, None)
            if self.models is not None:
                self.models.drop_enterprise(eid)
            self._models_loaded.discard(eid)
            self._models_checkpointed.pop(eid, None)
