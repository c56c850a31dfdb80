"""A sustained departure towards danger, opened only when rarer than a stated budget.

The stream's anomaly model. It answers one question an inspector can act on:
*has this sensor been, for the last 20 minutes, further towards danger than
its recent level — allowing for how the rest of its zone moved — and its
usual level at this time of day allow, and how rare is that for this sensor?*

Per sensor, in constant memory (a few hundred numbers):

* **Minute means** of the inputs, and the mean of the last ``span`` (20) of
  them: the *level now*. A blip (a forklift passing, a welding run) moves it
  little; an hour at another level moves it fully. Levels whose noise grows
  with them (gas, dust, vibration) are taken on a log scale (``log_floor``).
* **Recent level**: the mean of the ``recent_min`` (60) minutes before the
  span, of those learnt (a departure's minutes are not remembered). The level now
  minus the recent level, in units of its own usual size, is the sensor's
  *movement* ``z``.
* **With its zone** (when the caller passes ``x["common"]``, the median
  movement towards danger of the zone's other sensors — each one's `towards` —
  as `stream.detection.models.ModelBank` does): sensors of a zone follow the same
  work — a shift starting, a line switched on, the ventilation stepping — so
  the part of ``z`` the zone explains (``beta * common``, ``beta`` learnt
  online as a regression slope) is taken out, and what remains is judged in
  units of its usual size (which grows with how much the zone moves: a fit
  ``a + b |common|``); a zone moving the same way (a spread or more) explains,
  it never makes a movement more surprising than it is alone. A night at
  day-shift level, or vibration doubled while the rest of the workshop carries
  on as before, remains. Once a context slot
  has been learnt on two earlier days, the level against its usual level for
  the time, allowing for the zone's (``x["common_ctx"]``), is judged too.
* **Alone** (no zone to compare with): the level now against both the recent
  level and the **usual level by context** (48 slots: the local hour on
  working days and on weekends, each an exponentially weighted mean and mean
  absolute deviation, widened to how far a day usually is from the days
  before): a change (two usual movements or more) is judged by how unusual the
  level is for the time, anything else by the lesser surprise; the slot must
  have been learnt on an earlier day: one sensor alone cannot tell its first shift start, or its
  first Monday, from a departure.
* The **departure** ``D`` is that remainder in spreads, in the direction of
  danger (``up``, ``down`` or ``both``).
* **Budget** (extreme-value calibration): what is judged is the *sustained*
  departure ``S``, the least ``D`` of the last ``sustain`` (10) minutes — a
  departure that lasts, not a spike. The largest ``S`` of each hour feeds a
  Gumbel fit of hourly maxima (method of moments on exponentially weighted
  mean and mean square, a fortnight's memory, blended with a prior of
  ``calibration_prior = (location, scale, hours)`` while few hours are
  known). ``S`` is flagged when an hourly maximum would reach it less often
  than ``budget`` times per ``budget_days`` days (by default once in 100
  days) and it is at least ``min_departure`` (4) spreads, after
  ``warmup_hours``; a flag is held while ``D`` stays half-way there. Every hour
  is calibrated on, departures included but cut at ``winsor`` (2) times the
  threshold: a sensor that does something several times a day (a hot shop's
  tapping) lifts its calibration until that is ordinary for it, while a
  departure once in weeks barely moves a fortnight of hourly maxima.

The score is the return period on a log scale, 0.5 at the budget:
``log10(T) / (2 log10(T_budget))``, and below 0.5 until flagged. A
departure half-way to the budget is not learnt by the references (a leak must
not become the new normal), for at most ``adapt_after_min`` minutes, after
which a lasting change is learnt. `explain` says what was expected, what was
seen and how rare it is. State: a few hundred numbers (the span, the hour
before it, 48 context slots, River's P² median of the movement).

>>> import math
>>> det = DepartureDetector()
>>> def shop(i):  # every 10 s: a workshop busy 08-17 local (UTC+5), quiet at night
...     hour = ((i * 10) / 3600 + 5) % 24
...     return (3.0 if 8 <= hour < 17 else 1.0) + 0.1 * math.sin(i / 7)
>>> for i in range(6 * 8640):  # six days
...     x = {"value": shop(i), "t": 10.0 * i}
...     _ = det.score_one(x); det.learn_one(x)
>>> det.flagged
False
>>> for i in range(6 * 8640, 6 * 8640 + 360):  # 01:00-02:00 local at the day-shift level
...     x = {"value": 3.0, "t": 10.0 * i}
...     s = det.score_one(x); det.learn_one(x)
>>> det.flagged, s >= 0.5
(True, True)
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Literal

from river import stats

from online_ml.base import AnomalyDetector, Explanation

__all__ = ["DepartureDetector"]

_EULER = 0.5772156649015329
_MAD = 1.2533  # mean absolute deviation -> standard deviation, normal distribution
_MEDIAN_TO_MEAN = 0.7979 / 0.6745  # median absolute deviation -> mean absolute deviation
_CHANGE = 2.0  # a movement this many usual movements: a change, for a sensor alone
_SLOTS = 48
# The model's scale is held within +-_BIG: levels and the zone's movement past it are no
# reading of a real sensor, and beyond it the 4-byte slots would hold infinities.
_BIG = 1e30
_MAX_MOVE = 1e9  # a zone's movement, in spreads, is taken as at most this (its square stays finite)
_SAME_WAY = 1.0  # a zone moving this many spreads with a sensor can no longer accuse it


def _same_way(zone: float, own: float) -> bool:
    """Has the zone moved (``zone``, in spreads) the way the sensor did (``own``), by
    enough to count? Then it can explain the sensor's movement, never make it more
    surprising than it is on its own: the usual remainder is learnt mostly on quiet
    minutes, and a zone's production change is fitted less exactly."""
    return zone * own > 0.0 and abs(zone) >= _SAME_WAY


