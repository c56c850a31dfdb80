"""The onset filter's reporting: one report per episode, on a scale of its own."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from online_ml import make_detector
from online_ml.ewm import EWMDetector
from online_ml.onset import OnsetFilter

STEP = 60.0


def calm(n: int) -> list[dict[str, float]]:
    rng = random.Random(1)
    return [{"value": 1.0 + 0.05 * rng.gauss(0, 1), "t": STEP * i} for i in range(n)]


def run(det: OnsetFilter, xs: list[dict[str, float]]) -> list[float]:
    out = []
    for x in xs:
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


def test_a_surprise_building_over_readings_is_reported_once() -> None:
    """A leak creeping up over seven readings: the old filter (no lag, no quiet) reports
    a rise at several of its steps; with a lag and a quiet episode it is one report."""
    ramp = [{"value": 1.0 + 0.06 * k, "t": STEP * (600 + k)} for k in range(1, 8)]
    xs = calm(600) + ramp
    steps = run(OnsetFilter(EWMDetector(), refractory=50), xs)[600:]
    assert sum(s >= 0.1 for s in steps) >= 3  # several onsets of one episode
    reported = run(OnsetFilter(EWMDetector(), refractory=50, lag=3, report_at=0.1, quiet=20), xs)
    assert max(reported[:600]) < 0.5
    assert len([i for i, s in enumerate(reported) if s >= 0.5]) == 1
    assert min(i for i, s in enumerate(reported) if s >= 0.5) <= 605
    # measured from where the ramp started, not from the reading before
    no_lag = run(OnsetFilter(EWMDetector(), refractory=50, report_at=0.1, quiet=20), xs)
    assert max(reported) > max(no_lag) + 0.02


def test_a_second_surprise_inside_the_quiet_episode_is_not_a_new_report() -> None:
    def jumps(gap: int) -> list[float]:
        xs = calm(400)
        xs += [{"value": 5.0, "t": STEP * 400}]
        xs += [{"value": 1.0, "t": STEP * (401 + i)} for i in range(gap)]
        xs += [{"value": 40.0, "t": STEP * (401 + gap)}]
        xs += [{"value": 1.0, "t": STEP * (402 + gap + i)} for i in range(5)]
        det = OnsetFilter(EWMDetector(), refractory=5, report_at=0.1, quiet=30)
        return run(det, xs)

    near = jumps(10)
    assert [i for i, s in enumerate(near) if s >= 0.5] == [400]
    assert near[411] > 0.0  # still scored, below the reporting level
    far = jumps(60)
    assert [i for i, s in enumerate(far) if s >= 0.5] == [400, 461]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0.0, 1e9, -1e9, 5e-324, 1e300]),
        ),
        min_size=50,
        max_size=400,
    ),
    quiet=st.integers(0, 40),
    lag=st.integers(1, 6),
)
def test_reports_are_scores_in_range_and_an_episode_apart(
    values: list[float], quiet: int, lag: int
) -> None:
    """Whatever a stranger's sensor sends, the default detector's scores stay in [0, 1]
    and two reports (>= 0.5) are more than ``quiet`` readings apart."""
    det = make_detector("default", lag=lag, quiet=quiet, history=500, knn_reservoir=100)
    xs = [{"value": v, "t": STEP * i} for i, v in enumerate(values)]
    scores = run(det, xs)  # type: ignore[arg-type]
    assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in scores)
    reports = [i for i, s in enumerate(scores) if s >= 0.5]
    assert all(b - a > quiet for a, b in itertools.pairwise(reports))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="lag"):
        OnsetFilter(EWMDetector(), lag=0)
    with pytest.raises(ValueError, match="report_at"):
        OnsetFilter(EWMDetector(), report_at=0.0)
