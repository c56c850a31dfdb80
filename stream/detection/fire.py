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

__all__ = ["Creep", "HeatState", "ZoneFire"]


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


class Creep:
    """Is a signal creeping up, as a smouldering fire makes smoke, CO and heat do?

    Event time in 2-minute buckets; the last four (the newest still filling, with at
    least 3 readings), oldest first: it creeps when each mean is higher than the one
    before (by ``step``, no step more than 60 % of the whole rise), and the newest
    stands ``min_rise`` above the signal's own normal level. A welding run or a
    forklift's pass lifts a level in a step and holds it or falls back; a
    smouldering fire keeps growing. The normal level is an exponential average
    (``tau_s``) of the readings that are not well above it, so a creeping signal
    never becomes normal. Constant work per reading: running sums per bucket.

    >>> c = Creep()
    >>> quiet = [c.update(float(t), 0.2 + 0.01 * (t % 3), 0.3, 0.02) for t in range(0, 3600, 10)]
    >>> any(quiet)
    False
    >>> growing = [c.update(3600.0 + t, 0.2 + 0.0015 * t, 0.3, 0.02) for t in range(0, 900, 10)]
    >>> growing.index(True) * 10 // 60   # minutes after it began to grow
    4
    >>> after = [c.update(4500.0 + t, 0.2, 0.3, 0.02) for t in range(0, 180, 10)]
    >>> after[-1]   # back to normal: the newest mean falls
    False
    >>> c.update(5000.0, 1.5, 0.3, 0.02)   # one jump is not creeping
    False
    """

    __slots__ = ("_buckets", "_last_t", "baseline", "deviation", "tau_s")

    BUCKET_S = 120.0

    def __init__(self, tau_s: float = 3600.0) -> None:
        self.tau_s = tau_s
        self.baseline: float | None = None
        self.deviation = 0.0
        self._last_t: float | None = None
        self._buckets: deque[list[float]] = deque()  # [index, sum, count], oldest first

    def means(self) -> list[float] | None:
        """The four newest 2-minute means, oldest first (None: a gap or too few)."""
        b = self._buckets
        if len(b) < 4 or b[-1][0] - b[-4][0] != 3 or b[-1][2] < 3:
            return None
        return [b[k][1] / b[k][2] for k in (-4, -3, -2, -1)]

    def update(self, t: float, value: float, min_rise: float, step: float) -> bool:
        index = float(t // self.BUCKET_S)
        b = self._buckets
        if b and b[-1][0] == index:
            b[-1][1] += value
            b[-1][2] += 1
        elif not b or index > b[-1][0]:
            b.append([index, value, 1.0])
            while len(b) > 4:
                b.popleft()
        last_t, self._last_t = self._last_t, t
        if self.baseline is None:
            self.baseline = value
            return False
        quiet = value <= self.baseline + max(0.5 * min_rise, 3.0 * self.deviation)
        if last_t is not None and t > last_t and quiet:
            alpha = 1.0 - math.exp(-(t - last_t) / self.tau_s)
            self.deviation += alpha * (abs(value - self.baseline) - self.deviation)
            self.baseline += alpha * (value - self.baseline)
        m = self.means()
        if m is None:
            return False
        steps = [m[1] - m[0], m[2] - m[1], m[3] - m[2]]
        # Growing all along, not in one jump (a welding run starting lifts one mean).
        growing = min(steps) >= step and max(steps) <= 0.6 * (m[3] - m[0])
        return growing and m[3] - self.baseline >= min_rise

    def rising(self, min_rise: float) -> bool:
        """Weaker: the newest 2-minute mean above the oldest, and ``min_rise`` above the
        normal level."""
        m = self.means()
        return (
            m is not None
            and self.baseline is not None
            and m[3] > m[0]
            and m[3] - self.baseline >= min_rise
        )


class ZoneFire:
    """Weak fire signals of one zone; two different ones within the window mean fire."""

    __slots__ = ("_seen", "creeping_since", "levels", "rising", "settings")

    def __init__(self, settings: FireSettings) -> None:
        self.settings = settings
        self._seen: dict[str, float] = {}  # signal -> event time last seen
        self.levels: dict[str, Severity | None] = {}  # sensor -> its own fire level now
        self.rising: dict[str, float] = {}  # CO or heat sensor -> when last seen rising
        self.creeping_since: dict[str, float] = {}  # smoke sensor -> creeping since

    def signal(self, name: str, t: float) -> None:
        self._seen[name] = t

    def active(self, t: float) -> list[str]:
        horizon = t - self.settings.combo_window_s
        return sorted(k for k, seen in self._seen.items() if seen >= horizon)
