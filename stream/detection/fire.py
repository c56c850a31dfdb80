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
import statistics
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


def _slope(points: list[tuple[int, float]]) -> float:
    """Theil-Sen slope of ``(x, y)`` points: the median of the pairwise slopes, which a
    few outliers (a welding run, a forklift's pass) do not move; 0 for fewer than 2."""
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points) for b in points[i + 1 :]]
    return statistics.median(slopes) if slopes else 0.0


def _trend_z(points: list[tuple[int, float]]) -> float:
    """Mann-Kendall z of ``(x, y)`` points ordered by x: how far the count of rising
    pairs minus falling pairs stands above what chance gives (ties counted as neither;
    the variance without the tie correction, which only makes it stricter)."""
    n = len(points)
    s = sum((b[1] > a[1]) - (b[1] < a[1]) for i, a in enumerate(points) for b in points[i + 1 :])
    if n < 3 or s == 0:
        return 0.0
    sd = math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    return (s - math.copysign(1.0, s)) / sd


def _envelope(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Each point's value replaced by the lowest from it to the last: what a signal
    that only ever gets lifted for a while (never lowered) shows underneath."""
    out: list[tuple[int, float]] = []
    low = math.inf
    for k, v in reversed(points):
        low = min(low, v)
        out.append((k, low))
    out.reverse()
    return out


class Creep:
    """Is a signal creeping up, as a smouldering fire makes smoke, CO and heat do?

    What is judged is the signal's *floor*: the lowest reading of each half minute
    of the last 8 minutes. Welding runs and forklift passes only add to a signal, so
    they lift some floors for a minute or three; a smouldering fire lifts them all,
    steadily (see `fit`), and the fitted floor now stands ``min_rise`` above the
    signal's own normal level: an exponential average (``tau_s``) of the lowest floor
    of the 8 minutes, which runs do not lift, and which follows a shift's level
    within the hour but lags a fire's minutes.

    >>> c = Creep()
    >>> quiet = [c.update(float(t), 0.2 + 0.01 * (t % 3), 0.4, 0.04) for t in range(0, 3600, 10)]
    >>> any(quiet)
    False
    >>> growing = [c.update(3600.0 + t, 0.2 + 0.0015 * t, 0.4, 0.04) for t in range(0, 900, 10)]
    >>> growing.index(True) * 10 // 60   # minutes after it began to grow (0.09 a minute)
    5
    >>> after = [c.update(4500.0 + t, 0.2, 0.4, 0.04) for t in range(0, 300, 10)]
    >>> after[-1]   # back to normal
    False
    >>> step = [c.update(5000.0 + t, 0.2 if t < 240 else 1.2, 0.4, 0.04) for t in range(0, 900, 10)]
    >>> any(step)   # one step that holds is not creeping
    False
    """

    __slots__ = (
        "_creeps",
        "_fit",
        "_floors",
        "_head",
        "_next_t",
        "_t",
        "_v",
        "baseline",
        "level",
        "tau_s",
    )

    #: The floors are worked out again at most this often (event time, s): a pass over
    #: 8 minutes of readings for every reading would cost the rules a third of their
    #: speed, for an answer that moves on the scale of minutes.
    EVERY_S = 30.0
    #: Half minutes in the 8 minutes judged (each 4-minute half needs 3 with a reading).
    BUCKETS = 16

    def __init__(self, tau_s: float = 3600.0) -> None:
        self.tau_s = tau_s
        self.baseline: float | None = None  # under the runs: what creeping is judged by
        self.level: float | None = None  # the usual floor: what `rising` is judged by
        # The last 8 minutes of readings, oldest first from _head, in two flat arrays
        # (16 bytes a reading; a tuple in a deque took ~110).
        self._t = array("d")
        self._v = array("d")
        self._head = 0
        self._floors: list[tuple[int, float]] = []  # as of the last time worked out
        self._fit: tuple[float, float] | None = None  # (slope /min, fitted floor now)
        self._creeps = False
        self._next_t = -math.inf

    def floors(self, t: float) -> list[tuple[int, float]]:
        """The lowest reading of each half minute of the last 8 minutes that has one,
        as (half minute, floor), oldest first (half minute 15 ends at ``t``)."""
        low = [math.inf] * self.BUCKETS
        ts, vs = self._t, self._v
        for i in range(self._head, len(ts)):
            k = self.BUCKETS - 1 - int((t - ts[i]) // 30.0)
            if 0 <= k < self.BUCKETS and vs[i] < low[k]:
                low[k] = vs[i]
        return [(k, v) for k, v in enumerate(low) if v != math.inf]

    def _both_halves(self, pts: list[tuple[int, float]]) -> bool:
        """Do both 4-minute halves of the 8 minutes hold at least 3 floors?"""
        half = self.BUCKETS // 2
        return sum(k < half for k, _ in pts) >= 3 and sum(k >= half for k, _ in pts) >= 3

    def fit(
        self, pts: list[tuple[int, float]], rate: float, jump: float
    ) -> tuple[float, float] | None:
        """(slope a minute, fitted level now) when the ``floors`` creep up; None otherwise
        or on a gap.

        The floors' lower envelope (each the lowest floor from it to now) forgets the
        runs that came and went. A jump of the envelope by more than ``jump`` within the
        last 5 minutes is a run still going on (a smouldering fire's floor rises a few
        hundredths in a half minute): what it hides is left out. What is left creeps
        when its Theil-Sen slope is at least ``rate`` a minute, it rises in each
        4-minute half, and no single half minute holds more than 40 % of its rise (a
        run that started and holds for longer is a step, not a creep).
        """
        env = _envelope(pts)
        for i in range(1, len(env)):
            if env[i][1] - env[i - 1][1] > jump and env[i][0] >= self.BUCKETS - 10:
                env = _envelope(pts[:i])
                break
        if not self._both_halves(env):
            return None
        half = self.BUCKETS // 2
        first = [v for k, v in env if k < half]
        second = [v for k, v in env if k >= half]
        rise = env[-1][1] - env[0][1]
        if (
            first[-1] <= first[0]
            or second[-1] <= first[-1]
            or max(b[1] - a[1] for a, b in pairwise(env)) > 0.4 * rise
        ):
            return None
        slope = 2.0 * _slope(env)  # per half minute -> per minute
        if slope < rate:
            return None
        offset = statistics.median(v - 0.5 * slope * k for k, v in env)
        return slope, offset + 0.5 * slope * (self.BUCKETS - 1)

    def update(self, t: float, value: float, min_rise: float, rate: float | None) -> bool:
        """Add a reading; is the signal creeping up at ``rate`` or more (with ``rate``
        None: is it rising, the weaker test of `rising`)? Worked out once every
        ``EVERY_S``; between, the last answer."""
        ts, vs = self._t, self._v
        head = self._head
        ts.append(t)
        vs.append(value)
        horizon = t - 480.0
        while ts[head] <= horizon:  # the newest (t) is always kept
            head += 1
        if head > 64 and 2 * head > len(ts):  # compact: the expired front goes
            del ts[:head], vs[:head]
            head = 0
        self._head = head
        if t < self._next_t:
            return self._creeps
        dt = t - self._next_t + self.EVERY_S
        self._next_t = t + self.EVERY_S
        pts = self._floors = self.floors(t)
        if pts:  # the normal levels: averages of the 8 minutes' lowest and newest floor
            low, new = min(v for _, v in pts), pts[-1][1]
            if self.baseline is None or self.level is None or not math.isfinite(dt):
                self.baseline, self.level = low, new
            else:
                alpha = 1.0 - math.exp(-min(dt, self.tau_s) / self.tau_s)
                self.baseline += alpha * (low - self.baseline)
                self.level += alpha * (new - self.level)
        if rate is None:
            self._fit = None
            self._creeps = self.rising(min_rise)
            return self._creeps
        fit = self._fit = self.fit(pts, rate, 0.5 * min_rise)
        self._creeps = (
            fit is not None and self.baseline is not None and fit[1] - self.baseline >= min_rise
        )
        return self._creeps

    def rising(self, min_rise: float) -> bool:
        """Weaker, for the signals that go with a creeping smoke (as of the last time
        the floors were worked out): the Mann-Kendall test on the floors of the 8
        minutes calls it a trend (z >= 2) and their Theil-Sen line rises by at least
        ``min_rise``, or a weaker trend (z >= 1) has taken the newest 2 minutes'
        floors ``min_rise`` above their usual level (a coarse sensor's 0.5 °C steps have
        no Theil-Sen slope). A forklift's pass does not tilt the line, and a wobble
        that comes and goes is no trend."""
        pts = self._floors
        if not self._both_halves(pts):
            return False
        z = _trend_z(pts)
        if z >= 2.0 and _slope(pts) * self.BUCKETS >= min_rise:
            return True  # a clear trend, by at least min_rise over the 8 minutes
        new = [v for k, v in pts if k >= self.BUCKETS - 4]
        return (  # or a weaker one, that has taken it min_rise above its usual level
            z >= 1.0
            and self.level is not None
            and bool(new)
            and statistics.fmean(new) - self.level >= min_rise
        )

    @property
    def fitted(self) -> tuple[float, float] | None:
        """(slope a minute, fitted floor now) when last found rising (None otherwise)."""
        return self._fit


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
