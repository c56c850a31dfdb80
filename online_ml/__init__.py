"""Online anomaly models behind one small interface (`learn_one` / `score_one`).

Each detector lives in its own module; `DETECTORS` names them for the
command line (``qorgau ml score --detector NAME``) and configuration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from online_ml.base import AnomalyDetector
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
    "EWMDetector",
    "KNNDetector",
    "LearningGuard",
    "Maximum",
    "OnsetFilter",
    "make_detector",
]


def level_and_pattern(refractory: int = 400, history: int = 5000) -> AnomalyDetector:
    """The current default: level surprise (EWM) or shape surprise (KNN), onsets only."""
    return OnsetFilter(
        Maximum([EWMDetector(history=history), KNNDetector(k=1, history=history)]),
        refractory=refractory,
    )


#: Score at or above which each detector's output is a flag (an onset filter's
#: scores are rises above the recent maximum, hence smaller).
ALERT_THRESHOLDS: dict[str, float] = {"default": 0.2, "ewm": 0.5, "knn": 0.5}

DETECTORS: dict[str, Callable[..., AnomalyDetector]] = {
    "default": level_and_pattern,
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
