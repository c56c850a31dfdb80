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
from array import array
from collections import deque
from itertools import pairwise

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

    The last 8 minutes in four 2-minute means, oldest first: it creeps when each
    is higher than the one before (by ``step``, no step more than 60 % of the whole
    rise), and the newest stands ``min_rise`` above the signal's own normal level.
    A welding run or a forklift's pass lifts a level in a step and holds it or
    falls back; a smouldering fire keeps growing.
    The normal level is an exponential average (``tau_s``) of the readings that are
    not well above it, so a creeping signal never becomes normal.

    >>> c = Creep()
    >>> quiet = [c.update(float(t), 0.2 + 0.01 * (t % 3), 0.3, 0.02) for t in range(0, 3600, 10)]
    >>> any(quiet)
    False
    >>> growing = [c.update(3600.0 + t, 0.2 + 0.0015 * t, 0.3, 0.02) for t in range(0, 900, 10)]
    >>> growing.index(True) * 10 // 60   # minutes after it began to grow
    5
    >>> after = [c.update(4500.0 + t, 0.2, 0.3, 0.02) for t in range(0, 180, 10)]
    >>> after[-1]   # back to normal: within two minutes the newest mean falls
    False
    >>> c.update(5000.0, 1.5, 0.3, 0.02)   # one jump is not creeping
    False
    """

    __slots__ = (
        "_creeps",
        "_head",
        "_means",
        "_next_t",
        "_t",
        "_v",
        "baseline",
        "deviation",
        "tau_s",
    )

    #: The 2-minute means are worked out again at most this often (event time, s):
    #: a pass over 8 minutes of readings for every reading would cost the rules a third
    #: of their speed, for an answer that moves on the scale of minutes.
    EVERY_S = 30.0

    def __init__(self, tau_s: float = 3600.0) -> None:
        self.tau_s = tau_s
        self.baseline: float | None = None
        self.deviation = 0.0
        # The last 8 minutes of readings, oldest first from _head, in two flat arrays
        # (16 bytes a reading; a tuple in a deque took ~110).
        self._t = array("d")
        self._v = array("d")
        self._head = 0
        self._means: list[float] | None = None
        self._creeps = False
        self._next_t = -math.inf

    def means(self, t: float) -> list[float] | None:
        """The four 2-minute means of the last 8 minutes, oldest first (None: a gap)."""
        sums = [0.0, 0.0, 0.0, 0.0]
        counts = [0, 0, 0, 0]
        ts, vs = self._t, self._v
        for i in range(self._head, len(ts)):
            at, v = ts[i], vs[i]
            k = int((t - at) // 120.0)
            if 0 <= k < 4:
                sums[3 - k] += v
                counts[3 - k] += 1
        if not all(counts):
            return None
        return [s / n for s, n in zip(sums, counts, strict=True)]

    def update(self, t: float, value: float, min_rise: float, step: float) -> bool:
        ts, vs = self._t, self._v
        head = self._head
        last_t = ts[-1] if len(ts) > head else None
        ts.append(t)
        vs.append(value)
        horizon = t - 480.0
        while ts[head] <= horizon:  # the newest (t) is always kept
            head += 1
        if head > 64 and 2 * head > len(ts):  # compact: the expired front goes
            del ts[:head], vs[:head]
            head = 0
        self._head = head
        if self.baseline is None:
            self.baseline = value
            return False
        if (
            value <= self.baseline + max(0.5 * min_rise, 3.0 * self.deviation)
            and last_t is not None
        ):
            dt = t - last_t
            if dt > 0:
                alpha = 1.0 - math.exp(-dt / self.tau_s)
                self.deviation += alpha * (abs(value - self.baseline) - self.deviation)
                self.baseline += alpha * (value - self.baseline)
        if t < self._next_t:
            return self._creeps
        self._next_t = t + self.EVERY_S
        m = self._means = self.means(t)
        if m is None:
            self._creeps = False
            return False
        steps = [b - a for a, b in pairwise(m)]
        # Growing all along, not in one jump (a welding run starting lifts one mean).
        growing = min(steps) >= step and max(steps) <= 0.6 * (m[-1] - m[0])
        self._creeps = growing and m[-1] - self.baseline >= min_rise
        return self._creeps

    def rising(self, min_rise: float) -> bool:
        """Weaker: the newest 2-minute mean above the oldest, and ``min_rise`` above the
        normal level (as of the last time the means were worked out)."""
        m = self._means
        return (
            m is not None
            and self.baseline is not None
            and m[-1] > m[0]
            and m[-1] - self.baseline >= min_rise
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
