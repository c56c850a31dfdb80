"""Contextual surprise: is this value normal for this hour of the day, on this kind of day?

The level and spread are tracked separately for each hour of the day, split
into working days and weekends (so "normal for 14:00 on a Tuesday" differs
from "normal at 03:00 on a Sunday"); the raw score is the distance from the
level of the current context in units of its spread, turned into a likelihood.
Hours are taken in ``utc_offset_h`` local time (Kazakhstan: UTC+5).

>>> import math
>>> det = ContextDetector()
>>> def shop(i):  # a workshop: busy 08-20 local, quiet at night
...     hour = (i // 12 + 5) % 24
...     return 80.0 if 8 <= hour < 20 else 55.0
>>> for i in range(12 * 24 * 21):
...     x = {"value": shop(i) + math.sin(i), "t": 300.0 * i}
...     _ = det.score_one(x); det.learn_one(x)
>>> t_night = 300.0 * (12 * 24 * 21 + 12 * 20)   # 01:00 local on a weekday
>>> det.score_one({"value": 56.0, "t": t_night}) < 0.3, det.score_one({"value": 80.0, "t": t_night}) > 0.5
(True, True)
"""

from __future__ import annotations

from online_ml.base import AnomalyDetector, Explanation
from online_ml.ewm import MAD_TO_SIGMA
from online_ml.likelihood import AnomalyLikelihood, LikelihoodParams

__all__ = ["ContextDetector"]


class ContextDetector(LikelihoodParams, AnomalyDetector):
    """Surprise against the usual level for the hour and kind of day (see the module)."""

    def __init__(
        self,
        alpha: float = 0.05,
        history: int = 5000,
        short: int = 5,
        utc_offset_h: float = 5.0,
        weekend: bool = True,
        min_seen: int = 10,
    ) -> None:
        self.alpha = alpha
        self.utc_offset_h = utc_offset_h
        self.utc_offset_s = utc_offset_h * 3600.0
        self.weekend = weekend
        self.min_seen = min_seen
        self.likelihood = AnomalyLikelihood(history=history, short=short)
        self._level: dict[int, float] = {}
        self._spread: dict[int, float] = {}
        self._seen: dict[int, int] = {}

    def _context(self, t: float) -> int:
        local = t + self.utc_offset_s
        hour = int(local // 3600) % 24
        if not self.weekend:
            return hour
        weekday = (int(local // 86400) + 3) % 7  # 1970-01-01 was a Thursday
        return hour + (24 if weekday >= 5 else 0)

    def _raw(self, c: int, value: float) -> float | None:
        if self._seen.get(c, 0) < self.min_seen:
            return None
        return abs(value - self._level[c]) / max(self._spread[c], 1e-9)

    def score_one(self, x: dict[str, float]) -> float:
        raw = self._raw(self._context(x["t"]), x["value"])
        return 0.0 if raw is None else self.likelihood.peek(raw)

    def learn_one(self, x: dict[str, float]) -> None:
        c, v = self._context(x["t"]), x["value"]
        raw = self._raw(c, v)
        if raw is not None:
            self.likelihood.push(raw)
        n = self._seen.get(c, 0)
        if n == 0:
            self._level[c], self._spread[c] = v, 0.0
        else:
            a = max(self.alpha, 1.0 / (n + 1))
            self._spread[c] += a * (abs(v - self._level[c]) - self._spread[c])
            self._level[c] += a * (v - self._level[c])
        self._seen[c] = n + 1

    def explain(self, x: dict[str, float]) -> Explanation | None:
        c = self._context(x["t"])
        if self._seen.get(c, 0) < self.min_seen:
            return None
        hour, rest = c % 24, c >= 24
        days = "" if not self.weekend else (" on weekends" if rest else " on working days")
        half = 3.0 * MAD_TO_SIGMA * self._spread[c]
        return Explanation(
            f"usual level at {hour:02d}:00{days}",
            x["value"],
            self._level[c] - half,
            self._level[c] + half,
        )
