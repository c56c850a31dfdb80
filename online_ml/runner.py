"""Run a fresh detector over a series in order: each row scored before it is learnt."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from online_ml.base import AnomalyDetector

__all__ = ["score_series"]


def score_series(
    make: Callable[[], AnomalyDetector], times: Sequence[float], values: Sequence[float]
) -> np.ndarray:
    """Scores in [0, 1], one per row, computed before the row is learnt.

    >>> from online_ml import EWMDetector
    >>> s = score_series(EWMDetector, [60.0 * i for i in range(50)], [1.0] * 49 + [9.0])
    >>> s.shape, float(s.min()) >= 0.0, float(s.max()) <= 1.0
    ((50,), True, True)
    """
    det = make()
    out = np.empty(len(values), dtype=float)
    for i, (t, v) in enumerate(zip(times, values, strict=True)):
        x = {"value": float(v), "t": float(t)}
        out[i] = det.score_one(x)
        det.learn_one(x)
    return out
