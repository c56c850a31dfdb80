"""Fire signals: heat (fixed and rate of rise, adapted to the zone's normal level),
smoke obscuration, and their combination with rising CO over one zone.

A heat sensor learns its normal level (an exponential average with time
constant ``baseline_tau_s``) only while the temperature is not rising fast, so
a fire never becomes normal. A hot shop running at 40 °C therefore alarms at
``max(57 °C, normal + 15 °C)``, not at a fixed figure that it reaches on a
summer day.

>>> from core.limits import FireSettings
>>> h = HeatState(FireSettings(), normal_c=40.0)
>>> [h.update(float(t), 40.0 + 0.02 * t)[0] for t in range(0, 600, 60)][-1]   # slow drift
False
>>> round(h.baseline, 1)
40.9
"""

from __future__ import annotations

import math
from collections import deque

from core.alarms import Severity
from core.limits import FireSettings

__all__ = ["HeatState", "ZoneFire"]


class HeatState:
    """One temperature sensor: adaptive normal level and rate of rise (°C/min)."""

    __slots__ = ("_points", "baseline", "last_rate", "prev_rate", "settings")

    def __init__(self, settings: FireSettings, normal_c: float | None = None) -> None:
        self.settings = settings
        self.baseline = normal_c
        self._points: deque[tuple[float, float]] = deque()
        self.last_rate = 0.0
        self.prev_rate = 0.0

    def _rate(self, t: float) -> float:
        """Least-squares slope over the rate window, °C/min (0 if too short)."""
        pts = self._points
        horizon = t - self.settings.ror_window_s
        while pts and pts[0][0] < horizon:
            pts.popleft()
        if len(pts) < 2 or pts[-1][0] - pts[0][0] < self.settings.ror_min_span_s:
            return 0.0
        n = len(pts)
        mt = sum(p[0] for p in pts) / n
        mv = sum(p[1] for p in pts) / n
        var = sum((p[0] - mt) ** 2 for p in pts)
        cov = sum((p[0] - mt) * (p[1] - mv) for p in pts)
        return 60.0 * cov / var if var > 0 else 0.0

    def update(self, t: float, value: float) -> tuple[bool, bool, float]:
        """Add a reading; return (fixed-temperature alarm, sustained rate-of-rise, rate)."""
        s = self.settings
        self._points.append((t, value))
        self.prev_rate, self.last_rate = self.last_rate, self._rate(t)
        if self.baseline is None:
            self.baseline = value
        elif self.last_rate < s.combo_heat_c_per_min:
            # Learn the normal level only while nothing is heating up.
            dt = t - self._points[-2][0] if len(self._points) > 1 else 0.0
            alpha = 1.0 - math.exp(-dt / s.baseline_tau_s) if dt > 0 else 0.0
            self.baseline += alpha * (value - self.baseline)
        fixed = value >= self.fixed_threshold
        # Two consecutive evaluations over the threshold: one odd reading is not a fire.
        ror = self.last_rate >= s.ror_c_per_min and self.prev_rate >= s.ror_c_per_min
        return fixed, ror, self.last_rate

    @property
    def fixed_threshold(self) -> float:
        base = self.baseline if self.baseline is not None else 0.0
        return max(self.settings.fixed_c, base + self.settings.fixed_above_normal_c)


class ZoneFire:
    """Weak fire signals of one zone; two different ones within the window mean fire."""

    __slots__ = ("_seen", "levels", "settings")

    def __init__(self, settings: FireSettings) -> None:
        self.settings = settings
        self._seen: dict[str, float] = {}  # signal -> event time last seen
        self.levels: dict[str, Severity | None] = {}  # sensor -> its own fire level now

    def signal(self, name: str, t: float) -> None:
        self._seen[name] = t

    def active(self, t: float) -> list[str]:
        horizon = t - self.settings.combo_window_s
        return sorted(k for k, seen in self._seen.items() if seen >= horizon)
