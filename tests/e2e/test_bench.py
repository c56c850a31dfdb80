"""`qorgau bench` counts correctly: small runs of both traffic shapes on the test stack."""

from __future__ import annotations

import pytest

from qorgau.bench import run_one
from qorgau.launcher import Stack


@pytest.mark.parametrize("batch", [1, 50])
def test_bench_counts_every_reading_once(stack: Stack, batch: int) -> None:
    r = run_one(stack, readings=4000, batch=batch, sensors=40, rate=0.0, publishers=2, timeout_s=60)
    assert (r.readings, r.stored, r.lost, r.duplicated) == (4000, 4000, 0, 0)
    assert r.messages == 4000 // batch
    assert r.end_to_end_rate > 0 and r.latency_p50_ms <= r.latency_p99_ms <= r.latency_max_ms
    assert {"bridge", "worker", "publishers"} <= set(r.cpu_s)


@pytest.mark.slow
def test_bench_targets_single_and_batched(stack: Stack) -> None:
    """The issue's figures as a runnable check (`pytest -m slow`); see `make bench`."""
    single = run_one(
        stack, readings=100_000, batch=1, sensors=200, rate=0.0, publishers=2, timeout_s=300
    )
    batched = run_one(
        stack, readings=200_000, batch=50, sensors=200, rate=0.0, publishers=2, timeout_s=300
    )
    assert single.lost == single.duplicated == batched.lost == batched.duplicated == 0
    print(
        f"single {single.end_to_end_rate:,.0f} readings/s; "
        f"batch-50 {batched.end_to_end_rate:,.0f} readings/s"
    )
