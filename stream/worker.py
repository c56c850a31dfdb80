"""The Faust worker: readings -> storage + safety detection; app reports -> SOS alerts.

A thin Faust app around `stream.runtime.WorkerRuntime`, which does the work:
``store-readings`` takes up to ``worker_batch_messages`` bridge envelopes (each
packing many readings) or whatever arrived within ``worker_batch_within_s``
and hands them over as one batch — converted to canonical units, stored in one
transaction with the safety detection's alert changes (published on the
``alerts`` topic before any model runs), the online models' scores and alerts,
and due checkpoints. Faust acknowledges the events only after the runtime
returns, i.e. after the commit or the dead letter; a database outage makes the
agent wait and retry, never skip. ``store-reports`` handles workers' reports
one by one: an SOS or man-down becomes a critical alert within the same second.

Detection state lives in memory per enterprise and is checkpointed to
PostgreSQL; a worker that takes over a partition restores it (checkpoint +
the readings stored after it), so a restart does not forget the shift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import faust
import structlog

from alerts.lifecycle import LifecyclePolicy
from core.catalogue import Catalogue
from core.errors import ConfigError
from core.limits import Limits
from core.reference import ReferenceData
from core.settings import Settings
from stream import transport
from stream.detection.detector import Detector
from stream.detection.models import ModelBank, ModelSettings
from stream.kafka import ensure_topics, guard_stale_commits, wait_for_kafka
from stream.processing import BatchProcessor
from stream.readiness import clear_ready, mark_ready
from stream.runtime import Inbound, Send, WorkerRuntime

__all__ = ["HEARTBEAT_S", "build_app", "run_worker"]

log = structlog.get_logger(__name__)
HEARTBEAT_S = 5.0  # a worker writes its heartbeat row (storage.components) this often


def _inbound(event: Any) -> Inbound:
    m = event.message
    return Inbound(event.value, event.key, m.topic, m.partition, m.offset)


def _sender(topic: Any) -> Send:
    async def send(key: bytes | None, value: bytes) -> Awaitable[Any]:
        return await topic.send(key=key, value=value)  # type: ignore[no-any-return]

    return send


def build_runtime(
    settings: Settings,
    catalogue: Catalogue,
    limits: Limits,
    reference: ReferenceData,
    *,
    send_alert: Send,
    send_dead_letter: Send,
) -> WorkerRuntime:
    """The worker's runtime for ``settings`` (no I/O until it is used)."""
    if not settings.database_url:
        raise ConfigError("the worker needs QORGAU_DATABASE_URL")
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
    return WorkerRuntime(
        settings.database_url,
        processor,
        catalogue,
        zones={z.id: e.id for e in reference.enterprises for z in e.zones},
        send_alert=send_alert,
        send_dead_letter=send_dead_letter,
        pool_size=settings.worker_pool_size,
        state_dir=settings.state_dir,
        name=settings.instance or "worker",
    )


def build_app(
    settings: Settings, catalogue: Catalogue, limits: Limits, reference: ReferenceData
) -> faust.App:
    """Build the Faust app with its topics and agents (no I/O until the worker starts)."""
    transport.register(settings.worker_fetch_max_wait_ms)
    guard_stale_commits()
    name = settings.instance or "worker"
    datadir = settings.state_dir / "faust" / name
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

    def raw_topic(topic: str) -> Any:
        return app.topic(
            topic,
            value_serializer="raw",
            key_serializer="raw",
            partitions=settings.kafka_partitions,
        )

    readings_topic = raw_topic(settings.readings_topic)
    reports_topic = raw_topic(settings.reports_topic)
    runtime = build_runtime(
        settings,
        catalogue,
        limits,
        reference,
        send_alert=_sender(raw_topic(settings.alerts_topic)),
        send_dead_letter=_sender(raw_topic(settings.deadletter_topic)),
    )

    @app.on_rebalance_complete.connect
    async def _ready(*_a: Any, **_k: Any) -> None:
        runtime.on_rebalance()
        mark_ready(settings.state_dir, name)

    @app.agent(readings_topic, name="store-readings", concurrency=settings.worker_concurrency)
    async def store_readings(stream: Any) -> None:
        async for events in stream.take_events(
            settings.worker_batch_messages, within=settings.worker_batch_within_s
        ):
            await runtime.handle_readings([_inbound(e) for e in events])

    @app.agent(reports_topic, name="store-reports")
    async def store_reports(stream: Any) -> None:
        async for event in stream.events():
            await runtime.handle_report(_inbound(event))

    @app.timer(interval=30.0)  # type: ignore[untyped-decorator]
    async def _checkpoint_all() -> None:
        await _logged("checkpoint", runtime.checkpoint())

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def _silence() -> None:
        await _logged("silence", runtime.on_silence(settings.worker_idle_s))

    @app.timer(interval=HEARTBEAT_S)  # type: ignore[untyped-decorator]
    async def _heartbeat() -> None:
        await _logged("heartbeat", runtime.heartbeat())

    @app.on_before_shutdown.connect
    async def _close(*_a: Any, **_k: Any) -> None:
        await runtime.close()

    return app


async def _logged(what: str, job: Awaitable[None]) -> None:
    """A timer's round that fails is logged; the next round comes anyway."""
    try:
        await job
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception(f"{what} failed; trying again at the next round")


def run_worker(
    settings: Settings, catalogue: Catalogue, limits: Limits, reference: ReferenceData
) -> None:
    """Run a worker until SIGINT/SIGTERM (Faust's Worker owns the loop and signals)."""
    name = settings.instance or "worker"
    clear_ready(settings.state_dir, name)
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
        clear_ready(settings.state_dir, name)
