"""Pattern surprise: distance of the recent shape to the nearest shapes seen before.

The last ``window`` values form a point; the raw score is the distance to its
``k`` nearest neighbours among the last ``reservoir`` points, in units of the
range of values seen so far, and the likelihood turns it into [0, 1]. It sees
a change of shape (a flat stretch in a daily cycle, a new oscillation) that a
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

import math
from typing import Any

import numpy as np

from online_ml.base import AnomalyDetector, Explanation
from online_ml.likelihood import AnomalyLikelihood, LikelihoodParams

__all__ = ["KNNDetector"]


#: Largest offset kept in a stored shape: 12 squares of it stay within a 4-byte float.
_MAX_OFFSET = 1e18


def _storable(v: float) -> float:
    """``v``, or inf for what a shape of 4-byte floats cannot hold (garbage, NaN)."""
    return v if abs(v) < _MAX_OFFSET else math.inf


class KNNDetector(LikelihoodParams, AnomalyDetector):
    """Surprise of the latest shape against its nearest past shapes (see the module)."""

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
        # Stored points, one per column, relative to the first value seen (``ref``),
        # and half their squared lengths: |p - e|^2 = |e|^2 - 2 (p.e - |p|^2 / 2).
        self._cols = np.zeros((window, reservoir), dtype=np.float32)
        self._half = np.zeros(reservoir, dtype=np.float32)
        self._count = 0
        # The last values twice over, so that the window is always one contiguous slice.
        self._ring = np.zeros(2 * window, dtype=np.float32)
        self._seen = 0
        # (x, window, |window|^2, raw score); holding x keeps its identity unique while cached
        self._last: tuple[dict[str, float], np.ndarray | None, float, float | None] | None = None
        self.ref: float | None = None
        self.lo = math.inf
        self.hi = -math.inf

    def _evaluate(self, x: dict[str, float]) -> tuple[np.ndarray | None, float, float | None]:
        """(the window ending with ``x``, its squared length, raw score), cached per ``x``."""
        last = self._last
        if last is not None and last[0] is x:
            return last[1], last[2], last[3]
        e: np.ndarray | None = None
        ee = 0.0
        raw: float | None = None
        if self._seen >= self.window - 1 and self.ref is not None:
            w = self.window
            pos = self._seen % w
            ring = self._ring
            v = _storable(x["value"] - self.ref)
            ring[pos] = v
            ring[pos + w] = v
            e = ring[pos + 1 : pos + 1 + w]
            ee = float(e @ e)
            m = min(self._count, self.reservoir)
            if m > self.k + w and math.isfinite(ee):
                prox = e @ self._cols[:, :m]
                prox -= self._half[:m]
                span = max(self.hi, x["value"]) - min(self.lo, x["value"]) or 1.0
                if self.k == 1:
                    raw = math.sqrt(max(ee - 2.0 * float(prox.max()), 0.0)) / span
                else:
                    best = np.partition(prox, m - self.k)[m - self.k :]
                    raw = float(np.sqrt(np.maximum(ee - 2.0 * best, 0.0)).mean()) / span
        self._last = (x, e, ee, raw)
        return e, ee, raw

    def score_one(self, x: dict[str, float]) -> float:
        raw = self._evaluate(x)[2]
        return 0.0 if raw is None else self.likelihood.peek(raw)

    def learn_one(self, x: dict[str, float]) -> None:
        value = x["value"]
        if self.ref is None:
            self.ref = value
        e, ee, raw = self._evaluate(x)
        self._last = None
        if e is None:  # filling the first window
            v = _storable(value - self.ref)
            pos = self._seen % self.window
            self._ring[pos] = v
            self._ring[pos + self.window] = v
        elif math.isfinite(ee):
            if raw is not None:
                self.likelihood.push(raw)
            slot = self._count % self.reservoir
            self._cols[:, slot] = e
            self._half[slot] = 0.5 * ee
            self._count += 1
        self._seen += 1
        if math.isfinite(ee):
            # A shape too large for the stored points' 4-byte floats (a garbage 1e300) is
            # neither kept nor allowed to stretch the range: one such reading would poison
            # every later distance (inf - inf) or blind the model to every later shape.
            self.lo = min(self.lo, value)
            self.hi = max(self.hi, value)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        raw = self._evaluate(x)[2]
        lik = self.likelihood
        if raw is None or len(lik) < 10:
            return None
        usual = lik.mean + 3.0 * lik.std
        return Explanation(
            f"shape of the last {self.window} readings (distance to the nearest of"
            f" {min(self._count, self.reservoir)} past shapes)",
            100.0 * raw,
            0.0,
            100.0 * usual,
            unit="% of the range",
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = None  # keyed by object identity: not worth saving
        return state
