from __future__ import annotations

import asyncio

import pytest

from core.backoff import Backoff, retry_transient


async def test_transient_failures_are_retried_until_the_operation_succeeds() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "done"

    fast = Backoff(initial_s=0.001, jitter=0.0)
    assert (
        await retry_transient("demo", flaky, transient=(ConnectionError,), backoff=fast) == "done"
    )
    assert len(calls) == 3


async def test_other_failures_and_stopping_propagate_at_once() -> None:
    async def broken() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await retry_transient("demo", broken, transient=(ConnectionError,))

    async def away() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await asyncio.wait_for(
            retry_transient("demo", away, transient=(ConnectionError,), give_up=lambda: True), 1
        )


def test_the_delay_grows_and_is_capped() -> None:
    b = Backoff(initial_s=0.5, max_s=10.0, jitter=0.0)
    assert [b(n) for n in (1, 2, 3, 6, 1000)] == [0.5, 1.0, 2.0, 10.0, 10.0]
