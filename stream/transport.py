"""Faust's aiokafka transport with a short fetch wait, registered as ``qorgau-kafka://``.

faust-streaming hard-codes ``fetch_max_wait_ms=1500`` for worker consumers.
A broker that holds a fetch until that wait expires (Tansu does, whatever the
minimum bytes) then adds up to 1.5 s to every reading's way to storage. Real
Kafka returns a fetch as soon as data arrives, so a short wait only costs a few
more idle fetch requests there.
"""

from __future__ import annotations

from typing import Any

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka

__all__ = ["SCHEME", "Transport", "register"]

SCHEME = "qorgau-kafka"
#: Set from ``Settings.worker_fetch_max_wait_ms`` by `register`.
FETCH_MAX_WAIT_MS = 100


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka reads this when it builds its fetcher in start(), after this.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = _Consumer
    default_port = 9092


def register(fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS) -> None:
    """Make ``qorgau-kafka://host:port`` a Faust broker URL."""
    global FETCH_MAX_WAIT_MS
    FETCH_MAX_WAIT_MS = fetch_max_wait_ms
    drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
