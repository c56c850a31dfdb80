"""The worker's runtime: what its agents and timers share, with no Faust in it.

`WorkerRuntime` owns the connection pool, retries (`core.backoff`), dead
letters, publishing of alert changes and the counters; the Faust app
(`stream.worker`) only turns Kafka events into `Inbound` records and calls it.
Tests drive it directly.

Failures are per message: a record that cannot be decoded, a reading that
cannot be converted, a reading the database refuses or whose detection raises
goes to the dead-letter topic with its reason, and every other reading of the
batch is stored. Only *transient* failures (the database or Kafka away) are
retried, for as long as they last: a batch is acknowledged only after it is
stored or dead-lettered. When a batch fails for another reason, it is split in
halves until the reading that fails is found; that one is dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
import psycopg
import psycopg_pool
import structlog
from aiokafka.errors import KafkaError
from psycopg_pool import AsyncConnectionPool

from alerts.lifecycle import apply_machine_events
from core.alarms import AlertEvent
from core.backoff import retry_transient
from core.catalogue import Catalogue
from core.errors import InvalidReading
from core.types import Reading
from storage import components
from storage.detection import ReportStored, store_report
from stream.codec import dead_letter, decode_envelope, normalise
from stream.processing import BatchOutcome, BatchProcessor
from stream.readiness import write_stats
from stream.reports import parse_report

__all__ = ["TRANSIENT", "Inbound", "WorkerRuntime", "WorkerStats"]

log = structlog.get_logger("stream.worker")

T = TypeVar("T")

#: Failures that pass: the database or Kafka is away, or a transaction lost a race.
TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    psycopg.errors.ReadOnlySqlTransaction,  # a fail-over in progress
    psycopg_pool.PoolTimeout,
    KafkaError,
)

#: ``await send(key, value)`` hands a record to Kafka and returns an awaitable that
#: completes when Kafka has acknowledged it.
Send = Callable[[bytes | None, bytes], Awaitable[Awaitable[Any]]]


@dataclass(frozen=True, slots=True)
class Inbound:
    """One Kafka record as the runtime sees it."""

    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int

    @property
    def source(self) -> str:
        return f"kafka:{self.topic}/{self.partition}@{self.offset}"

    @property
    def kafka(self) -> dict[str, Any]:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


@dataclass(slots=True)
class WorkerStats:
    readings: int = 0
    stored: int = 0
    dead_letters: int = 0
    alerts: int = 0
    detect_s: float = 0.0
    model_s: float = 0.0
    model_errors: int = 0
    late: int = 0
    batches: int = 0
    isolated: int = 0  # readings dead-lettered because they failed alone


class WorkerRuntime:
    """Everything one worker process's agents share.

    Parameters
    ----------
    dsn
        The database.
    processor
        Stores a batch and runs detection on it (`stream.processing.BatchProcessor`).
    catalogue
        Converts units (`stream.codec.normalise`).
    zones
        Zone id -> enterprise id, to check workers' reports.
    send_alert, send_dead_letter
        Hand a record to the alerts / dead-letter topic (see `Send`).
    pool_size
        The most database connections this process holds.
    """

    def __init__(
        self,
        dsn: str,
        processor: BatchProcessor,
        catalogue: Catalogue,
        *,
        zones: dict[str, str],
        send_alert: Send,
        send_dead_letter: Send,
        pool_size: int = 3,
        state_dir: Any = None,
        name: str = "worker",
    ) -> None:
        self.processor = processor
        self.catalogue = catalogue
        self.zones = zones
        self.stats = WorkerStats()
        self._send_alert = send_alert
        self._send_dead_letter = send_dead_letter
        self._state_dir = state_dir
        self._name = name
        self._stopping = False
        self._started = datetime.now(UTC)
        self.ready = False  # partitions assigned: it consumes
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            check=AsyncConnectionPool.check_connection,
            name=f"qorgau-{name}",
        )
        self._pool_open = False
        self._last_log = self._last_file = time.monotonic()

    # --- resources -------------------------------------------------------------------
    async def _open(self) -> AsyncConnectionPool[Any]:
        if not self._pool_open:
            await self._pool.open(wait=True, timeout=60)
            self._pool_open = True
        return self._pool

    async def close(self) -> None:
        """A clean stop: every held enterprise's state (models too) is saved, then the pool
        closes. Best effort: a database that is away loses only the learning since the
        last checkpoint, which a restart recomputes from stored readings."""
        self._stopping = True
        if self._pool_open:
            if self.processor.detector.enterprises():
                try:
                    async with self._pool.connection(timeout=5) as conn, conn.transaction():
                        await self.processor.checkpoint_all(conn, models=True)
                except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
                    log.error("final checkpoint failed", error=str(exc))
            await self._pool.close()
            self._pool_open = False
        self.write_stats()

    async def transaction(
        self, what: str, body: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
    ) -> T:
        """``body(conn)`` in one transaction, retried while the failure is transient."""

        async def once() -> T:
            pool = await self._open()
            async with pool.connection() as conn, conn.transaction():
                return await body(conn)

        return await retry_transient(
            f"{what}: storage or Kafka", once, transient=TRANSIENT, give_up=self._given_up
        )

    def _given_up(self) -> bool:
        return self._stopping

    # --- Kafka ---------------------------------------------------------------------------
    async def publish(self, alerts: Sequence[AlertEvent]) -> None:
        """Publish alert changes and wait for Kafka: the caller commits only after this."""
        acks = [
            await self._send_alert(a.enterprise_id.encode(), orjson.dumps(a.wire_record()))
            for a in alerts
        ]
        for ack in acks:
            await ack
        self.stats.alerts += len(alerts)

    async def dead_letter(
        self,
        source: str,
        key: bytes | None,
        reason: str,
        detail: str,
        payload: Any,
        kafka: dict[str, Any] | None = None,
    ) -> None:
        """Keep a refused message on the dead-letter topic (bounded), waiting for Kafka."""
        self.stats.dead_letters += 1
        log.warning(
            "dead letter", stage="worker", source=source, reason=reason, detail=detail[:300]
        )
        record = dead_letter(
            stage="worker",
            reason=reason,
            detail=detail,
            source=source,
            payload=payload if payload is not None else b"",
            extra={"kafka": kafka} if kafka else None,
        )

        async def send() -> None:
            await (await self._send_dead_letter(key, record))

        await retry_transient(
            "dead letter to Kafka", send, transient=TRANSIENT, give_up=self._given_up
        )

    # --- readings ------------------------------------------------------------------------
    async def handle_readings(self, records: Sequence[Inbound]) -> None:
        """One batch of bridge envelopes: decode, convert, store and detect, dead-letter
        what cannot be taken. Returns when every reading is stored or dead-lettered."""
        batch: list[Reading] = []
        for rec in records:
            batch += await self._decode(rec)
        await self.store(batch)
        self.stats.readings += len(batch)
        self.stats.batches += 1
        models = self.processor.models
        self.stats.model_errors = models.stats.errors if models is not None else 0
        self._report_stats()

    async def _decode(self, rec: Inbound) -> list[Reading]:
        try:
            packs = decode_envelope(rec.value or b"")
        except Exception as exc:  # any undecodable record is dead-lettered
            await self._refuse(rec, rec.key, exc, rec.value)
            return []
        out: list[Reading] = []
        for eid, items in packs:
            for item in items:
                try:
                    out.append(normalise(eid, item, self.catalogue))
                except Exception as exc:  # one bad reading, not the batch
                    await self._refuse(rec, eid.encode("utf-8", "replace"), exc, item)
        return out

    async def _refuse(self, rec: Inbound, key: bytes | None, exc: Exception, payload: Any) -> None:
        reason = exc.reason if isinstance(exc, InvalidReading) else "bad_reading"
        detail = exc.detail if isinstance(exc, InvalidReading) else f"{type(exc).__name__}: {exc}"
        await self.dead_letter(rec.source, key, reason, detail, payload, rec.kafka)

    async def store(self, readings: list[Reading]) -> None:
        """Store ``readings``; when the batch fails for a reason that will not pass, halve
        it (in time order, so that each half is detected on in order) until the reading
        that fails alone is found."""
        if not readings:
            return

        async def body(conn: psycopg.AsyncConnection[Any]) -> BatchOutcome:
            return await self.processor.process(conn, readings, publish=self.publish)

        try:
            outcome = await self.transaction("readings", body)
        except TRANSIENT:
            raise  # only when stopping: the batch is not acknowledged, so it comes again
        except Exception as exc:  # isolate the reading that fails
            if len(readings) > 1:
                log.warning(
                    "batch failed; isolating the reading that fails",
                    readings=len(readings),
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
                readings = sorted(readings, key=lambda r: r.ts)
                half = len(readings) // 2
                await self.store(readings[:half])
                await self.store(readings[half:])
                return
            [r] = readings
            log.error(
                "reading cannot be processed",
                enterprise=r.enterprise_id,
                sensor=r.sensor_id,
                exc_info=exc,
            )
            self.stats.isolated += 1
            await self.dead_letter(
                f"sensor:{r.sensor_id}",
                r.enterprise_id.encode(),
                "unprocessable",
                f"{type(exc).__name__}: {exc}",
                _reading_record(r),
            )
            return
        for reading, refusal in outcome.refused:
            await self.dead_letter(
                f"sensor:{reading.sensor_id}",
                reading.enterprise_id.encode(),
                refusal.reason,
                refusal.detail,
                _reading_record(reading),
            )
        for reading, error in outcome.failed:  # stored, but the rules could not judge it
            await self.dead_letter(
                f"sensor:{reading.sensor_id}",
                reading.enterprise_id.encode(),
                "detection_failed",
                f"stored; detection raised {type(error).__name__}: {error}",
                _reading_record(reading),
            )
        if outcome.late:
            log.warning("readings stored but too late for detection", count=outcome.late)
        self.stats.late += outcome.late
        self.stats.stored += outcome.stored
        self.stats.detect_s += outcome.detect_s
        self.stats.model_s += outcome.model_s

    # --- reports -------------------------------------------------------------------------
    async def handle_report(self, rec: Inbound) -> None:
        """A worker's report from the app: stored; an SOS or man-down opens an alert."""
        try:
            record, alert = parse_report(rec.value or b"", zones=self.zones)
        except Exception as exc:  # a bad report is dead-lettered, not fatal
            await self._refuse(rec, rec.key, exc, rec.value)
            return

        async def body(conn: psycopg.AsyncConnection[Any]) -> ReportStored:
            stored = await store_report(conn, record)
            # Only a report stored now raises its alert: the same report again (an app
            # that sent it twice, a redelivery after the commit) must not open a second
            # alert or tell anyone again. A redelivery whose first try rolled back stores
            # it now; one whose publish went out before the rollback repeats that change
            # exactly (same key, action and ts), which the notifier tells once.
            if stored == "new" and alert is not None:
                await apply_machine_events(conn, [alert], self.processor.lifecycle)
                await self.publish([alert])
            return stored

        try:
            stored = await self.transaction("report", body)
        except TRANSIENT:
            raise
        except Exception as exc:  # the database refused this one report
            log.error("report cannot be stored", source=rec.source, exc_info=exc)
            await self.dead_letter(
                rec.source, rec.key, "unprocessable", f"{type(exc).__name__}: {exc}", rec.value
            )
            return
        if stored == "taken":
            await self.dead_letter(
                rec.source,
                rec.key,
                "report_id_taken",
                f"report id {record.report_id!r} is another worker's report",
                rec.value,
                rec.kafka,
            )
            return
        if stored == "again":
            log.info(
                "report stored before", enterprise=record.enterprise_id, report=record.report_id
            )
            return
        if alert is not None:
            log.warning(
                "sos alert",
                enterprise=record.enterprise_id,
                worker=record.worker_id,
                kind=record.kind,
                key=alert.key,
            )

    # --- timers --------------------------------------------------------------------------
    async def checkpoint(self) -> None:
        if self.processor.detector.enterprises():
            await self.transaction("checkpoint", self.processor.checkpoint_all)

    async def on_silence(self, idle_s: float) -> None:
        """If nothing at all arrives, event time still passes: sensors go stale.

        Each enterprise's watermark normally moves with its readings; after ``idle_s``
        of wall-clock silence they all move on by the silence, so a plant whose every
        sensor (or whose gateway, or the bridge) went quiet is reported stale.
        """
        processor = self.processor
        idle = time.time() - processor.last_batch_wall
        if processor.detector.watermark is None or idle < idle_s:
            return

        async def body(conn: psycopg.AsyncConnection[Any]) -> None:
            await self.publish(await processor.advance(conn, idle))

        await self.transaction("silence", body)
        processor.last_batch_wall = time.time()

    def on_rebalance(self) -> None:
        """Partitions may have moved: drop state we may no longer own; it is restored from
        its checkpoint when its readings arrive here again."""
        self.processor.forget(self.processor.detector.enterprises())
        self.ready = True

    async def heartbeat(self) -> None:
        """Tell the database this worker is alive (and ready): walls in another place
        read it (`storage.components`)."""
        pool = await self._open()
        async with pool.connection(timeout=5) as conn:
            await components.beat(
                conn, name=self._name, kind="worker", ready=self.ready, started_at=self._started
            )

    # --- counters --------------------------------------------------------------------------
    def write_stats(self) -> None:
        if self._state_dir is not None:
            write_stats(self._state_dir, self._name, asdict(self.stats))

    def _report_stats(self) -> None:
        now = time.monotonic()
        if now - self._last_file > 2:
            self._last_file = now
            self.write_stats()
        if now - self._last_log > 10:
            self._last_log = now
            s = self.stats
            log.info(
                "worker stats",
                detection_us_per_reading=round(1e6 * s.detect_s / max(1, s.stored), 1),
                model_us_per_reading=round(1e6 * s.model_s / max(1, s.stored), 1),
                **{k: v for k, v in asdict(s).items() if k not in ("detect_s", "model_s")},
            )


def _reading_record(r: Reading) -> dict[str, Any]:
    return {
        "sensor_id": r.sensor_id,
        "ts": r.ts.isoformat(),
        "hazard": r.hazard,
        "value": r.raw_value,
        "unit": r.raw_unit,
        "seq": r.seq,
    }
