"""A fast baseline: deviation from an exponentially weighted level, as a likelihood.

The raw score is ``|x - level| / spread`` with the level and spread tracked by
exponentially weighted mean and mean absolute deviation; the likelihood
(`online_ml.likelihood.AnomalyLikelihood`) turns it into a score in [0, 1].

>>> import random
>>> rng = random.Random(3)
>>> det = EWMDetector()
>>> for i in range(2000):
...     x = {"value": 10 + rng.gauss(0, 0.5), "t": 60.0 * i}
...     _ = det.score_one(x); det.learn_one(x)
>>> det.score_one({"value": 10.2, "t": 120000.0}) < 0.3
True
>>> det.score_one({"value": 25.0, "t": 120000.0}) > 0.5
True
"""

from __future__ import annotations

from online_ml.base import AnomalyDetector, Explanation
from online_ml.likelihood import AnomalyLikelihood, LikelihoodParams

__all__ = ["EWMDetector"]

#: Mean absolute deviation -> standard deviation, for a normal distribution.
MAD_TO_SIGMA = 1.2533


class EWMDetector(LikelihoodParams, AnomalyDetector):
    """Surprise against an exponentially weighted level (see the module)."""

    def __init__(
        self, alpha: float = 0.05, spread_alpha: float = 0.005, history: int = 1000, short: int = 5
    ) -> None:
        self.alpha = alpha
        self.spread_alpha = spread_alpha  # slower than the level: a noisier stretch stands out
        self.level: float | None = None
        self.spread = 0.0
        self.likelihood = AnomalyLikelihood(history=history, short=short)
        self.n = 0
        # Until the spread is known, raw scores are meaningless (x / ~0): they would
        # poison the likelihood's history, so the first observations only settle it.
        self.settle = max(10, int(2 / alpha))

    def _raw(self, value: float) -> float:
        if self.level is None:
            return 0.0
        return abs(value - self.level) / max(self.spread, 1e-9 + abs(self.level) * 1e-6)

    def score_one(self, x: dict[str, float]) -> float:
        if self.n < self.settle:
            return 0.0
        raw = self._raw(x["value"])
        # The likelihood history advances in learn_one, so scoring twice is harmless.
        return self.likelihood.peek(raw)

    def learn_one(self, x: dict[str, float]) -> None:
        v = x["value"]
        self.n += 1
        if self.level is None:
            self.level = v
            return
        if self.n > self.settle:
            self.likelihood.push(self._raw(v))
        err = abs(v - self.level)
        # Plain averages while settling, exponential ones after.
        a_spread = max(self.spread_alpha, 1.0 / self.n)
        self.spread += a_spread * (err - self.spread)
        self.level += max(self.alpha, 1.0 / self.n) * (v - self.level)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        if self.level is None or self.n < self.settle:
            return None
        half = 3.0 * MAD_TO_SIGMA * self.spread
        return Explanation(
            "recent level" if self.alpha >= 0.02 else "long-run level",
            x["value"],
            self.level - half,
            self.level + half,
        )
