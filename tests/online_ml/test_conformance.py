"""Every detector passes the same checks: determinism, range, and what it must and must not flag."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from online_ml import ALERT_THRESHOLDS, DETECTORS, make_detector
from online_ml.runner import score_series

WARMUP = 600  # readings before scores count


def periodic(n: int, seed: int) -> list[float]:
    """A clean daily cycle sampled every 5 min, with a little noise."""
    rng = random.Random(seed)
    return [20 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.3) for i in range(n)]


def run(name: str, values: list[float]) -> np.ndarray:
    return score_series(
        lambda: make_detector(name), [300.0 * i for i in range(len(values))], values
    )


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_deterministic_and_in_range(name: str) -> None:
    values = periodic(1500, 1)
    a, b = run(name, values), run(name, values)
    assert np.array_equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_clean_periodic_series_raises_nothing(name: str) -> None:
    scores = run(name, periodic(3000, 2))
    assert float(scores[WARMUP:].max()) < ALERT_THRESHOLDS[name]


@pytest.mark.parametrize("name", sorted(DETECTORS))
@pytest.mark.parametrize("anomaly", ["level_shift", "spike", "variance_change"])
def test_injected_anomalies_are_flagged(name: str, anomaly: str) -> None:
    if name == "departure" and anomaly != "level_shift":
        pytest.skip(
            "the budgeted model reports sustained departures towards danger only: a single"
            " spike is for the limits, a wider spread at the same level is no danger"
        )
    values = periodic(3000, 3)
    at = 2000
    if anomaly == "level_shift":
        values[at:] = [v + 6.0 for v in values[at:]]
    elif anomaly == "spike":
        values[at] += 15.0
    else:
        rng = random.Random(4)
        values[at:] = [v + rng.gauss(0, 3.0) for v in values[at:]]
    scores = run(name, values)
    flag = ALERT_THRESHOLDS[name]
    assert float(scores[WARMUP:at].max()) < flag  # nothing before
    assert float(scores[at : at + 50].max()) >= flag  # flagged within 50 readings


# --- River's own checks: our detectors are River anomaly detectors ---------------------
RIVER_CHECKS = [
    "check_repr",
    "check_str",
    "check_tags",
    "check_clone_same_class",
    "check_clone_is_idempotent",
    "check_init_has_default_params_for_tests",
    "check_init_default_params_are_not_mutable",
    "check_doc",
    "check_clone_changes_memory_addresses",
    "check_mutate_can_be_idempotent",
    "check_pickling_supports_roundtrip",
    "check_repr_roundtrips_clone",
    "check_clone_with_new_params_applies",
    "check_get_params_matches_signature",
]


@pytest.mark.parametrize("check", RIVER_CHECKS)
@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_river_estimator_checks(name: str, check: str) -> None:
    """River's generic estimator checks (those that need no dataset of features: ours
    read a ``value`` and a time ``t``): parameters, clone, repr, pickling."""
    from river.checks import common

    getattr(common, check)(make_detector(name))


def test_a_river_threshold_filter_wraps_our_detector() -> None:
    """River's tools take ours: `anomaly.ThresholdFilter` at the budget's score (0.5;
    the budgeted model calibrates its own threshold, so a quantile of its mostly-zero
    scores would not do) classifies a night at the day level, and nothing before."""
    from river import anomaly

    wrapped = anomaly.ThresholdFilter(
        make_detector("departure", log_floor=0.01), threshold=ALERT_THRESHOLDS["departure"]
    )
    rng = random.Random(5)
    flagged = []
    for i in range(4 * 1440):  # four days, a minute apart: busy 08-17 local, idle at night
        hour = (i / 60 + 5) % 24
        level = 3.0 if 8 <= hour < 17 else 1.0
        x = {"value": level * math.exp(rng.gauss(0, 0.08)), "t": 60.0 * i}
        flagged.append(wrapped.classify(wrapped.score_one(x)))
        wrapped.learn_one(x)
    assert not any(flagged[2 * 1440 :])  # its normal days: quiet
    night = []
    for i in range(4 * 1440 + 60, 4 * 1440 + 120):  # 02:00-03:00 local at the day level
        x = {"value": 3.0 * math.exp(rng.gauss(0, 0.08)), "t": 60.0 * i}
        night.append(wrapped.classify(wrapped.score_one(x)))
        wrapped.learn_one(x)
    assert any(night)