class _WithZone:
    """A sensor's quantity ``x`` against its zone's ``m``: how much of ``m`` it follows
    (the slope E[x m] / E[m^2], -3 .. 3, a prior of 1; the zone's movement comes towards
    danger, so oxygen falling as the work's gases rise follows it) and how large what remains
    usually is — a + b |m| by least squares over |residual| against |m| (b >= 0, a at
    least a tenth of the mean), each learnt |residual| cut at 3 of that size, a day's
    memory: a shift starting is explained less exactly than a quiet night."""

    __slots__ = ("fit", "mm", "n", "xm")

    def __init__(self) -> None:
        self.xm = 1.0
        self.mm = 1.0
        self.n = 0
        self.fit = [1.0, 0.0, 0.0, 1.0, 0.0]  # E[1], E[|m|], E[m^2], E[|e|], E[|e| |m|]

    def slope(self) -> float:
        return min(max(self.xm / self.mm, -3.0), 3.0) if self.mm > 1e-9 else 0.0

    def size(self, m: float) -> float:
        """The usual |residual| when the zone moves by ``m``."""
        one, am, mm, ae, aem = self.fit
        var = mm * one - am * am
        b = max((aem * one - am * ae) / var, 0.0) if var > 1e-9 else 0.0
        a = max((ae - b * am) / one, 0.1 * ae / one)
        return a + b * abs(m)

    def unit(self, m: float) -> float:
        """One spread of the residual (at least 0.05 of ``x``'s own units)."""
        return max(_MAD * self.size(m), 0.05)

    def learn(self, x: float, m: float) -> None:
        self.n += 1
        rate = max(1.0 / (self.n + 60), 1.0 / 1440)
        e = min(abs(x - self.slope() * m), 3.0 * self.size(m))
        am = abs(m)
        fit = self.fit
        for i, v in enumerate((1.0, am, am * am, e, e * am)):
            fit[i] += rate * (v - fit[i])
        self.xm += rate * (x * m - self.xm)
        self.mm += rate * (m * m - self.mm)


def _usual_for(slot: int) -> str:
    """A context slot in words: "its usual level at 14:00 on working days"."""
    days = "weekends" if slot >= 24 else "working days"
    return f"its usual level at {slot % 24:02d}:00 on {days}"


@dataclass(slots=True)
class _Judgement:
    departure: float  # D, in spreads (towards danger)
    level: float  # the level now, model scale
    expected: float  # what the reference expected, model scale
    spread: float  # one spread, model scale
    reference: str  # the reference, in words


