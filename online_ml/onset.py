"""Report the onset of a surprise, not its duration.

NAB — and an inspector — want one signal when something starts, not one per
reading while it lasts. `OnsetFilter` passes on how far a detector's score
rises above the highest score of the previous ``refractory`` observations:
the first reading of an episode keeps its score, the rest of the episode
scores about 0.

>>> from online_ml.ewm import EWMDetector
>>> det = OnsetFilter(EWMDetector(), refractory=50)
>>> xs = [{"value": 1.0 + 0.01 * (i % 5), "t": 60.0 * i} for i in range(400)]
>>> xs += [{"value": 9.0, "t": 60.0 * (400 + i)} for i in range(5)]
>>> scores = []
>>> for x in xs:
...     scores.append(det.score_one(x)); det.learn_one(x)
>>> scores[400] > 0.5, max(scores[401:]) < 0.2
(True, True)
"""

from __future__ import annotations

from collections import deque

from online_ml.base import AnomalyDetector

__all__ = ["OnsetFilter"]


class OnsetFilter(AnomalyDetector):
    def __init__(self, detector: AnomalyDetector, refractory: int = 400) -> None:
        self.detector = detector
        self.refractory = refractory
        self._recent: deque[tuple[int, float]] = deque()  # (index, score), scores decreasing
        self._i = 0
        self._last: tuple[int, float] | None = None

    def _recent_max(self) -> float:
        while self._recent and self._recent[0][0] < self._i - self.refractory:
            self._recent.popleft()
        return self._recent[0][1] if self._recent else 0.0

    def score_one(self, x: dict[str, float]) -> float:
        s = self.detector.score_one(x)
        self._last = (id(x), s)
        return max(0.0, s - self._recent_max())

    def learn_one(self, x: dict[str, float]) -> None:
        last = self._last
        s = last[1] if last is not None and last[0] == id(x) else self.detector.score_one(x)
        self._recent_max()
        while self._recent and self._recent[-1][1] <= s:
            self._recent.pop()
        self._recent.append((self._i, s))
        self._i += 1
        self.detector.learn_one(x)
