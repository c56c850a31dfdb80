"""Anomaly likelihood: how surprising a raw anomaly score is, given the recent ones.

Raw scores (prediction errors, distances) are not comparable between series
nor stable in time. The likelihood compares the mean of the last few raw
scores with the distribution of raw scores over a long trailing window and
returns the tail probability as a score in [0, 1]: ``-log10(tail) / 10``, so
a one-in-ten-billion surprise scores 1.

>>> import random
>>> rng = random.Random(1)
>>> lik = AnomalyLikelihood(history=500, short=5)
>>> scores = [lik.update(abs(rng.gauss(0, 1))) for _ in range(600)]
>>> round(max(scores[-100:]), 3) < 0.5
True
>>> round(lik.update(8.0), 3) > round(lik.update(0.5), 3) - 1   # a burst is surprising
True
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["AnomalyLikelihood"]


class AnomalyLikelihood:
    """Rolling mean/variance of raw scores (exact over the window) and a short-term mean."""

    __slots__ = ("_long", "_short", "_sq", "_ssum", "_sum", "history", "min_std", "short")

    def __init__(self, history: int = 1000, short: int = 10, min_std: float = 1e-6) -> None:
        self.history = history
        self.short = short
        self.min_std = min_std
        self._long: deque[float] = deque()
        self._short: deque[float] = deque()
        self._sum = 0.0
        self._sq = 0.0
        self._ssum = 0.0

    def peek(self, raw: float) -> float:
        """The score ``raw`` would get now, without changing any state."""
        n = len(self._long)
        if n < max(10, self.short):
            return 0.0
        k = len(self._short)
        short_sum = self._ssum + raw - (self._short[0] if k >= self.short else 0.0)
        short_mean = short_sum / min(k + 1, self.short)
        mean = self._sum / n
        var = max(self._sq / n - mean * mean, 0.0)
        std = max(math.sqrt(var), self.min_std, abs(mean) * 1e-3)
        tail = 0.5 * math.erfc((short_mean - mean) / std / math.sqrt(2.0))
        return min(1.0, -math.log10(max(tail, 1e-10)) / 10.0)

    def update(self, raw: float) -> float:
        """Score ``raw`` against the history, then add it; return the likelihood score."""
        score = self.peek(raw)
        self._short.append(raw)
        self._ssum += raw
        if len(self._short) > self.short:
            self._ssum -= self._short.popleft()
        self._long.append(raw)
        self._sum += raw
        self._sq += raw * raw
        if len(self._long) > self.history:
            old = self._long.popleft()
            self._sum -= old
            self._sq -= old * old
        return score
