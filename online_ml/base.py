"""The one small interface every anomaly detector implements.

A detector sees one observation at a time as a dict — ``{"value": 12.5, "t":
1772352000.0}`` (``t`` in Unix seconds, so a model can use time of day and
weekday) — and answers with a score in [0, 1], high = anomalous. The score of
an observation is always asked *before* the detector learns it.
"""

from __future__ import annotations

import abc

__all__ = ["AnomalyDetector"]


class AnomalyDetector(abc.ABC):
    """``score_one`` then ``learn_one``, for every observation, in time order."""

    @abc.abstractmethod
    def learn_one(self, x: dict[str, float]) -> None:
        """Update the model with one observation (returns nothing, as in River)."""

    @abc.abstractmethod
    def score_one(self, x: dict[str, float]) -> float:
        """How anomalous ``x`` is given what was learnt so far, in [0, 1]."""
