"""Several detectors on the same stream; the most surprised one speaks.

>>> from online_ml.ewm import EWMDetector
>>> m = Maximum([EWMDetector(), EWMDetector(alpha=0.2)])
>>> m.score_one({"value": 1.0, "t": 0.0})
0.0
"""

from __future__ import annotations

from collections.abc import Sequence

from online_ml.base import AnomalyDetector

__all__ = ["Maximum"]


class Maximum(AnomalyDetector):
    def __init__(self, detectors: Sequence[AnomalyDetector]) -> None:
        self.detectors = list(detectors)

    def score_one(self, x: dict[str, float]) -> float:
        best = 0.0
        for d in self.detectors:
            s = d.score_one(x)
            if s > best:
                best = s
        return best

    def learn_one(self, x: dict[str, float]) -> None:
        for d in self.detectors:
            d.learn_one(x)
