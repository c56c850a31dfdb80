"""The notifier: alert changes from Kafka to people, plus what time brings.

``qorgau notifier`` consumes ``qorgau.alerts`` in a consumer group (run as
many as you like: Kafka spreads the partitions, and every delivery is
idempotent), hands each change to `alerts.dispatcher.Dispatcher`, and commits
the offsets once the deliveries are *recorded* (sending goes on in the
background, and a crash leaves rows another notifier finishes). Beside it, a
tick every ``QORGAU_NOTIFIER_TICK_S`` runs escalations, reminders, late routes
and digests, and a sweep every ``QORGAU_NOTIFIER_RESUME_S`` finishes deliveries
a dead process left behind.

A change older than ``QORGAU_NOTIFIER_MAX_AGE_S`` (event time) is logged and
not sent: after a long outage, nobody should be woken for yesterday's alarms —
the open ones are in their list, and escalation still applies to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError
from psycopg_pool import AsyncConnectionPool

from alerts.channels import (
    AppriseChannel,
    Channel,
    EmailChannel,
    MqttChannel,
    WebhookChannel,
    WebPushChannel,
)
from alerts.channels.webpush import resolve_vapid_key
from alerts.delivery import Deliverer
from alerts.dispatcher import Dispatcher
from alerts.routing import Routing
from core.alarms import AlertEvent
from core.backoff import retry_transient
from core.catalogue import Catalogue
from core.errors import ConfigError
from core.settings import Settings
from stream.kafka import ensure_topics, guard_stale_commits, wait_for_kafka
from stream.readiness import mark_ready, write_stats
from stream.runtime import TRANSIENT

__all__ = ["build_channels", "run_notifier"]

log = structlog.get_logger("qorgau.notifier")


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Every delivery channel the settings allow (e-mail only with ``QORGAU_SMTP_URL``)."""
    vapid = resolve_vapid_key(
        settings.vapid_private_key.get_secret_value() if settings.vapid_private_key else None,
        settings.state_dir,
        environment=settings.environment,
    )
    channels: dict[str, Channel] = {
        "webpush": WebPushChannel(vapid_private_key=vapid, subject=settings.vapid_subject),
        "webhook": WebhookChannel(default_secret=settings.webhook_secret.get_secret_value()),
        "mqtt": MqttChannel(
            host=settings.mqtt_host,
            port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            tls=settings.mqtt_tls,
            ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            client_id=f"qorgau-notifier-{settings.instance or 'main'}",
        ),
        "apprise": AppriseChannel(),
    }
    if settings.smtp_url:
        channels["email"] = EmailChannel.from_url(
            settings.smtp_url, sender=settings.smtp_from, starttls=settings.smtp_starttls or None
        )
    else:
        log.warning("no QORGAU_SMTP_URL: e-mail addresses are not written to")
    return channels


async def _every(seconds: float, what: str, job: Callable[[], Awaitable[Any]]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed round is logged; the next one comes anyway
            log.exception(f"{what} failed; trying again in {seconds:g} s")


async def run_notifier(
    settings: Settings, stop: asyncio.Event, *, catalogue: Catalogue, routing: Routing
) -> None:
    """Run until ``stop``; ``catalogue`` and ``routing`` are loaded by the caller (once)."""
    if settings.database_url is None:
        raise ConfigError("the notifier needs a database: set QORGAU_DATABASE_URL")
    name = settings.instance or "notifier"
    rules = routing
    await wait_for_kafka(settings.kafka_bootstrap)
    await ensure_topics(
        settings.kafka_bootstrap, [settings.alerts_topic], partitions=settings.kafka_partitions
    )
    guard_stale_commits()
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        settings.database_url,
        open=False,
        min_size=2,
        max_size=settings.notifier_pool_size,
        check=AsyncConnectionPool.check_connection,
        name="qorgau-notifier",
    )
    await pool.open(wait=True)
    deliverer = Deliverer(pool, build_channels(settings))
    dispatcher = Dispatcher(pool, deliverer, rules, catalogue, public_url=settings.public_url)
    consumer = AIOKafkaConsumer(
        settings.alerts_topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.notifier_group,
        client_id=f"qorgau-{name}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Tansu (and small clusters) otherwise take ~30 s to settle a group.
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=5000,
        fetch_max_wait_ms=50,
    )
    stats = {
        "changes": 0.0,
        "skipped_old": 0.0,
        "unreadable": 0.0,
        "failed": 0.0,
        "deliveries": 0.0,
    }
    background = [
        asyncio.create_task(_every(settings.notifier_tick_s, "tick", dispatcher.tick)),
        asyncio.create_task(_every(settings.notifier_resume_s, "resume", deliverer.resume_pending)),
    ]
    await consumer.start()
    try:
        while not consumer.assignment() and not stop.is_set():
            await consumer.getmany(timeout_ms=200)  # joins the group
        await deliverer.resume_pending()
        mark_ready(settings.state_dir, name)
        log.info("notifier ready", partitions=len(consumer.assignment()), routes=len(rules.routes))
        max_age = timedelta(seconds=settings.notifier_max_age_s)
        last_stats = time.monotonic()
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for messages in batches.values():
                for msg in messages:
                    await _handle(dispatcher, msg.value, max_age, stats, stop)
            if batches:
                try:
                    await consumer.commit()
                except CommitFailedError as exc:  # the group rebalanced: read again, sent once
                    log.warning(
                        "offsets not committed; the batch may be read again", error=str(exc)
                    )
            if time.monotonic() - last_stats > 1.0:
                write_stats(settings.state_dir, name, stats)
                last_stats = time.monotonic()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        with contextlib.suppress(Exception):
            await consumer.stop()
        await deliverer.close()
        await pool.close()
        write_stats(settings.state_dir, name, stats)
        log.info("notifier stopped", **stats)


async def _handle(
    dispatcher: Dispatcher,
    value: bytes | None,
    max_age: timedelta,
    stats: dict[str, float],
    stop: asyncio.Event,
) -> None:
    """One alert change: recorded as deliveries (retried while the database is away), or
    logged and skipped when it cannot be read or handled — never blocking the ones after."""
    try:
        change = AlertEvent.from_wire(orjson.loads(value or b""))
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
        stats["unreadable"] += 1
        log.error(
            "unreadable alert change; nobody told", error=str(exc), value=(value or b"")[:300]
        )
        return
    if datetime.now(UTC) - change.ts > max_age:
        stats["skipped_old"] += 1
        log.info("alert change too old to send", key=change.key, ts=change.ts.isoformat())
        return
    try:
        recorded = await retry_transient(
            "recording deliveries",
            lambda: dispatcher.handle(change),
            transient=TRANSIENT,
            give_up=stop.is_set,
            key=change.key,
        )
    except TRANSIENT:
        raise  # stopping: the change is not committed, so it comes again
    except Exception:
        stats["failed"] += 1
        log.exception("alert change could not be handled; nobody told", key=change.key)
        return
    stats["changes"] += 1
    stats["deliveries"] += len(recorded)
