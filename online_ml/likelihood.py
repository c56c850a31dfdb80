"""Anomaly likelihood: how surprising a raw anomaly score is, given the recent ones.

Raw scores (prediction errors, distances) are not comparable between series
nor stable in time. The likelihood compares the mean of the last few raw
scores with the distribution of raw scores over a long trailing window and
returns the tail probability as a score in [0, 1]: ``-log10(tail) / 10``, so
a one-in-ten-billion surprise scores 1.

The trailing window is a ring buffer of 4-byte floats (``history`` × 4 bytes,
32 KB for 8,000 raw scores); its sums are recomputed exactly each time the
ring wraps, so months of streaming do not accumulate rounding error.

>>> import random
>>> rng = random.Random(1)
>>> lik = AnomalyLikelihood(history=500, short=5)
>>> scores = [lik.update(abs(rng.gauss(0, 1))) for _ in range(600)]
>>> round(max(scores[-100:]), 3) < 0.5
True
>>> lik.peek(0.5) < 0.1   # the usual is not surprising
True
>>> for _ in range(4):
...     lik.push(8.0)
>>> lik.peek(8.0) > 0.9   # a burst is
True
"""

from __future__ import annotations

import math
from array import array
from collections import deque

__all__ = ["AnomalyLikelihood", "LikelihoodParams"]

_SQRT2 = math.sqrt(2.0)


class AnomalyLikelihood:
    """Mean/variance of raw scores over a trailing window and a short-term mean."""

    __slots__ = ("_long", "_pos", "_short", "_sq", "_ssum", "_sum", "history", "min_std", "short")

    def __init__(self, history: int = 1000, short: int = 10, min_std: float = 1e-6) -> None:
        self.history = history
        self.short = short
        self.min_std = min_std
        self._long = array("f")  # grows to ``history``, then a ring (next slot: _pos)
        self._pos = 0
        self._short: deque[float] = deque()
        self._sum = 0.0
        self._sq = 0.0
        self._ssum = 0.0

    def __len__(self) -> int:
        return len(self._long)

    @property
    def mean(self) -> float:
        n = len(self._long)
        return self._sum / n if n else 0.0

    @property
    def std(self) -> float:
        n = len(self._long)
        if not n:
            return 0.0
        mean = self._sum / n
        return math.sqrt(max(self._sq / n - mean * mean, 0.0))

    def peek(self, raw: float) -> float:
        """The score ``raw`` would get now, without changing any state."""
        if raw != raw:  # NaN: no evidence either way
            return 0.0
        n = len(self._long)
        short = self.short
        if n < 10 or n < short:
            return 0.0
        k = len(self._short)
        if k >= short:
            short_mean = (self._ssum + raw - self._short[0]) / short
        else:
            short_mean = (self._ssum + raw) / (k + 1)
        mean = self._sum / n
        var = self._sq / n - mean * mean
        std = math.sqrt(var) if var > 0.0 else 0.0
        floor = abs(mean) * 1e-3
        if std < floor or std < self.min_std:
            std = max(floor, self.min_std)
        tail = 0.5 * math.erfc((short_mean - mean) / std / _SQRT2)
        if tail <= 1e-10:
            return 1.0
        return -math.log10(tail) / 10.0

    def push(self, raw: float) -> None:
        """Add ``raw`` to the history (no score computed); a non-finite one is not kept
        (it would turn every later score into NaN)."""
        if not math.isfinite(raw):
            return
        sh = self._short
        sh.append(raw)
        self._ssum += raw
        if len(sh) > self.short:
            self._ssum -= sh.popleft()
        buf = self._long
        if len(buf) < self.history:
            buf.append(raw)
            stored = buf[-1]  # as rounded to 4 bytes: the sums must match what is kept
            self._sum += stored
            self._sq += stored * stored
            return
        pos = self._pos
        old = buf[pos]
        buf[pos] = raw
        stored = buf[pos]
        self._sum += stored - old
        self._sq += stored * stored - old * old
        pos += 1
        if pos == self.history:  # wrapped: start the sums afresh, exactly
            pos = 0
            self._sum = math.fsum(buf)
            self._sq = math.fsum(v * v for v in buf)
        self._pos = pos

    def update(self, raw: float) -> float:
        """Score ``raw`` against the history, then add it; return the likelihood score."""
        score = self.peek(raw)
        self.push(raw)
        return score


class LikelihoodParams:
    """For a detector whose raw score goes through its ``likelihood``: the likelihood's
    parameters read back as the detector's own (River's ``clone`` and ``repr`` read a
    model's parameters by their names in ``__init__``)."""

    __slots__ = ()
    likelihood: AnomalyLikelihood

    @property
    def history(self) -> int:
        return self.likelihood.history

    @property
    def short(self) -> int:
        return self.likelihood.short
