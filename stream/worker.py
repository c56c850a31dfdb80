"""The Faust worker: readings from Kafka -> units -> storage, in batches.

The agent takes up to ``worker_batch_messages`` bridge envelopes (each packing
many readings) or whatever arrived within ``worker_batch_within_s``, converts
every reading to its canonical unit, sends what cannot be accepted to the
dead-letter topic with its topic/partition/offset, and COPYs the rest into
storage in one transaction. Faust acknowledges the events only after the loop
body returns, i.e. after storage has committed; a database outage makes the
agent wait and retry, never skip.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from core.catalogue import Catalogue
from core.errors import ConfigError, InvalidReading
from core.settings import Settings
from core.types import Reading
from storage.ingest import ingest_readings
from stream import transport
from stream.codec import dead_letter, decode_envelope, normalise
from stream.kafka import ensure_topics, wait_for_kafka
from stream.readiness import clear_ready, mark_ready

__all__ = ["build_app", "run_worker"]

log = structlog.get_logger(__name__)


def build_app(settings: Settings, catalogue: Catalogue) -> faust.App:
    """Build the Faust app with its topics and agents (no I/O until the worker starts)."""
    if not settings.database_url:
        raise ConfigError("the worker needs QORGAU_DATABASE_URL")
    dsn = settings.database_url
    transport.register(settings.worker_fetch_max_wait_ms)
    app = faust.App(
        settings.worker_app_id,
        broker=f"{transport.SCHEME}://{settings.kafka_bootstrap}",
        store="memory://",
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
    readings_topic = app.topic(
        settings.readings_topic,
        value_serializer="raw",
        key_serializer="raw",
        partitions=settings.kafka_partitions,
    )
    deadletter_topic = app.topic(
        settings.deadletter_topic,
        value_serializer="raw",
        key_serializer="raw",
        partitions=settings.kafka_partitions,
    )
    stats = {"readings": 0, "stored": 0, "dead_letters": 0}

    async def to_dead_letter(
        event: Any, key: bytes | None, reason: str, detail: str, payload: Any
    ) -> None:
        msg = event.message
        stats["dead_letters"] += 1
        log.warning(
            "dead letter",
            stage="worker",
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            reason=reason,
            detail=detail,
        )
        await deadletter_topic.send(
            key=key,
            value=dead_letter(
                stage="worker",
                reason=reason,
                detail=detail,
                source=f"kafka:{msg.topic}/{msg.partition}@{msg.offset}",
                payload=payload,
                extra={
                    "kafka": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
                },
            ),
        )

    async def store(pool: AsyncConnectionPool, readings: list[Reading]) -> int:
        delay = 0.5
        while True:
            try:
                async with pool.connection() as conn:
                    return await ingest_readings(conn, readings)
            except psycopg.OperationalError as exc:
                log.error("storage unavailable; retrying", error=str(exc), readings=len(readings))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    @app.on_rebalance_complete.connect
    async def _ready(*_a: Any, **_k: Any) -> None:
        mark_ready(settings.state_dir, "worker")

    @app.agent(readings_topic, name="store-readings", concurrency=settings.worker_concurrency)
    async def store_readings(stream: Any) -> None:
        pool = AsyncConnectionPool(
            dsn, min_size=1, max_size=2, open=False, check=AsyncConnectionPool.check_connection
        )
        await pool.open(wait=True, timeout=60)
        last = time.monotonic()
        try:
            async for events in stream.take_events(
                settings.worker_batch_messages, within=settings.worker_batch_within_s
            ):
                batch: list[Reading] = []
                for event in events:
                    raw = event.value
                    try:
                        eid, items = decode_envelope(raw)
                    except InvalidReading as exc:
                        await to_dead_letter(event, event.key, exc.reason, exc.detail, raw)
                        continue
                    for item in items:
                        try:
                            batch.append(normalise(eid, item, catalogue))
                        except (InvalidReading, KeyError, TypeError, ValueError) as exc:
                            reason = (
                                exc.reason if isinstance(exc, InvalidReading) else "bad_reading"
                            )
                            await to_dead_letter(event, eid.encode(), reason, str(exc), item)
                stats["readings"] += len(batch)
                stats["stored"] += await store(pool, batch)
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    log.info("worker stats", **stats)
        finally:
            await pool.close()

    return app


def run_worker(settings: Settings, catalogue: Catalogue) -> None:
    """Run a worker until SIGINT/SIGTERM (Faust's Worker owns the loop and signals)."""
    clear_ready(settings.state_dir, "worker")
    asyncio.run(wait_for_kafka(settings.kafka_bootstrap))
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap,
            [settings.readings_topic, settings.deadletter_topic],
            partitions=settings.kafka_partitions,
        )
    )
    app = build_app(settings, catalogue)
    worker = faust.Worker(
        app, loglevel=settings.log_level.lower(), quiet=True, override_logging=False
    )
    try:
        worker.execute_from_commandline()
    finally:
        clear_ready(settings.state_dir, "worker")
