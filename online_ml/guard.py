"""Learning discipline around any detector: a warm-up, and no learning from what it flags.

A detector that keeps learning from a persistent leak makes the leak the new
normal; `LearningGuard` refuses to learn observations it scored at or above
``threshold`` (after the warm-up), and reports 0 during the first ``warmup``
observations, while the model has not seen enough to judge.

A change that lasts is not refused for ever: after ``adapt_after``
consecutive refusals (``None``: never) the guard lets the model learn again,
so a new normal (new equipment, a changed process) stops being reported once
the model has caught up with it. The safety limits do not depend on any of this.

>>> from online_ml.ewm import EWMDetector
>>> g = LearningGuard(EWMDetector(), warmup=100, threshold=0.5)
>>> for i in range(300):
...     x = {"value": 5.0 + (i % 7) * 0.1, "t": 60.0 * i}
...     _ = g.score_one(x); g.learn_one(x)
>>> for k in range(200):   # a persistent leak
...     x = {"value": 50.0, "t": 60.0 * (300 + k)}
...     _ = g.score_one(x); g.learn_one(x)
>>> g.score_one({"value": 50.0, "t": 60.0 * 500}) >= 0.5, g.refused
(True, 200)
"""

from __future__ import annotations

from typing import Any

from online_ml.base import AnomalyDetector, Explanation

__all__ = ["LearningGuard"]


class LearningGuard(AnomalyDetector):
    """A detector as the stream runs it: warm-up, and no learning from what it flags
    (see the module)."""

    def __init__(
        self,
        detector: AnomalyDetector,
        warmup: int = 500,
        threshold: float = 0.5,
        adapt_after: int | None = None,
    ) -> None:
        self.detector = detector
        self.warmup = warmup
        self.threshold = threshold
        self.adapt_after = adapt_after
        self.seen = 0
        self.refused = 0  # observations not learnt because they were flagged
        self.streak = 0  # consecutive refusals
        self._last: tuple[dict[str, float], float] | None = None  # holds x: identity stays unique

    @property
    def warming_up(self) -> bool:
        return self.seen < self.warmup

    def score_one(self, x: dict[str, float]) -> float:
        score = self.detector.score_one(x)
        self._last = (x, score)
        return 0.0 if self.warming_up else score

    def learn_one(self, x: dict[str, float]) -> None:
        if not self.warming_up:
            last = self._last
            score = last[1] if last is not None and last[0] is x else self.score_one(x)
            if score < self.threshold:
                self.streak = 0
            elif self.adapt_after is None or self.streak < self.adapt_after:
                self.refused += 1
                self.streak += 1
                return
            # else: flagged for adapt_after readings in a row: learn the new normal
        self.seen += 1
        self.detector.learn_one(x)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        return self.detector.explain(x)

    @property
    def flagging(self) -> bool:
        return self.streak > 0 or self.detector.flagging

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = None  # keyed by object identity: not worth saving
        return state
