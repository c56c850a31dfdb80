"""Waiting between retries: one policy (exponential, capped, jittered) and one retry loop.

Every component that must not give up — the bridge writing to Kafka, the
worker writing to PostgreSQL, the notifier recording deliveries, a delivery
waiting to be sent again — waits by the same `Backoff`, and the components
that retry an operation until it succeeds do so with `retry_transient`.

>>> b = Backoff(rng=random.Random(7))
>>> [round(b(n), 2) for n in range(1, 9)]
[0.93, 1.72, 4.24, 6.63, 16.23, 30.28, 52.68, 60.0]
>>> Backoff(initial_s=0.5, max_s=10.0, jitter=0.0)(6)
10.0
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

__all__ = ["STREAM_BACKOFF", "Backoff", "retry_transient"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


@dataclass(slots=True)
class Backoff:
    """Delay before retry ``n`` (after attempt ``n`` failed): exponential, capped, jittered.

    >>> Backoff(jitter=0.0)(3)
    4.0
    """

    initial_s: float = 1.0
    factor: float = 2.0
    max_s: float = 60.0
    jitter: float = 0.2  # ± this fraction, so retries of many clients spread out
    rng: random.Random = field(default_factory=random.Random)

    def __call__(self, attempt: int) -> float:
        base = self.initial_s * self.factor ** max(0, min(attempt - 1, 64))
        jittered = base * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
        return min(self.max_s, jittered)


#: What the stream's own loops wait by: quick first retries, never more than 10 s apart.
STREAM_BACKOFF = Backoff(initial_s=0.5, max_s=10.0)


async def retry_transient(
    what: str,
    operation: Callable[[], Awaitable[T]],
    *,
    transient: tuple[type[BaseException], ...],
    backoff: Backoff = STREAM_BACKOFF,
    give_up: Callable[[], bool] | None = None,
    **context: object,
) -> T:
    """Run ``operation`` until it succeeds, waiting by ``backoff`` after each ``transient``
    failure (logged with ``what`` and ``context``); anything else propagates at once.

    ``give_up`` is asked after each failure: when it answers true (the process is
    stopping), the failure propagates instead of being retried.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except transient as exc:
            if give_up is not None and give_up():
                raise
            attempt += 1
            delay = backoff(attempt)
            log.error(
                f"{what} failed; retrying",
                error=repr(exc)[:500],
                attempt=attempt,
                retry_in_s=round(delay, 2),
                **context,
            )
            await asyncio.sleep(delay)
