"""A zone's fire risk in [0, 1], from the trends of its heat, smoke and CO sensors.

One `ZoneFireRisk` per zone; every temperature, smoke and CO reading of the
zone goes to `ZoneFireRisk.update`, which answers with the zone's score. Each
sensor gives one signal:

* temperature: the rate of rise, °C/min, the least-squares slope of its
  readings of the last ``trend_s`` seconds (0 until they span ``trend_s / 6``;
  cooling counts as 0);
* smoke: the latest reading, %obs/m;
* CO: the rise above the sensor's own normal level, mg/m3. The normal level
  is an exponential average (time constant ``co_tau_s``, starting at the first
  reading) that learns only while the reading is less than ``co_rise_mid / 2``
  above it: a fire, or a leak, never becomes normal.

A sensor not heard from for more than ``trend_s`` seconds (of the zone's
latest reading time) counts as 0. The strongest signal of each kind over the
zone's sensors goes through a logistic centred on its mid (p = 0.5 there) and
steep enough that p = 0.05 at a tenth of the heat mid (0.3 °C/min), a fifth
of the smoke mid (0.3 %obs/m) and three tenths of the CO mid (3 mg/m3); so
p ≈ 0.04, 0.02 and 0.01 at 0, and normal operation (±0.2 °C/min, no smoke,
CO 0–2 mg/m3 above normal) scores under 0.05 on each. The score is their
noisy-OR, ``1 - (1 - p_heat)(1 - p_smoke)(1 - p_co)``: about 0.07 for a quiet
zone, 0.5 for any one signal at its mid, more when signals agree. The mids
default to the fire combination settings of `core.limits.FireSettings`
(``combo_heat_c_per_min``, ``combo_smoke``, ``combo_co_rise``, ``combo_window_s``).

A reading costs O(1) (running sums for the slope) plus a look at each of the
zone's sensors; memory is a few numbers per sensor and at most 512 readings
per temperature sensor. The state pickles.

>>> import random
>>> rng = random.Random(5)
>>> zone = ZoneFireRisk()
>>> T0 = 1.7e9
>>> for i in range(360):   # an hour of quiet, a reading every 10 s
...     t = T0 + 10.0 * i
...     _ = zone.update("T1", "temperature", t, 21.0 + rng.gauss(0, 0.05))
...     _ = zone.update("S1", "smoke", t, max(0.0, rng.gauss(0.0, 0.05)))
...     quiet = zone.update("C1", "co", t, 3.0 + rng.gauss(0, 0.3))
>>> quiet < 0.2
True
>>> for k in range(1, 19):  # then three minutes of heat rising 4 °C/min, CO up 15 mg/m3
...     t = T0 + 3600.0 + 10.0 * k
...     _ = zone.update("T1", "temperature", t, 21.0 + 4.0 * k / 6 + rng.gauss(0, 0.05))
...     _ = zone.update("S1", "smoke", t, max(0.0, rng.gauss(0.0, 0.05)))
...     fire = zone.update("C1", "co", t, 3.0 + 15.0 + rng.gauss(0, 0.3))
>>> fire > 0.8
True
>>> why = zone.explain()
>>> round(why["heat_rate_c_per_min"]), round(why["co_rise_mg_m3"]), why["p_co"] > 0.8
(4, 15, True)
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["ZoneFireRisk"]

HAZARDS = ("temperature", "smoke", "co")
_LN19 = math.log(19.0)  # logit of 0.95
_MAX_POINTS = 512  # temperature readings kept per sensor, whatever its rate


def _logistic(z: float) -> float:
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class _Heat:
    """Least-squares rate of rise over a trailing window, from running sums."""

    __slots__ = ("last_t", "n_new", "origin", "pts", "signal", "sx", "sxx", "sxy", "sy")

    def __init__(self) -> None:
        self.last_t = -math.inf
        self.signal = 0.0
        self.pts: deque[tuple[float, float]] = deque()
        self.origin = 0.0  # times are summed relative to it, re-set as the window turns over
        self.n_new = 0  # readings since the sums were last recomputed
        self.sx = self.sy = self.sxx = self.sxy = 0.0

    def _resum(self) -> None:
        pts = self.pts
        o = self.origin = pts[0][0]
        self.sx = self.sy = self.sxx = self.sxy = 0.0
        for t, v in pts:
            x = t - o
            self.sx += x
            self.sy += v
            self.sxx += x * x
            self.sxy += x * v
        self.n_new = 0

    def update(self, t: float, v: float, window_s: float) -> None:
        pts = self.pts
        pts.append((t, v))
        x = t - self.origin
        self.sx += x
        self.sy += v
        self.sxx += x * x
        self.sxy += x * v
        cutoff = t - window_s
        while pts[0][0] < cutoff or len(pts) > _MAX_POINTS:
            t0, v0 = pts.popleft()
            x = t0 - self.origin
            self.sx -= x
            self.sy -= v0
            self.sxx -= x * x
            self.sxy -= x * v0
        self.n_new += 1
        if self.n_new >= len(pts):  # the window has turned over: exact sums, small times
            self._resum()
        n = len(pts)
        self.signal = 0.0
        if n >= 3 and t - pts[0][0] >= window_s / 6:
            den = n * self.sxx - self.sx * self.sx
            if den > 0.0:
                self.signal = 60.0 * (n * self.sxy - self.sx * self.sy) / den


class _Smoke:
    __slots__ = ("last_t", "signal")

    def __init__(self) -> None:
        self.last_t = -math.inf
        self.signal = 0.0

    def update(self, t: float, v: float) -> None:
        self.signal = max(0.0, v)


class _CO:
    """Rise above a slow normal level that does not learn rises."""

    __slots__ = ("baseline", "last_t", "signal")

    def __init__(self) -> None:
        self.last_t = -math.inf
        self.signal = 0.0
        self.baseline: float | None = None

    def update(self, t: float, v: float, tau_s: float, learn_below: float) -> None:
        base = self.baseline
        if base is None:
            self.baseline = v
            self.signal = 0.0
            return
        rise = v - base
        self.signal = max(0.0, rise)
        if rise < learn_below:
            dt = t - self.last_t
            self.baseline = base + (1.0 - math.exp(-dt / tau_s)) * rise


class ZoneFireRisk:
    """Fire-risk score of one zone from its temperature, smoke and CO readings."""

    def __init__(
        self,
        heat_rate_mid: float = 3.0,
        smoke_mid: float = 1.5,
        co_rise_mid: float = 10.0,
        trend_s: float = 180.0,
        co_tau_s: float = 3600.0,
    ) -> None:
        if min(heat_rate_mid, smoke_mid, co_rise_mid, trend_s, co_tau_s) <= 0.0:
            raise ValueError("mids, trend_s and co_tau_s must be > 0")
        self.heat_rate_mid = heat_rate_mid
        self.smoke_mid = smoke_mid
        self.co_rise_mid = co_rise_mid
        self.trend_s = trend_s
        self.co_tau_s = co_tau_s
        # Logistic slopes: p = 0.05 at 0.1, 0.2 and 0.3 of the heat, smoke and CO mids.
        self._k_heat = _LN19 / (0.9 * heat_rate_mid)
        self._k_smoke = _LN19 / (0.8 * smoke_mid)
        self._k_co = _LN19 / (0.7 * co_rise_mid)
        self._heat: dict[str, _Heat] = {}
        self._smoke: dict[str, _Smoke] = {}
        self._co: dict[str, _CO] = {}
        self._now = -math.inf  # latest reading time of the zone

    def update(self, sensor_id: str, hazard: str, t: float, value: float) -> float:
        """Add one reading (``t`` in Unix seconds); the zone's score after it.

        Readings older than the sensor's last one, and non-finite ones, are ignored."""
        if hazard == "temperature":
            heat = self._heat.get(sensor_id)
            if heat is None:
                heat = self._heat[sensor_id] = _Heat()
            if self._fresh(heat.last_t, t, value):
                heat.update(t, value, self.trend_s)
                heat.last_t = t
        elif hazard == "smoke":
            smoke = self._smoke.get(sensor_id)
            if smoke is None:
                smoke = self._smoke[sensor_id] = _Smoke()
            if self._fresh(smoke.last_t, t, value):
                smoke.update(t, value)
                smoke.last_t = t
        elif hazard == "co":
            co = self._co.get(sensor_id)
            if co is None:
                co = self._co[sensor_id] = _CO()
            if self._fresh(co.last_t, t, value):
                co.update(t, value, self.co_tau_s, self.co_rise_mid / 2)
                co.last_t = t
        else:
            raise ValueError(f"unknown hazard {hazard!r}; known: {', '.join(HAZARDS)}")
        return self._probabilities()[3]

    def _fresh(self, last_t: float, t: float, value: float) -> bool:
        if not (t >= last_t and math.isfinite(t) and math.isfinite(value)):
            return False
        if t > self._now:
            self._now = t
        return True

    def _signals(self) -> tuple[float, float, float]:
        """The strongest live signal of each kind, at least 0 (so cooling counts as 0)."""
        since = self._now - self.trend_s
        heat = smoke = co = 0.0
        for h in self._heat.values():
            if h.signal > heat and h.last_t >= since:
                heat = h.signal
        for s in self._smoke.values():
            if s.signal > smoke and s.last_t >= since:
                smoke = s.signal
        for c in self._co.values():
            if c.signal > co and c.last_t >= since:
                co = c.signal
        return heat, smoke, co

    def _probabilities(self) -> tuple[float, float, float, float]:
        heat, smoke, co = self._signals()
        p_heat = _logistic(self._k_heat * (heat - self.heat_rate_mid))
        p_smoke = _logistic(self._k_smoke * (smoke - self.smoke_mid))
        p_co = _logistic(self._k_co * (co - self.co_rise_mid))
        return p_heat, p_smoke, p_co, 1.0 - (1.0 - p_heat) * (1.0 - p_smoke) * (1.0 - p_co)

    def explain(self) -> dict[str, float]:
        """Why the zone scores what it does: its strongest signals, their probabilities
        and the score, as of the zone's latest reading."""
        heat, smoke, co = self._signals()
        p_heat, p_smoke, p_co, score = self._probabilities()
        return {
            "heat_rate_c_per_min": heat,
            "smoke_obs_per_m": smoke,
            "co_rise_mg_m3": co,
            "p_heat": p_heat,
            "p_smoke": p_smoke,
            "p_co": p_co,
            "score": score,
        }