class DepartureDetector(AnomalyDetector):
    """Sustained departures towards danger, rarer than a budget (see the module)."""

    # State in slots, not a dict per instance: ~1.5 KB less per sensor.
    __slots__ = (
        "_absorbed",
        "_b_mean",
        "_b_n",
        "_b_sq",
        "_c_days",
        "_c_dev",
        "_c_last",
        "_c_mean",
        "_c_n",
        "_common",
        "_common_ctx",
        "_d_recent",
        "_excused_until",
        "_fit",
        "_g_dev",
        "_high",
        "_hour",
        "_hour_clean",
        "_hour_max",
        "_last_raw",
        "_low",
        "_m_n",
        "_m_peak",
        "_m_sum",
        "_minute",
        "_n",
        "_now",
        "_p_dev",
        "_p_n",
        "_past",
        "_past_pos",
        "_past_sum",
        "_pending",
        "_r_dev",
        "_r_mean",
        "_r_med",
        "_ring",
        "_ring_pos",
        "_step",
        "_streak",
        "_zone",
        "_zone_ctx",
        "adapt_after_min",
        "budget",
        "budget_days",
        "calibration_prior",
        "context_alpha",
        "context_days",
        "direction",
        "flagged",
        "log_floor",
        "min_context",
        "min_departure",
        "recent_min",
        "span",
        "suspicious",
        "sustain",
        "sustained",
        "utc_offset_h",
        "utc_offset_s",
        "warmup_hours",
        "winsor",
        "z",
        "zc",
    )

    def __init__(
        self,
        direction: Literal["up", "down", "both"] = "up",
        budget: float = 1.0,
        budget_days: float = 100.0,
        span: int = 20,
        recent_min: int = 60,
        context_alpha: float = 0.05,
        min_departure: float = 4.0,
        utc_offset_h: float = 5.0,
        min_context: int = 20,
        calibration_prior: tuple[float, float, int] = (1.6, 0.6, 6),
        adapt_after_min: int = 240,
        sustain: int = 10,
        log_floor: float | None = None,
        context_days: int = 2,
        warmup_hours: int = 3,
        winsor: float = 2.0,
    ) -> None:
        if direction not in ("up", "down", "both"):
            raise ValueError("direction must be 'up', 'down' or 'both'")
        if not budget > 0 or not budget_days > 0:
            raise ValueError("the budget must be > 0")
        if log_floor is not None and not log_floor > 0:
            raise ValueError("log_floor must be > 0")
        if span < 1 or sustain < 1:
            raise ValueError("span and sustain must be >= 1")
        self.direction = direction
        self.budget = budget
        self.budget_days = budget_days
        self.span = span
        self.recent_min = recent_min
        self.context_alpha = context_alpha
        self.min_departure = min_departure
        self.utc_offset_h = utc_offset_h
        self.utc_offset_s = utc_offset_h * 3600.0
        self.min_context = min_context
        self.calibration_prior = calibration_prior
        self.adapt_after_min = adapt_after_min
        self.sustain = sustain
        self.log_floor = log_floor
        self.context_days = context_days
        self.warmup_hours = warmup_hours
        self.winsor = winsor
        # The minute being filled; the zone's movement last passed in it.
        self._minute: int | None = None
        self._m_sum = 0.0
        self._m_n = 0
        # The zone's recent movement towards danger at its peak, fading (half in ~14 min):
        # sensors of a zone start within minutes of each other, not in the same minute.
        self._m_peak = 0.0
        self._common: float | None = None
        self._common_ctx: float | None = None
        # The last `span` minute means (a ring).
        self._ring: list[float] = []  # a list: summed every minute, faster than an array
        self._ring_pos = 0
        # Recent level and the usual size of the movement; the overall spread (a floor).
        self._r_mean: float | None = None
        # The minutes before the span (learnt ones only: a departure is not remembered).
        self._past = array("f")  # 4-byte floats: a level to 7 digits is plenty
        self._past_pos = 0
        self._past_sum = 0.0
        self._r_dev = 0.0
        self._r_med = stats.Quantile(0.5)  # median |level now - recent level| (P²)
        self._g_dev = 0.0
        self._n = 0  # minutes learnt
        self._high = -math.inf
        self._low = math.inf
        self._last_raw: float | None = None
        self._step = math.inf  # the smallest change between two inputs (sensor unit)
        # Its movement against the zone's, and its level against its usual level for the
        # time against the zone's.
        self._zone = _WithZone()
        self._zone_ctx = _WithZone()
        self.z: float | None = None  # the movement of the newest closed minute
        self.zc: float | None = None  # the level now against its context, in its spreads
        # Context slots: mean, mean absolute deviation, minutes seen.
        self._c_mean = array("f", bytes(4 * _SLOTS))
        self._c_dev = array("f", bytes(4 * _SLOTS))
        self._c_n = array("i", bytes(4 * _SLOTS))
        self._c_days = array("i", bytes(4 * _SLOTS))  # distinct days it was learnt on
        self._c_last = array("i", [-1] * _SLOTS)  # the last of them (days since 1970)
        self._p_dev = 0.0  # |level - the slot's mean from earlier days|, on average
        self._p_n = 0
        # Hourly maxima of D: the open hour's, and their EW mean and mean square.
        self._hour: int | None = None
        self._hour_max = 0.0
        self._hour_clean = 0.0  # the same, minutes of a departure (half-way there) left out
        # (maximum, maximum left out) of an hour that closed during a departure: whether
        # the departure counts is known when it ends (an absorbed one does not).
        self._pending: tuple[float, float] | None = None
        self._b_mean = 0.0
        self._b_sq = 0.0
        self._b_n = 0
        self._fit: tuple[int, float, float, float] | None = None  # (_b_n, mu, beta, thr)
        # The judgement of the newest closed minute, and the latch.
        self._now: _Judgement | None = None
        self.flagged = False
        self.suspicious = False  # half-way to the budget
        self._streak = 0
        self._d_recent: list[float] = []  # D of the last `sustain` minutes
        self.sustained = 0.0  # the least of them
        self._excused_until = -1  # minutes up to this one are explained elsewhere
        # The level it was absorbed at (model scale): while it holds there (its reference
        # catching up with the new activity), still explained.
        self._absorbed: float | None = None

    # --- the interface -----------------------------------------------------------------
    def score_one(self, x: dict[str, float]) -> float:
        """The rarity of the departure of the newest closed minute (0.5 at the budget):
        of the sustained departure (the least of the last ``sustain`` minutes) until
        it is flagged, below 0.5 while it is not."""
        if self._now is None:
            return 0.0
        if self.flagged:
            return max(self._score(self._now.departure), 0.5)
        return min(self._score(self.sustained), 0.499)

    def learn_one(self, x: dict[str, float]) -> None:
        t, raw = x["t"], x["value"]
        last = self._last_raw
        if last is not None and raw != last:  # the sensor's step: its smallest change seen
            self._step = min(self._step, abs(raw - last))
        self._last_raw = raw
        v = min(max(self._y(raw), -_BIG), _BIG)
        minute = int(t // 60)
        if self._minute is not None and minute != self._minute and self._m_n:
            self._close(self._m_sum / self._m_n, self._minute)
            self._m_sum, self._m_n = 0.0, 0
            self._common = self._common_ctx = None
        if self._minute is None or minute >= self._minute:
            self._minute = minute
        self._m_sum += v
        self._m_n += 1
        # The zone's movements come towards danger (see `towards`); kept in this
        # sensor's own sense: oxygen's "up" is the zone's "down".
        sign = self._sign()
        common = x.get("common")
        if common is not None and math.isfinite(common):
            self._common = sign * min(max(common, -_MAX_MOVE), _MAX_MOVE)
        common = x.get("common_ctx")
        if common is not None and math.isfinite(common):
            self._common_ctx = sign * min(max(common, -_MAX_MOVE), _MAX_MOVE)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        j = self._now
        if j is None:
            return None
        half = 3.0 * _MAD * j.spread
        rarity = self.return_period_days(j.departure)
        if math.isinf(rarity):
            rare = "never in its normal operation so far"
        elif rarity >= 1:
            rare = f"about once in {rarity:,.0f} days of its normal operation"
        else:
            rare = f"about {1 / rarity:.0f} times a day in its normal operation"
        return Explanation(
            f"{self.span}-min mean against {j.reference}"
            f" ({j.departure:.1f} spreads {self._word()}; as far as this {rare};"
            f" budget once in {self.budget_days / self.budget:g} days)",
            self._unit(j.level),
            self._unit(j.expected - half),
            self._unit(j.expected + half),
        )

    @property
    def departure(self) -> float | None:
        """The newest minute's departure towards danger, in spreads (None before enough
        is known): what the budget's threshold is held against."""
        return None if self._now is None else self._now.departure

    def towards(self) -> tuple[float | None, float | None]:
        """The newest minute's movement ``z`` and level against its context ``zc``,
        towards danger (oxygen's taken downwards): what the zone's other sensors are told
        as ``x["common"]`` and ``x["common_ctx"]`` — a shift starting moves a zone's gases
        up and its oxygen down, both towards danger, together."""
        sign = self._sign()
        z, zc = self.z, self.zc
        return (None if z is None else sign * z), (None if zc is None else sign * zc)

    def _sign(self) -> float:
        return -1.0 if self.direction == "down" else 1.0

    @property
    def flagging(self) -> bool:
        return self.flagged

    @property
    def episode_s(self) -> float:
        """How long the current departure (flagged or half-way there) has lasted, s."""
        return 60.0 * self._streak

    def absorb(self) -> None:
        """The current departure is explained elsewhere (most of the zone moves with it,
        e.g. a shift starting on a kind of day not seen before): not an anomaly, and
        learnt for the next 15 minutes, and for as long as it holds at the movement it was
        absorbed at, until its own reference has caught up with the new activity."""
        if self._minute is not None:
            self._excused_until = self._minute + 15
        if self._ring:  # the furthest towards danger of its last minutes
            up = self.direction != "down"
            self._absorbed = max(self._ring) if up else min(self._ring)
        self.flagged = False
        self._d_recent.clear()
        self._streak = 0
        # Explained, so not part of this sensor's normal operation: its calibration forgets
        # it (one shift start's minutes before they were absorbed would otherwise lift the
        # threshold by half for a fortnight).
        self._hour_max = self._hour_clean
        if self._pending is not None:
            self._calibrate(self._pending[1])
            self._pending = None

    # --- scales --------------------------------------------------------------------------
    def _y(self, value: float) -> float:
        """The model's scale: logarithmic for a level whose noise grows with it."""
        floor = self.log_floor
        if floor is None:
            return value
        return math.log((value if value > 0.0 else 0.0) + floor)

    def _unit(self, y: float) -> float:
        """Back from the model's scale to the sensor's unit."""
        if self.log_floor is None:
            return y
        return math.exp(min(y, 709.0)) - self.log_floor  # exp(709) ~ 8e307: no overflow

    def _towards_danger(self, d: float) -> float:
        if self.direction == "up":
            return d
        if self.direction == "down":
            return -d
        return abs(d)

    def _word(self) -> str:
        return {"up": "above", "down": "below", "both": "away"}[self.direction]

    # --- calibration -----------------------------------------------------------------
    def _gumbel(self) -> tuple[float, float]:
        """(location, scale) of the hourly maxima of D, the prior blended in (worked out
        once per calibrated hour)."""
        fit = self._fit
        if fit is None or fit[0] != self._b_n:
            mu, beta = self._gumbel_now()
            p = self.budget / (self.budget_days * 24.0)
            thr = max(mu - beta * math.log(-math.log1p(-p)), self.min_departure)
            fit = self._fit = (self._b_n, mu, beta, thr)
        return fit[1], fit[2]

    def _gumbel_now(self) -> tuple[float, float]:
        m0, s0, k = self.calibration_prior
        n = self._b_n
        var0 = (s0 * math.pi) ** 2 / 6.0
        mean0 = m0 + _EULER * s0
        w = n / (n + k)
        mean = w * self._b_mean + (1 - w) * mean0
        sq = w * self._b_sq + (1 - w) * (var0 + mean0 * mean0)
        beta = math.sqrt(6.0 * max(sq - mean * mean, 1e-6)) / math.pi
        return mean - _EULER * beta, beta

    def threshold(self) -> float:
        """D at the budget: an hourly maximum this high once per budget period."""
        self._gumbel()
        assert self._fit is not None
        return self._fit[3]

    def return_period_days(self, departure: float) -> float:
        """How often an hourly maximum of D reaches ``departure`` (days between)."""
        mu, beta = self._gumbel()
        z = (departure - mu) / beta
        tail = -math.expm1(-math.exp(-z)) if z < 700 else 0.0
        return math.inf if tail <= 0.0 else 1.0 / (24.0 * tail)

    def _score(self, departure: float) -> float:
        if departure <= 0.0:
            return 0.0
        thr = self.threshold()
        if departure >= thr:  # at or past the budget: 0.5 .. 1
            return min(1.0, 0.5 + 0.5 * (departure - thr) / thr)
        period = self.return_period_days(departure) * 24.0  # hours
        if period <= 1.0:
            return 0.0
        budget = self.budget_days * 24.0 / self.budget
        return min(0.499, 0.5 * math.log10(period) / math.log10(budget))

    def _calibrate(self, hour_max: float) -> None:
        self._b_n += 1
        a = max(1.0 / self._b_n, 1.0 / (24 * 14))  # a fortnight's memory
        self._b_mean += a * (hour_max - self._b_mean)
        self._b_sq += a * (hour_max * hour_max - self._b_sq)

    # --- judging a minute ----------------------------------------------------------------
    def _slot(self, minute: int) -> int:
        local = minute * 60 + self.utc_offset_s
        hour = int(local // 3600) % 24
        weekday = (int(local // 86400) + 3) % 7  # 1970-01-01 was a Thursday
        return hour + (24 if weekday >= 5 else 0)

    def _floor(self) -> float:
        """The smallest spread: a coarse sensor's flat stretch must not divide by zero,
        nor one step of its resolution look like a departure (half a step, at the level
        of the recent readings, on the model's scale)."""
        step = self._step if math.isfinite(self._step) else 0.0
        if self.log_floor is not None and self._r_mean is not None:
            step /= math.exp(self._r_mean)  # d log(v + floor) = dv / (v + floor)
        return max(0.25 * self._g_dev, 0.5 * step, 1e-6 * max(abs(self._high), abs(self._low), 1.0))

    def _context(self, minute: int) -> int | None:
        """The context slot to judge ``minute`` by: its own, else the same hour on the
        other kind of day; None if neither has been seen enough."""
        slot = self._slot(minute)
        for c in (slot, (slot + 24) % _SLOTS):
            if self._c_n[c] >= self.min_context:
                return c
        return None

    def _judge(
        self, level: float, minute: int
    ) -> tuple[_Judgement | None, float | None, float | None]:
        """(the judgement, the movement z, the level against its context zc) of the level
        now; None before enough is known."""
        if self._r_mean is None or self._n < 2 * self.span:
            return None, None, None
        floor = self._floor()
        r_spread = max(self._r_dev, floor)
        unit = _MAD * r_spread
        z = (level - self._r_mean) / unit
        c = self._context(minute)
        zc: float | None = None
        c_spread = 0.0
        if c is not None:
            # The slot's own spread, or how far a day's level at this time usually is
            # from the days before (production, weather), whichever is larger.
            c_spread = max(self._c_dev[c], self._p_dev, floor)
            zc = (level - self._c_mean[c]) / (_MAD * c_spread)
        m = self._common
        zone = self._zone
        if m is not None and zone.n >= 60:
            beta = zone.slope()
            d = self._towards_danger(z - beta * m) / zone.unit(m)
            same_way = _same_way(m, z)
            # Moving with its zone minutes after the others (or holding while they fall
            # back) is moving with its zone: judged against the zone's recent peak too,
            # and explained by whichever of the two explains more.
            # (the zone's peak the way that explains a move towards danger: up for a sensor
            # that follows its zone, down for one that moves against it)
            follows = 1.0 if beta >= 0.0 else -1.0
            peak = self._m_peak = max(0.95 * self._m_peak, self._towards_danger(follows * m))
            if peak > 0.0 and self.direction != "both":
                m_peak = follows * (peak if self.direction == "up" else -peak)
                d_peak = self._towards_danger(z - beta * m_peak) / zone.unit(m_peak)
                if d_peak < d:
                    d, m = d_peak, m_peak
            moved = f"{self._sign() * m:+.1f}" if abs(m) >= 0.05 else "0"
            own = self._towards_danger(z)
            if same_way and own < d:
                best = _Judgement(
                    own,
                    level,
                    self._r_mean,
                    r_spread,
                    f"its level of the last hour, the rest of its zone having moved"
                    f" {moved} spreads the same way",
                )
            else:
                best = _Judgement(
                    d,
                    level,
                    self._r_mean + beta * m * unit,
                    zone.unit(m) * r_spread,
                    f"its level of the last hour, allowing for the rest of its zone"
                    f" (moved {moved} spreads)",
                )
            mc = self._common_ctx
            # The usual level for the time, once seen on two days before this one: a day
            # says nothing about how much the next differs.
            if (
                c is not None
                and zc is not None
                and mc is not None
                and self._zone_ctx.n >= 60
                and self._days_before(c, minute, self.context_days)
            ):
                beta_c = self._zone_ctx.slope()
                ec_unit = self._zone_ctx.unit(mc)
                dc = self._towards_danger(zc - beta_c * mc) / ec_unit
                if _same_way(mc, zc):
                    dc = min(dc, self._towards_danger(zc))
                if dc > best.departure:
                    best = _Judgement(
                        dc,
                        level,
                        self._c_mean[c] + beta_c * mc * _MAD * c_spread,
                        ec_unit * c_spread,
                        f"{_usual_for(c)}, allowing for the rest of its zone"
                        f" ({self._sign() * mc:+.1f} spreads from theirs)",
                    )
            return best, z, zc
        # Alone: the usual level for this hour and kind of day must have been learnt on an
        # earlier day (a first shift start, the first Monday after a weekend, cannot be
        # told from a departure by one sensor alone).
        if c != self._slot(minute) or zc is None or not self._days_before(c, minute, 1):
            return None, z, zc
        d_recent = self._towards_danger(z)
        d_context = self._towards_danger(zc)
        # A change (at least 2 of its usual movements) judged by how unusual the level is
        # for the time; a level it has held for an hour is not a departure however
        # unusual for the time (a holiday, a day of other work): both must be surprised.
        if d_recent <= d_context and d_recent < _CHANGE:
            return (
                _Judgement(d_recent, level, self._r_mean, r_spread, "its level of the last hour"),
                z,
                zc,
            )
        return _Judgement(d_context, level, self._c_mean[c], c_spread, _usual_for(c)), z, zc

    def _days_before(self, c: int, minute: int, days: int) -> bool:
        """Was context slot ``c`` learnt on at least ``days`` days before ``minute``'s?"""
        return self._c_days[c] - (self._c_last[c] == minute // 1440) >= days

    def _level_with(self, value: float) -> float:
        ring = self._ring
        if len(ring) < self.span:
            return (sum(ring) + value) / (len(ring) + 1)
        return (sum(ring) - ring[self._ring_pos] + value) / self.span

    def _close(self, mean: float, minute: int) -> None:
        level = self._level_with(mean)
        judgement, z, zc = self._judge(level, minute)
        self._now, self.z, self.zc = judgement, z, zc
        d = judgement.departure if judgement is not None else 0.0
        excused = minute <= self._excused_until
        if self._absorbed is not None:
            # Absorbed with its zone: explained while it holds at the level it moved to,
            # until its own reference has caught up (or it moves on towards danger).
            unit = _MAD * max(self._r_dev, self._floor())
            if z is None or abs(z) < _CHANGE:
                self._absorbed = None
            elif self._towards_danger(level - self._absorbed) <= _CHANGE * unit:
                excused = True
        if excused:
            d = 0.0
        # S: the least departure of the last `sustain` minutes — a departure that lasts,
        # not a spike (a forklift, a tapping, a door) — is what is calibrated and judged.
        recent = self._d_recent
        recent.append(d)
        if len(recent) > self.sustain:
            del recent[0]
        sustained = min(recent) if len(recent) == self.sustain else 0.0
        self.sustained = sustained
        thr = self.threshold()
        was = self.flagged
        suspicious = d >= 0.5 * thr
        self.suspicious = suspicious
        # Flagged once sustained at the threshold, after the warm-up; held while the
        # departure stays half-way there.
        self.flagged = suspicious if was else sustained >= thr and self._b_n >= self.warmup_hours
        if self.flagged or suspicious:
            self._streak += 1
        else:
            self._streak = 0
        learn = not suspicious or self._streak > self.adapt_after_min
        # The hourly maximum of S, for the calibration; winsorised at the threshold: one
        # departure lifts it a little, the same several times a day until it is ordinary.
        # A departure counts once it is over without being absorbed (`absorb`): an hour
        # that closes during one waits for its end.
        hour = minute // 60
        if self._hour is not None and hour != self._hour:
            if self._pending is not None:  # a departure across two hour ends: it counts
                self._calibrate(self._pending[0])
                self._pending = None
            if self._streak:
                self._pending = (self._hour_max, self._hour_clean)
            else:
                self._calibrate(self._hour_max)
            self._hour_max = self._hour_clean = 0.0
        elif self._pending is not None and not self._streak:  # over, not absorbed: counts
            self._calibrate(self._pending[0])
            self._pending = None
        self._hour = hour
        s_w = min(sustained, self.winsor * thr)
        self._hour_max = max(self._hour_max, s_w)
        if not self._streak:
            self._hour_clean = max(self._hour_clean, s_w)
        # The ring moves on; the minute leaving it feeds the recent level.
        ring = self._ring
        leaving: float | None = None
        if len(ring) < self.span:
            ring.append(mean)
        else:
            leaving = ring[self._ring_pos]
            ring[self._ring_pos] = mean
            self._ring_pos = (self._ring_pos + 1) % self.span
        if learn:
            self._learn(mean, level, minute, leaving, z, zc)

    def _learn(
        self,
        mean: float,
        level: float,
        minute: int,
        leaving: float | None,
        z: float | None,
        zc: float | None,
    ) -> None:
        self._n += 1
        self._high = max(self._high, level)
        self._low = min(self._low, level)
        if self._r_mean is None:
            self._r_mean = mean
            return
        # The overall spread (a floor for the others), over a week.
        self._g_dev += max(1.0 / self._n, 1.0 / 10080) * (abs(mean - self._r_mean) - self._g_dev)
        # The usual size of the movement: the level now against the recent level.
        # A median, so that the hours after a shift starts (large movements, a few hours
        # a day) do not set the scale of every quiet hour; as a mean absolute deviation.
        self._r_med.update(abs(level - self._r_mean))
        self._r_dev = _MEDIAN_TO_MEAN * (self._r_med.get() or 0.0)
        if leaving is not None:  # the recent level: the mean of the hour before the span
            past = self._past
            if len(past) < self.recent_min:
                past.append(leaving)
                self._past_sum += leaving
            else:
                self._past_sum += leaving - past[self._past_pos]
                past[self._past_pos] = leaving
                self._past_pos = (self._past_pos + 1) % self.recent_min
                if self._past_pos == 0:  # once round: the sum afresh, no rounding drift
                    self._past_sum = math.fsum(past)
            self._r_mean = self._past_sum / len(past)
        if z is not None and self._common is not None:
            self._zone.learn(z, self._common)
        if zc is not None and self._common_ctx is not None:
            self._zone_ctx.learn(zc, self._common_ctx)
        if len(self._ring) < self.span:
            return
        c = self._slot(minute)
        n = self._c_n[c]
        day = minute // 1440
        if self._days_before(c, minute, 1):  # how well earlier days foretell this one
            self._p_n += 1
            a = max(1.0 / self._p_n, 1.0 / 10080)
            self._p_dev += a * (abs(level - self._c_mean[c]) - self._p_dev)
        if self._c_last[c] != day:
            self._c_last[c] = day
            self._c_days[c] += 1
        if n == 0:
            self._c_mean[c], self._c_dev[c] = level, 0.0
        else:
            a = max(1.0 / (n + 1), self.context_alpha / 6)
            self._c_dev[c] += a * (abs(level - self._c_mean[c]) - self._c_dev[c])
            self._c_mean[c] += a * (level - self._c_mean[c])
        self._c_n[c] = n + 1
