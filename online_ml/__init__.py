"""Online anomaly models behind one small interface (`learn_one` / `score_one`).

Each detector lives in its own module; `DETECTORS` names them for the
command line (``qorgau ml score --detector NAME``) and configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from online_ml.base import AnomalyDetector
from online_ml.context import ContextDetector
from online_ml.ensemble import Maximum
from online_ml.ewm import EWMDetector
from online_ml.guard import LearningGuard
from online_ml.knn import KNNDetector
from online_ml.likelihood import AnomalyLikelihood
from online_ml.onset import OnsetFilter

__all__ = [
    "ALERT_THRESHOLDS",
    "DETECTORS",
    "AnomalyDetector",
    "AnomalyLikelihood",
    "ContextDetector",
    "EWMDetector",
    "KNNDetector",
    "LearningGuard",
    "Maximum",
    "OnsetFilter",
    "make_detector",
]


def level_context_pattern(
    refractory: int = 300,
    history: int = 8000,
    utc_offset_h: float = 5.0,
    knn: int = 1,
    knn_window: int = 12,
) -> AnomalyDetector:
    """The current default: the most surprised of level at two time scales (EWM), context
    (hour of day and kind of day) and shape (KNN), onsets only. ``knn=0`` leaves the
    shape model out."""
    parts: list[AnomalyDetector] = [
        EWMDetector(history=history),
        EWMDetector(alpha=0.01, history=history),  # a slower level: gradual departures
        ContextDetector(history=history, utc_offset_h=utc_offset_h),
    ]
    if knn:
        parts.append(KNNDetector(k=knn, window=knn_window, history=history))
    return OnsetFilter(Maximum(parts), refractory=refractory)


#: Score at or above which each detector's output is a flag (an onset filter's
#: scores are rises above the recent maximum, hence smaller).
ALERT_THRESHOLDS: dict[str, float] = {"context": 0.5, "default": 0.2, "ewm": 0.5, "knn": 0.5}

DETECTORS: dict[str, Callable[..., AnomalyDetector]] = {
    "context": ContextDetector,
    "default": level_context_pattern,
    "ewm": EWMDetector,
    "knn": KNNDetector,
}


def make_detector(name: str, **params: Any) -> AnomalyDetector:
    """A fresh detector by name; unknown names and parameters raise ValueError."""
    try:
        factory = DETECTORS[name]
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}"
        ) from None
    try:
        return factory(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for {name!r}: {exc}") from None
