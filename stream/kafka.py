"""Kafka plumbing shared by the bridge, the worker and the launcher: topics, readiness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from core.errors import ConfigError

__all__ = ["ensure_topics", "wait_for_kafka"]

log = structlog.get_logger(__name__)


async def wait_for_kafka(bootstrap: str, *, timeout_s: float = 60.0) -> None:
    """Wait until the cluster answers a metadata request; raise `ConfigError` after timeout."""
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if time.monotonic() > deadline:
                raise ConfigError(f"Kafka at {bootstrap} not reachable: {exc!r}") from None
            log.info("waiting for kafka", bootstrap=bootstrap, error=repr(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            await admin.close()


async def ensure_topics(bootstrap: str, names: Iterable[str], *, partitions: int) -> list[str]:
    """Create the topics that do not exist yet, with an explicit partition count.

    Returns the names created. Existing topics are left as they are (their
    partition count is not changed: that would move keys between partitions).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in dict.fromkeys(names) if n not in existing]
        created = []
        for name in wanted:
            try:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1)]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another process won the race
        if created:
            log.info("kafka topics created", topics=created, partitions=partitions)
        return created
    finally:
        await admin.close()
