"""The Faust worker: readings -> storage + safety detection; app reports -> SOS alerts.

``store-readings`` takes up to ``worker_batch_messages`` bridge envelopes (each
packing many readings) or whatever arrived within ``worker_batch_within_s``,
converts every reading to its canonical unit (what cannot be accepted goes to
the dead-letter topic with its topic/partition/offset), then, in one database
transaction, stores the batch, runs the safety detection on every reading
never stored before, stores and publishes its alert changes on the ``alerts``
topic (keyed by enterprise, each with a stable alert key), then runs the
online models over the same readings (anomaly scores, anomaly and drift
alerts, published the same way), writes due checkpoints, and commits. Faust acknowledges the
events only after the loop body returns, i.e. after the commit; a database
outage makes the agent wait and retry, never skip.

Detection state lives in memory per enterprise and is checkpointed to
PostgreSQL; a worker that takes over a partition restores it (checkpoint +
the readings stored after it), so a restart does not forget the shift.

``store-reports`` handles workers' reports one by one: an SOS or man-down
becomes a critical alert within the same second.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import faust
import orjson
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from alerts.lifecycle import LifecyclePolicy, apply_machine_events
from core.alarms import AlertEvent
from core.catalogue import Catalogue
from core.errors import ConfigError, InvalidReading
from core.limits import Limits
from core.reference import ReferenceData
from core.settings import Settings
from core.types import Reading
from storage.detection import store_report
from stream import transport
from stream.codec import dead_letter, decode_envelope, normalise
from stream.detection.detector import Detector
from stream.detection.models import ModelBank, ModelSettings
from stream.kafka import ensure_topics, wait_for_kafka
from stream.processing import BatchProcessor
from stream.readiness import clear_ready, mark_ready, write_stats
from stream.reports import parse_report

__all__ = ["build_app", "run_worker"]

log = structlog.get_logger(__name__)


def build_app(
    settings: Settings, catalogue: Catalogue, limits: Limits, reference: ReferenceData
) -> faust.App:
    """Build the Faust app with its topics and agents (no I/O until the worker starts)."""
    if not settings.database_url:
        raise ConfigError("the worker needs QORGAU_DATABASE_URL")
    dsn = settings.database_url
    transport.register(settings.worker_fetch_max_wait_ms)
    datadir = settings.state_dir / "faust" / (settings.instance or "worker")
    datadir.parent.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.worker_app_id,
        broker=f"{transport.SCHEME}://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.kafka_partitions,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        # Join the group in seconds, not the default minute.
        broker_rebalance_timeout=5.0,
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        web_enabled=settings.worker_web_port is not None,
        web_port=settings.worker_web_port or 6066,
        web_host="127.0.0.1",
        producer_acks=-1,
    )

    def raw_topic(name: str) -> Any:
        return app.topic(
            name, value_serializer="raw", key_serializer="raw", partitions=settings.kafka_partitions
        )

    readings_topic = raw_topic(settings.readings_topic)
    reports_topic = raw_topic(settings.reports_topic)
    deadletter_topic = raw_topic(settings.deadletter_topic)
    alerts_topic = raw_topic(settings.alerts_topic)
    zones = {z.id: e.id for e in reference.enterprises for z in e.zones}
    detector = Detector(catalogue, limits, reference, clock=time.time)
    models = (
        ModelBank(catalogue, limits, ModelSettings.from_settings(settings), reference)
        if settings.models
        else None
    )
    processor = BatchProcessor(
        detector,
        checkpoint_every_s=settings.worker_checkpoint_s,
        models=models,
        model_checkpoint_every_s=settings.model_checkpoint_s,
        lifecycle=LifecyclePolicy(reopen_within=timedelta(minutes=settings.alert_reopen_min)),
    )
    stats: dict[str, float] = {
        "readings": 0,
        "stored": 0,
        "dead_letters": 0,
        "alerts": 0,
        "detect_s": 0.0,
        "model_s": 0.0,
        "model_errors": 0,
        "late": 0,
        "batches": 0,
    }
    pool_box: dict[str, AsyncConnectionPool] = {}

    async def pool() -> AsyncConnectionPool:
        if "pool" not in pool_box:
            p = AsyncConnectionPool(
                dsn, min_size=1, max_size=3, open=False, check=AsyncConnectionPool.check_connection
            )
            await p.open(wait=True, timeout=60)
            pool_box["pool"] = p
        return pool_box["pool"]

    async def to_dead_letter(
        source: str,
        key: bytes | None,
        reason: str,
        detail: str,
        payload: Any,
        kafka: dict[str, Any] | None = None,
    ) -> None:
        stats["dead_letters"] += 1
        log.warning("dead letter", stage="worker", source=source, reason=reason, detail=detail)
        await deadletter_topic.send(
            key=key,
            value=dead_letter(
                stage="worker",
                reason=reason,
                detail=detail,
                source=source,
                payload=payload,
                extra={"kafka": kafka} if kafka else None,
            ),
        )

    def origin(event: Any) -> tuple[str, dict[str, Any]]:
        m = event.message
        return (
            f"kafka:{m.topic}/{m.partition}@{m.offset}",
            {"topic": m.topic, "partition": m.partition, "offset": m.offset},
        )

    async def publish(alerts: list[AlertEvent]) -> None:
        """Publish alert changes and wait for Kafka: the caller commits only after this."""
        futures = [
            await alerts_topic.send(
                key=a.enterprise_id.encode(), value=orjson.dumps(a.wire_record())
            )
            for a in alerts
        ]
        for fut in futures:
            await fut
        stats["alerts"] += len(alerts)

    async def with_retry(what: str, body: Any) -> Any:
        delay = 0.5
        while True:
            try:
                p = await pool()
                async with p.connection() as conn, conn.transaction():
                    return await body(conn)
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
                log.error("storage unavailable; retrying", what=what, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    @app.on_rebalance_complete.connect
    async def _ready(*_a: Any, **_k: Any) -> None:
        # Partitions may have moved: drop state we may no longer own; it is restored
        # from its checkpoint when its readings arrive here again.
        processor.forget(detector.enterprises())
        mark_ready(settings.state_dir, settings.instance or "worker")

    @app.agent(readings_topic, name="store-readings", concurrency=settings.worker_concurrency)
    async def store_readings(stream: Any) -> None:
        last = last_file = time.monotonic()
        async for events in stream.take_events(
            settings.worker_batch_messages, within=settings.worker_batch_within_s
        ):
            batch: list[Reading] = []
            for event in events:
                source, kafka = origin(event)
                raw = event.value
                try:
                    packs = decode_envelope(raw)
                except InvalidReading as exc:
                    await to_dead_letter(source, event.key, exc.reason, exc.detail, raw, kafka)
                    continue
                for eid, items in packs:
                    for item in items:
                        try:
                            batch.append(normalise(eid, item, catalogue))
                        except (InvalidReading, KeyError, TypeError, ValueError) as exc:
                            reason = (
                                exc.reason if isinstance(exc, InvalidReading) else "bad_reading"
                            )
                            await to_dead_letter(
                                source, eid.encode(), reason, str(exc), item, kafka
                            )

            async def body(conn: psycopg.AsyncConnection, readings: list[Reading] = batch) -> Any:
                return await processor.process(conn, readings, publish=publish)

            outcome = await with_retry("readings", body)
            for reading, refusal in outcome.refused:
                await to_dead_letter(
                    f"sensor:{reading.sensor_id}",
                    reading.enterprise_id.encode(),
                    refusal.reason,
                    refusal.detail,
                    {
                        "sensor_id": reading.sensor_id,
                        "ts": reading.ts.isoformat(),
                        "hazard": reading.hazard,
                        "value": reading.raw_value,
                        "unit": reading.raw_unit,
                        "seq": reading.seq,
                    },
                )
            if outcome.late:
                log.warning(
                    "readings stored but too late for detection",
                    count=outcome.late,
                    lateness_s=limits.health.lateness_s,
                )
            stats["late"] += outcome.late
            stats["readings"] += len(batch)
            stats["stored"] += outcome.stored
            stats["detect_s"] += outcome.detect_s
            stats["model_s"] += outcome.model_s
            stats["model_errors"] = models.stats.errors if models is not None else 0
            stats["batches"] += 1
            now = time.monotonic()
            if now - last_file > 2:
                last_file = now
                write_stats(settings.state_dir, settings.instance or "worker", stats)
            if now - last > 10:
                last = now
                per = 1e6 * stats["detect_s"] / max(1.0, stats["stored"])
                per_model = 1e6 * stats["model_s"] / max(1.0, stats["stored"])
                log.info(
                    "worker stats",
                    detection_us_per_reading=round(per, 1),
                    model_us_per_reading=round(per_model, 1),
                    **{k: v for k, v in stats.items() if k not in ("detect_s", "model_s")},
                )

    @app.agent(reports_topic, name="store-reports")
    async def store_reports(stream: Any) -> None:
        async for event in stream.events():
            source, kafka = origin(event)
            try:
                record, alert = parse_report(event.value, zones=zones)
            except InvalidReading as exc:
                await to_dead_letter(source, event.key, exc.reason, exc.detail, event.value, kafka)
                continue

            async def body(
                conn: psycopg.AsyncConnection,
                record: Any = record,
                alert: AlertEvent | None = alert,
            ) -> None:
                await store_report(conn, record)
                if alert is not None:
                    await apply_machine_events(conn, [alert], processor.lifecycle)
                    await publish([alert])

            await with_retry("report", body)
            if alert is not None:
                log.warning(
                    "sos alert",
                    enterprise=record.enterprise_id,
                    worker=record.worker_id,
                    kind=record.kind,
                    key=alert.key,
                )

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]
    async def _checkpoint_all() -> None:
        if detector.enterprises():
            await with_retry("checkpoint", processor.checkpoint_all)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def _silence() -> None:
        """If nothing at all arrives, event time still passes: sensors go stale.

        Each enterprise's watermark normally moves with its readings; after
        ``worker_idle_s`` of wall-clock silence they all move on by the silence, so a plant whose every
        sensor (or whose gateway, or the bridge) went quiet is reported stale.
        """
        idle = time.time() - processor.last_batch_wall
        if detector.watermark is None or idle < settings.worker_idle_s:
            return

        async def body(conn: psycopg.AsyncConnection) -> None:
            alerts = await processor.advance(conn, idle)
            await publish(alerts)

        await with_retry("silence", body)
        processor.last_batch_wall = time.time()

    @app.on_before_shutdown.connect
    async def _close(*_a: Any, **_k: Any) -> None:
        if "pool" in pool_box and detector.enterprises():
            try:  # a clean stop keeps every model's learning up to now
                p = pool_box["pool"]
                async with p.connection() as conn, conn.transaction():
                    await processor.checkpoint_all(conn, models=True)
            except psycopg.Error as exc:
                log.error("final checkpoint failed", error=str(exc))
        if "pool" in pool_box:
            await pool_box.pop("pool").close()

    return app


def run_worker(
    settings: Settings, catalogue: Catalogue, limits: Limits, reference: ReferenceData
) -> None:
    """Run a worker until SIGINT/SIGTERM (Faust's Worker owns the loop and signals)."""
    clear_ready(settings.state_dir, settings.instance or "worker")
    asyncio.run(wait_for_kafka(settings.kafka_bootstrap))
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap,
            [
                settings.readings_topic,
                settings.reports_topic,
                settings.deadletter_topic,
                settings.alerts_topic,
            ],
            partitions=settings.kafka_partitions,
        )
    )
    app = build_app(settings, catalogue, limits, reference)
    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, override_logging=False
    )
    try:
        worker.execute_from_commandline()
    finally:
        clear_ready(settings.state_dir, settings.instance or "worker")
