"""Pattern surprise: distance of the recent shape to the nearest shapes seen before.

The last ``window`` values, scaled by the range seen so far, form a point;
the raw score is the mean distance to its ``k`` nearest neighbours among the
last ``reservoir`` points, and the likelihood turns it into [0, 1]. It sees a
change of shape (a flat stretch in a daily cycle, a new oscillation) that a
level tracker misses.

>>> import math
>>> det = KNNDetector(window=8, reservoir=500, k=1)
>>> for i in range(1500):
...     x = {"value": math.sin(2 * math.pi * i / 50), "t": 60.0 * i}
...     _ = det.score_one(x); det.learn_one(x)
>>> det.score_one({"value": math.sin(2 * math.pi * 1500 / 50), "t": 90000.0}) < 0.3
True
"""

from __future__ import annotations

from collections import deque

import numpy as np

from online_ml.base import AnomalyDetector
from online_ml.likelihood import AnomalyLikelihood

__all__ = ["KNNDetector"]


class KNNDetector(AnomalyDetector):
    def __init__(
        self,
        window: int = 8,
        reservoir: int = 1500,
        k: int = 1,
        history: int = 5000,
        short: int = 5,
    ) -> None:
        self.window = window
        self.reservoir = reservoir
        self.k = k
        self.likelihood = AnomalyLikelihood(history=history, short=short)
        self._points = np.zeros((reservoir, window))
        self._norms = np.zeros(reservoir)  # squared lengths of the stored points
        self._count = 0
        self._last: tuple[int, np.ndarray | None, float | None] | None = None
        self._recent: deque[float] = deque(maxlen=window)
        self.lo: float | None = None
        self.hi: float | None = None

    def _embed(self, value: float) -> np.ndarray | None:
        if len(self._recent) < self.window - 1 or self.lo is None or self.hi is None:
            return None
        lo, hi = min(self.lo, value), max(self.hi, value)
        span = (hi - lo) or 1.0
        return (np.fromiter((*self._recent, value), float, self.window) - lo) / span

    def _raw(self, e: np.ndarray) -> float | None:
        m = min(self._count, self.reservoir)
        if m <= self.k + self.window:
            return None
        # |p - e|^2 = |p|^2 - 2 p.e + |e|^2: one matrix-vector product per reading.
        d2 = self._norms[:m] - 2.0 * (self._points[:m] @ e) + float(e @ e)
        nearest = d2.min() if self.k == 1 else np.partition(d2, self.k - 1)[: self.k]
        return float(np.sqrt(np.maximum(nearest, 0.0)).mean())

    def _evaluate(self, x: dict[str, float]) -> tuple[np.ndarray | None, float | None]:
        last = self._last
        if last is not None and last[0] == id(x):
            return last[1], last[2]
        e = self._embed(x["value"])
        raw = self._raw(e) if e is not None else None
        self._last = (id(x), e, raw)
        return e, raw

    def score_one(self, x: dict[str, float]) -> float:
        _, raw = self._evaluate(x)
        return 0.0 if raw is None else self.likelihood.peek(raw)

    def learn_one(self, x: dict[str, float]) -> None:
        v = x["value"]
        e, raw = self._evaluate(x)
        self._last = None
        if e is not None:
            if raw is not None:
                self.likelihood.update(raw)
            slot = self._count % self.reservoir
            self._points[slot] = e
            self._norms[slot] = float(e @ e)
            self._count += 1
        self.lo = v if self.lo is None else min(self.lo, v)
        self.hi = v if self.hi is None else max(self.hi, v)
        self._recent.append(v)
