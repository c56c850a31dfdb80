"""Online anomaly models behind one small interface (`learn_one` / `score_one`).

Each detector lives in its own module; `DETECTORS` names them for the
command line (``qorgau ml score --detector NAME``) and configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from online_ml.base import AnomalyDetector, Explanation
from online_ml.context import ContextDetector
from online_ml.departure import DepartureDetector
from online_ml.drift import BaselineDrift
from online_ml.ensemble import Maximum
from online_ml.ewm import EWMDetector
from online_ml.fire_risk import ZoneFireRisk
from online_ml.guard import LearningGuard
from online_ml.knn import KNNDetector
from online_ml.likelihood import AnomalyLikelihood
from online_ml.onset import OnsetFilter

__all__ = [
    "ALERT_THRESHOLDS",
    "DETECTORS",
    "AnomalyDetector",
    "AnomalyLikelihood",
    "BaselineDrift",
    "ContextDetector",
    "DepartureDetector",
    "EWMDetector",
    "Explanation",
    "KNNDetector",
    "LearningGuard",
    "Maximum",
    "OnsetFilter",
    "ZoneFireRisk",
    "make_detector",
    "make_stream_model",
]


#: Readings a flagged departure is kept out of learning before it counts as the new normal.
ADAPT_AFTER = 300


def level_context_pattern(
    refractory: int = 300,
    history: int = 8000,
    utc_offset_h: float = 5.0,
    knn: int = 1,
    knn_window: int = 12,
    knn_reservoir: int = 1000,
    flag_at: float | None = 0.2,
    hold_at: float = 0.8,
    adapt_after: int | None = ADAPT_AFTER,
    release_after: int = 1,
    lag: int = 3,
    report_at: float | None = 0.1,
    quiet: int = 30,
) -> AnomalyDetector:
    """The current default: the most surprised of level at two time scales (EWM), context
    (hour of day and kind of day) and shape (KNN), onsets only. ``knn=0`` leaves the
    shape model out.

    An onset is measured from the surprise before the last ``lag - 1`` readings (one
    that builds over a few readings is one onset) and reported once: ``report_at`` or
    more scores 0.5 and above, then ``quiet`` readings stay below 0.5 (see `OnsetFilter`).

    Learning discipline is part of it: a jump of ``flag_at`` or more above the recent
    surprise stops all learning while the surprise stays at or above ``hold_at``, for
    at most ``adapt_after`` readings (see `OnsetFilter`)."""
    parts: list[AnomalyDetector] = [
        EWMDetector(history=history),
        EWMDetector(alpha=0.01, history=history),  # a slower level: gradual departures
        ContextDetector(history=history, utc_offset_h=utc_offset_h),
    ]
    if knn:
        parts.append(
            KNNDetector(k=knn, window=knn_window, history=history, reservoir=knn_reservoir)
        )
    return OnsetFilter(
        Maximum(parts),
        refractory=refractory,
        flag_at=flag_at,
        hold_at=hold_at,
        adapt_after=adapt_after,
        release_after=release_after,
        lag=lag,
        report_at=report_at,
        quiet=quiet,
    )


#: Score at or above which each detector's output is a flag (the default reports its onsets
#: on a scale where 0.5 is its own decision: see `OnsetFilter`'s ``report_at``).
ALERT_THRESHOLDS: dict[str, float] = {
    "context": 0.5,
    "default": 0.5,
    "departure": 0.5,
    "ewm": 0.5,
    "knn": 0.5,
}

DETECTORS: dict[str, Callable[..., AnomalyDetector]] = {
    "context": ContextDetector,
    "default": level_context_pattern,
    "departure": DepartureDetector,
    "ewm": EWMDetector,
    "knn": KNNDetector,
}


def make_stream_model(name: str, warmup: int, **params: Any) -> LearningGuard:
    """A detector as the stream runs it: no score before ``warmup`` readings, and no
    learning from what it flags (the default detector latches itself; the others
    are guarded at their alert threshold, learning a lasting change after ``ADAPT_AFTER``)."""
    det = make_detector(name, **params)
    latches = isinstance(det, DepartureDetector) or (
        isinstance(det, OnsetFilter) and det.flag_at is not None
    )
    threshold = math.inf if latches else ALERT_THRESHOLDS.get(name, 0.5)
    return LearningGuard(det, warmup=warmup, threshold=threshold, adapt_after=ADAPT_AFTER)


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
