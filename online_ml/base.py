"""The one small interface every anomaly detector implements.

A detector sees one observation at a time as a dict — ``{"value": 12.5, "t":
1772352000.0}`` (``t`` in Unix seconds, so a model can use time of day and
weekday) — and answers with a score in [0, 1], high = anomalous. The score of
an observation is always asked *before* the detector learns it.

``explain`` says, for an inspector, what the score is about: which feature,
the range the model expected and what it observed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from river import base as river_base

__all__ = ["AnomalyDetector", "Explanation"]


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why an observation scored as it did."""

    feature: str  # e.g. "usual level at 14:00 on working days"
    observed: float
    expected_low: float
    expected_high: float
    unit: str | None = None  # None: the sensor's own unit

    def describe(self, sensor_unit: str) -> str:
        unit = sensor_unit if self.unit is None else self.unit
        return (
            f"{self.feature}: observed {self.observed:.4g} {unit},"
            f" expected {self.expected_low:.4g}–{self.expected_high:.4g} {unit}"
        )


class AnomalyDetector(river_base.AnomalyDetector):
    """``score_one`` then ``learn_one``, for every observation, in time order.

    A River anomaly detector (`river.base.AnomalyDetector`): River's ``clone``, ``repr``,
    parameter introspection and its generic estimator checks apply, and River's wrappers
    (``anomaly.QuantileFilter``, ``anomaly.ThresholdFilter``) take any of ours. What ours
    add: ``explain`` (what was expected, for a person) and ``flagging``."""

    __slots__ = ()  # a subclass may keep its state in slots (the national scale's memory)

    @abc.abstractmethod
    def learn_one(self, x: dict[str, float]) -> None:
        """Update the model with one observation (returns nothing, as in River)."""

    @abc.abstractmethod
    def score_one(self, x: dict[str, float]) -> float:
        """How anomalous ``x`` is given what was learnt so far, in [0, 1]."""

    def explain(self, x: dict[str, float]) -> Explanation | None:
        """What the model expected instead of ``x`` (None if it cannot say yet)."""
        return None

    @property
    def flagging(self) -> bool:
        """Still inside a flagged episode (learning suspended)? Wrappers that latch say so."""
        return False
