"""Several detectors on the same stream; the most surprised one speaks.

>>> from online_ml.ewm import EWMDetector
>>> m = Maximum([EWMDetector(), EWMDetector(alpha=0.2)])
>>> m.score_one({"value": 1.0, "t": 0.0})
0.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from online_ml.base import AnomalyDetector, Explanation

__all__ = ["Maximum"]


class Maximum(AnomalyDetector):
    """The most surprised of several detectors."""

    def __init__(self, detectors: Sequence[AnomalyDetector]) -> None:
        self.detectors = list(detectors)
        # (x, index of the loudest); holding x keeps its identity unique while cached
        self._loudest: tuple[dict[str, float], int] | None = None

    def score_one(self, x: dict[str, float]) -> float:
        best, loudest = 0.0, 0
        for i, d in enumerate(self.detectors):
            s = d.score_one(x)
            if s > best:
                best, loudest = s, i
        self._loudest = (x, loudest)
        return best

    def learn_one(self, x: dict[str, float]) -> None:
        for d in self.detectors:
            d.learn_one(x)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        """The explanation of the detector that scored ``x`` highest."""
        last = self._loudest
        if last is None or last[0] is not x:
            self.score_one(x)
            last = self._loudest
        assert last is not None
        return self.detectors[last[1]].explain(x)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_loudest"] = None  # a cache, not worth saving
        return state
