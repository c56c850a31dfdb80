"""Learning discipline and model state: warm-up, no learning from flags, save/restore."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from online_ml import make_detector
from online_ml.guard import LearningGuard
from online_ml.knn import KNNDetector
from tests.online_ml.test_conformance import periodic

THRESHOLD = 0.5


def feed(det: object, values: list[float], start: int = 0) -> list[float]:
    scores = []
    for i, v in enumerate(values, start=start):
        x = {"value": v, "t": 300.0 * i}
        scores.append(det.score_one(x))  # type: ignore[attr-defined]
        det.learn_one(x)  # type: ignore[attr-defined]
    return scores


def test_warm_up_suppresses_alerts() -> None:
    g = LearningGuard(make_detector("ewm"), warmup=400, threshold=THRESHOLD)
    values = periodic(800, 5)
    values[200] += 40.0  # a spike while still learning
    scores = feed(g, values)
    assert max(scores[:400]) == 0.0
    assert not g.warming_up


def test_a_flagged_leak_is_not_learned() -> None:
    base = periodic(2000, 6)
    leak = [v + 8.0 for v in periodic(600, 7)]
    guarded = LearningGuard(make_detector("ewm"), warmup=300, threshold=THRESHOLD)
    plain = make_detector("ewm")
    feed(guarded, base)
    feed(plain, base)
    g_scores = feed(guarded, leak, start=2000)
    p_scores = feed(plain, leak, start=2000)
    # Hours into the leak the guarded model still sees it; the plain one made it normal.
    assert min(g_scores[-100:]) >= THRESHOLD
    assert max(p_scores[-100:]) < THRESHOLD
    assert guarded.refused >= 500


def test_state_saved_then_restored_gives_identical_next_scores() -> None:
    values = periodic(3000, 8)
    values[2500] += 20.0
    det = LearningGuard(make_detector("ewm"), warmup=300)
    feed(det, values[:2000])
    restored = pickle.loads(pickle.dumps(det))
    assert feed(restored, values[2000:], start=2000) == feed(det, values[2000:], start=2000)


@pytest.mark.parametrize("garbage", [1e300, 1e30, math.inf, -math.inf, math.nan])
def test_one_garbage_reading_does_not_silence_a_model_for_good(garbage: float) -> None:
    """A stranger's single 1e300 (or inf, NaN) once turned the shape model's every later
    score into NaN — silently: the ensemble's maximum skips NaN. It must still see a
    shape it has never seen 1,500 readings later."""
    rng = random.Random(2)
    det = KNNDetector(k=1, window=12, history=2000, reservoir=200)
    scores = []
    for i in range(3000):
        v = 10 + math.sin(i / 20) + 0.1 * rng.gauss(0, 1)
        if i == 1000:
            v = garbage
        if i == 2500:
            v = 30.0
        x = {"value": v, "t": 60.0 * i}
        scores.append(det.score_one(x))
        det.learn_one(x)
    assert not any(math.isnan(s) for s in scores)
    assert max(scores[2490:2510]) > 0.9
