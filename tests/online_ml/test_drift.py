"""BaselineDrift: slow drift of a sensor's quiet level is reported, once; a healthy sensor
with a daily cycle, and a step, are not."""

from __future__ import annotations

import itertools
import math
import pickle
import random
from collections.abc import Iterator

import pytest

from online_ml.drift import BaselineDrift, DriftFinding

DAY = 86400.0
T0 = 1772323200.0  # 2026-03-01 00:00 UTC, a Sunday

Series = Iterator[tuple[float, float]]


def gas(
    days: float,
    *,
    drift_from: float | None = None,
    per_day: float = 0.0,
    step_at: float | None = None,
    step: float = 0.0,
    seed: int = 7,
    dt: float = 60.0,
) -> Series:
    """A gas sensor at 0.5 ppm ± 0.02, with an optional zero drift or step (days from T0)."""
    rng = random.Random(seed)
    for i in range(int(days * DAY / dt)):
        t = T0 + dt * i
        d = (t - T0) / DAY
        v = 0.5 + rng.gauss(0, 0.02)
        if drift_from is not None and d > drift_from:
            v += per_day * (d - drift_from)
        if step_at is not None and d > step_at:
            v += step
        yield t, v


def noise_db(
    days: float, *, seed: int = 1, drift_from: float | None = None, per_day: float = 0.0
) -> Series:
    """A workplace noise meter (dB) every 60 s: 45 dB at night, up to 70 dB on weekdays and
    55 dB at weekends around 14:00 local time (UTC+5), louder means noisier readings."""
    rng = random.Random(seed)
    for i in range(int(days * 1440)):
        t = T0 + 60.0 * i
        local_h = (t / 3600.0 + 5.0) % 24.0
        weekday = (int((t + 5 * 3600.0) // DAY) + 3) % 7  # 0 = Monday; T0 is a Sunday
        day = 0.5 - 0.5 * math.cos(2 * math.pi * (local_h - 2.0) / 24.0)
        loud = 25.0 if weekday < 5 else 10.0
        v = 45.0 + loud * day + rng.gauss(0, 2.0 + 3.0 * day)
        if drift_from is not None and t > T0 + drift_from * DAY:
            v += per_day * ((t - T0) / DAY - drift_from)
        yield t, v


def findings(series: Series, det: BaselineDrift) -> list[DriftFinding]:
    return [f for t, v in series if (f := det.update(t, v)) is not None]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rising_zero_is_found_within_two_days(seed: int) -> None:
    found = findings(gas(8, drift_from=3, per_day=0.3, seed=seed), BaselineDrift(0.15))
    assert found
    first = found[0]
    # The quiet level is a low of the last day, so a rise shows about a day late.
    assert T0 + 3 * DAY < first.t <= T0 + 5 * DAY
    assert abs(first.since_t - (T0 + 3 * DAY)) < 0.25 * DAY
    assert first.baseline_now - first.baseline_before >= 0.15
    assert 0.2 < first.rate_per_day < 0.45


def test_falling_zero_is_found_within_a_day() -> None:
    found = findings(gas(8, drift_from=3, per_day=-0.3), BaselineDrift(0.15))
    assert found
    first = found[0]
    assert T0 + 3 * DAY < first.t <= T0 + 4 * DAY
    assert first.baseline_now - first.baseline_before <= -0.15
    assert -0.45 < first.rate_per_day < -0.2


def test_a_slow_drift_is_found_once_it_has_moved_min_shift() -> None:
    found = findings(gas(10, drift_from=3, per_day=0.1), BaselineDrift(0.15))
    assert found
    assert T0 + 4.5 * DAY < found[0].t <= T0 + 6 * DAY  # 0.15 ppm is 1.5 days of drift


def test_one_finding_per_min_shift_of_drift_not_one_per_bucket() -> None:
    found = findings(gas(8, drift_from=3, per_day=0.3), BaselineDrift(0.15))
    # 5 days x 0.3 ppm/day = 1.5 ppm: at most one finding a day (min_instances buckets).
    assert 1 <= len(found) <= 5
    for a, b in itertools.pairwise(found):
        assert b.t - a.t >= DAY
        assert b.baseline_before == pytest.approx(a.baseline_now)  # reference restarted


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_healthy_sensor_is_quiet(seed: int) -> None:
    assert findings(gas(30, seed=seed), BaselineDrift(0.15)) == []


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_daily_cycle_is_not_drift(seed: int) -> None:
    det = BaselineDrift(3.0)
    assert findings(noise_db(14, seed=seed), det) == []
    assert det.baseline is not None and 40.0 < det.baseline < 45.0  # the night's quiet level


def test_an_hourly_quiet_level_would_take_the_daily_cycle_for_drift() -> None:
    # Why the quiet level is the low of a day (span_s) and not of the hour (bucket_s).
    hourly = [findings(noise_db(14, seed=s), BaselineDrift(3.0, span_s=3600.0)) for s in range(5)]
    assert sum(map(len, hourly)) > 0


def test_drift_under_a_daily_cycle_is_found() -> None:
    found = findings(noise_db(14, seed=2, drift_from=5, per_day=-2.0), BaselineDrift(3.0))
    assert found
    assert T0 + 5 * DAY < found[0].t <= T0 + 8 * DAY
    assert found[0].rate_per_day < -1.0


@pytest.mark.parametrize("step", [2.0, 0.3, -0.4])
def test_a_step_is_not_drift(step: float) -> None:
    det = BaselineDrift(0.15)
    assert findings(gas(10, step_at=3.3, step=step), det) == []
    assert det.baseline == pytest.approx(0.47 + step, abs=0.03)  # the new level is learnt


def test_a_step_then_a_drift_is_found() -> None:
    series = gas(12, step_at=2.5, step=1.0, drift_from=6, per_day=0.3)
    found = findings(series, BaselineDrift(0.15))
    assert found
    assert found[0].t > T0 + 6 * DAY
    assert found[0].baseline_before == pytest.approx(1.47, abs=0.03)


def test_sparse_buckets_are_ignored() -> None:
    det = BaselineDrift(0.15)
    findings(gas(5, dt=900.0), det)  # 4 readings an hour < min_per_bucket
    assert det.baseline is None


def test_baseline_is_the_quiet_level_after_a_span() -> None:
    det = BaselineDrift(0.15)
    series = list(gas(2))
    findings(iter(series[:1000]), det)
    assert det.baseline is None  # less than a day seen
    findings(iter(series[1000:]), det)
    assert det.baseline == pytest.approx(0.47, abs=0.01)  # a low quantile of 0.5 ± 0.02


def test_deterministic() -> None:
    def run() -> list[DriftFinding]:
        return findings(gas(8, drift_from=3, per_day=-0.3), BaselineDrift(0.15))

    assert run() == run()


def test_pickle_round_trip_behaves_identically() -> None:
    series = list(gas(9, drift_from=4, per_day=0.3))
    det = BaselineDrift(0.15)
    before = findings(iter(series[:5000]), det)
    copy = pickle.loads(pickle.dumps(det))
    rest = series[5000:]
    a, b = [], []
    for t, v in rest:
        a.append(det.update(t, v))
        b.append(copy.update(t, v))
        assert det.baseline == copy.baseline
    assert a == b
    assert before == [] and any(f is not None for f in a)


def test_memory_is_bounded() -> None:
    det = BaselineDrift(0.15)
    findings(gas(2, dt=1.0), det)  # 3600 readings an hour
    small = len(pickle.dumps(det))
    findings(gas(40, seed=3), det)
    assert small < 20_000 and len(pickle.dumps(det)) < 20_000


def test_out_of_order_and_non_finite_readings_are_ignored() -> None:
    det = BaselineDrift(0.15)
    assert det.update(T0 + 7200.0, 0.5) is None
    assert det.update(T0, 0.5) is None  # older than the open bucket
    assert det.update(T0 + 7300.0, math.nan) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_shift": 0.0},
        {"min_shift": 1.0, "bucket_s": 0.0},
        {"min_shift": 1.0, "span_s": 60.0},
        {"min_shift": 1.0, "quantile": 1.0},
        {"min_shift": 1.0, "confirm": 0},
        {"min_shift": 1.0, "history": 10},
    ],
)
def test_bad_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BaselineDrift(**kwargs)  # type: ignore[arg-type]
