"""Kafka plumbing shared by the bridge, the worker and the launcher: topics, readiness."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import structlog
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.consumer import group_coordinator
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from core.errors import ConfigError

__all__ = ["ensure_topics", "guard_stale_commits", "wait_for_kafka"]

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


_unguarded_commit: Any = None


def guard_stale_commits() -> None:
    """Never commit offsets of a group membership that is already gone.

    When a broker restarts with none of its state (the embedded Tansu keeps it in
    memory only), a group consumer learns from a heartbeat that its member id is
    unknown, resets itself to generation -1 and rejoins. A commit sent in that
    moment (Faust's commit timer, a commit on revoke, the notifier's commit after a
    batch) carries positions in the *old* log, and the restarted broker's empty
    group accepts it: after the rejoin the group would start the new log at that
    position and silently skip everything below it. Such a commit is refused here
    instead (aiokafka reports it as a failed commit, Faust and the notifier carry on
    without it); the batch is then committed by the new membership, or read again,
    which storage and deliveries take once. Only group-assigned consumers are
    concerned. Idempotent.
    """
    global _unguarded_commit
    coordinator = group_coordinator.GroupCoordinator
    if _unguarded_commit is not None:
        return
    original = coordinator._do_commit_offsets
    _unguarded_commit = original

    async def commit_if_still_member(self: Any, assignment: Any, offsets: Any) -> Any:
        if self._subscription.partitions_auto_assigned() and (
            self.generation < 0 or not assignment.active
        ):
            log.warning(
                "offset commit refused: this group membership is gone",
                group=self.group_id,
                generation=self.generation,
            )
            raise kafka_errors.UnknownMemberIdError()
        return await original(self, assignment, offsets)

    coordinator._do_commit_offsets = commit_if_still_member


async def partition_counts(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """How many partitions each of ``topics`` has (0: it does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
        return {
            d["topic"]: (len(d["partitions"]) if d.get("error_code", 0) == 0 else 0)
            for d in described
        }
    finally:
        await admin.close()


async def recreate_topics(bootstrap: str, names: Iterable[str], *, partitions: int) -> None:
    """Delete ``names`` (whatever they hold) and create them again with ``partitions``."""
    names = list(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    await ensure_topics(bootstrap, names, partitions=partitions)


async def consumer_lag(bootstrap: str, groups: dict[str, list[str]]) -> int | None:
    """Messages of the topics each group has not committed yet, summed; None when unknown.

    Read the way a member of the group would (a consumer of the group with the
    partitions assigned to it by hand, which joins nothing and commits nothing):
    Tansu answers the admin API's offset request in a form aiokafka cannot read. The
    end of each partition is the high watermark of a fetch (Tansu answers ListOffsets
    with the base offset of its last batch, not the log end).
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    lag = 0
    for group, topics in groups.items():
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(await _partitions(consumer, topic))
            ]
            if not tps:
                continue
            consumer.assign(tps)
            committed = {tp: await consumer.committed(tp) or 0 for tp in tps}
            for tp, offset in committed.items():
                consumer.seek(tp, offset)
            await consumer.getmany(timeout_ms=1000, max_records=1)
            for tp, offset in committed.items():
                end = consumer.highwater(tp)
                if end is None:
                    return None
                lag += max(0, end - offset)
        finally:
            await consumer.stop()
    return lag


async def _partitions(consumer: Any, topic: str) -> set[int]:
    known = consumer.partitions_for_topic(topic)
    if not known:
        await consumer._client.force_metadata_update()
        known = consumer.partitions_for_topic(topic)
    return set(known or ())
