"""Learning discipline around any detector: a warm-up, and no learning from what it flags.

A detector that keeps learning from a persistent leak makes the leak the new
normal; `LearningGuard` refuses to learn observations it scored at or above
``threshold`` (after the warm-up), and reports 0 during the first ``warmup``
observations, while the model has not seen enough to judge.

>>> from online_ml.ewm import EWMDetector
>>> g = LearningGuard(EWMDetector(), warmup=100, threshold=0.5)
>>> for i in range(300):
...     x = {"value": 5.0 + (i % 7) * 0.1, "t": 60.0 * i}
...     _ = g.score_one(x); g.learn_one(x)
>>> leak = [g.score_one({"value": 50.0, "t": 60.0 * (300 + k)}) for k in range(3)]
>>> for k in range(200):
...     x = {"value": 50.0, "t": 60.0 * (400 + k)}
...     _ = g.score_one(x); g.learn_one(x)
>>> g.score_one({"value": 50.0, "t": 60.0 * 700}) >= 0.5, g.refused > 0
(True, True)
"""

from __future__ import annotations

from online_ml.base import AnomalyDetector

__all__ = ["LearningGuard"]


class LearningGuard(AnomalyDetector):
    def __init__(
        self, detector: AnomalyDetector, warmup: int = 500, threshold: float = 0.5
    ) -> None:
        self.detector = detector
        self.warmup = warmup
        self.threshold = threshold
        self.seen = 0
        self.refused = 0  # observations not learnt because they were flagged
        self._last: tuple[int, float] | None = None

    @property
    def warming_up(self) -> bool:
        return self.seen < self.warmup

    def score_one(self, x: dict[str, float]) -> float:
        score = self.detector.score_one(x)
        self._last = (id(x), score)
        return 0.0 if self.warming_up else score

    def learn_one(self, x: dict[str, float]) -> None:
        if not self.warming_up:
            last = self._last
            score = (
                last[1] if last is not None and last[0] == id(x) else (self.detector.score_one(x))
            )
            if score >= self.threshold:
                self.refused += 1
                return
        self.seen += 1
        self.detector.learn_one(x)
