"""Reading the stack's Kafka topics from tests."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from qorgau.launcher import Stack


async def consumer(stack: Stack, topic: str, *, from_start: bool) -> AIOKafkaConsumer:
    """A started, group-less consumer of ``topic``: from its start, or from its end."""
    c = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.settings.kafka_bootstrap,
        auto_offset_reset="earliest" if from_start else "latest",
        group_id=None,
        fetch_max_wait_ms=20,
    )
    await c.start()
    return c
