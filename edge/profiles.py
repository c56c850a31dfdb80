"""Believable sensor signals: shift pattern, daily temperature cycle, noise, incidents.

Pure and seeded, so a simulated plant is reproducible.

>>> import random
>>> from datetime import datetime, timezone
>>> from core.types import Sensor
>>> p = profile_for(Sensor("E1-S1", "E1", "E1-Z1", "co", 10.0, baseline=8.0), random.Random(7))
>>> day = p.value_at(datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc))   # 11:00 in Kazakhstan
>>> night = p.value_at(datetime(2026, 3, 2, 21, 0, tzinfo=timezone.utc))  # 02:00
>>> day > night
True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.types import Sensor

__all__ = ["Incident", "SensorProfile", "profile_for"]

#: Kazakhstan keeps one zone, UTC+5, since 2024-03-01.
LOCAL_OFFSET = timedelta(hours=5)
_DEFAULT_BASELINE = {
    "co": 6.0,
    "h2s": 2.0,
    "no2": 0.8,
    "so2": 2.0,
    "nh3": 5.0,
    "cl2": 0.2,
    "ch4": 1.0,
    "o2": 20.9,
    "dust": 3.0,
    "noise": 84.0,
    "vibration": 1.5,
    "temperature": 24.0,
    "humidity": 45.0,
    "smoke": 0.2,
}
# Relative noise per hazard (sd as a fraction of the baseline), or absolute for levels.
_REL_NOISE = {
    "co": 0.08,
    "h2s": 0.1,
    "no2": 0.1,
    "so2": 0.1,
    "nh3": 0.08,
    "cl2": 0.1,
    "ch4": 0.2,
    "dust": 0.12,
    "vibration": 0.1,
    "smoke": 0.15,
    "humidity": 0.03,
}
_ABS_NOISE = {"o2": 0.03, "noise": 1.5, "temperature": 0.2}
_PROCESS_DRIVEN = {"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4", "dust", "noise", "vibration"}


@dataclass(slots=True)
class Incident:
    """A temporary departure: ramps to ``peak`` over ``ramp``, holds, then decays."""

    kind: str  # "gas_leak" | "heat_rise" | "smoke"
    start: datetime
    peak: float  # added to the normal value (absolute, canonical unit)
    ramp: timedelta = timedelta(seconds=60)
    hold: timedelta = timedelta(seconds=120)
    decay: timedelta = timedelta(seconds=90)

    def offset_at(self, t: datetime) -> float:
        dt = (t - self.start).total_seconds()
        ramp, hold, decay = (x.total_seconds() for x in (self.ramp, self.hold, self.decay))
        if dt < 0 or dt > ramp + hold + decay:
            return 0.0
        if dt < ramp:
            return self.peak * dt / ramp
        if dt < ramp + hold:
            return self.peak
        return self.peak * (1 - (dt - ramp - hold) / decay)

    def over(self, t: datetime) -> bool:
        return t > self.start + self.ramp + self.hold + self.decay


@dataclass(slots=True)
class SensorProfile:
    sensor: Sensor
    baseline: float
    rng: random.Random
    zone_normal_c: float | None = None
    incidents: list[Incident] = field(default_factory=list)
    _ar: float = 0.0

    def shift_factor(self, t: datetime) -> float:
        """Day shift (08-20 local) is busier than night; weekends are quieter."""
        local = t + LOCAL_OFFSET
        hour = local.hour + local.minute / 60
        # A smooth ramp at shift changes rather than a step.
        day = 0.5 * (math.tanh((hour - 8) * 2) - math.tanh((hour - 20) * 2))
        weekend = 0.8 if local.weekday() >= 5 else 1.0
        return (0.55 + 0.45 * day) * weekend

    def value_at(self, t: datetime) -> float:
        h = self.sensor.hazard
        # AR(1) noise: consecutive readings are correlated, as real air is.
        self._ar = 0.8 * self._ar + 0.6 * self.rng.gauss(0.0, 1.0)
        if h == "temperature":
            local = t + LOCAL_OFFSET
            cycle = -2.0 * math.cos(2 * math.pi * (local.hour + local.minute / 60 - 3) / 24)
            value = self.baseline + cycle + _ABS_NOISE[h] * self._ar
        elif h == "noise":
            value = self.baseline + 10 * math.log10(self.shift_factor(t)) + 1.5 * self._ar
        elif h in _ABS_NOISE:
            value = self.baseline + _ABS_NOISE[h] * self._ar
        else:
            factor = self.shift_factor(t) if h in _PROCESS_DRIVEN else 1.0
            value = self.baseline * factor * (1 + _REL_NOISE.get(h, 0.1) * self._ar)
        self.incidents = [i for i in self.incidents if not i.over(t)]
        value += sum(i.offset_at(t) for i in self.incidents)
        if h == "o2":
            return round(min(max(value, 0.0), 30.0), 2)
        return round(max(value, 0.0), 3)

    def start_incident(self, t: datetime, kind: str) -> Incident:
        h = self.sensor.hazard
        if kind == "heat_rise":
            peak = 25.0 + 15.0 * self.rng.random()  # about +8 to +13 °C/min over the ramp
            inc = Incident(kind, t, peak, ramp=timedelta(seconds=150))
        elif kind == "smoke":
            inc = Incident(kind, t, 8.0 + 10 * self.rng.random(), ramp=timedelta(seconds=120))
        elif h == "o2":
            inc = Incident(kind, t, -3.0)  # displacement by an inert gas
        else:
            inc = Incident(kind, t, self.baseline * (3 + 5 * self.rng.random()) + 1.0)
        self.incidents.append(inc)
        return inc


def profile_for(
    sensor: Sensor, rng: random.Random, zone_normal_c: float | None = None
) -> SensorProfile:
    baseline = sensor.baseline
    if baseline is None:
        baseline = (
            zone_normal_c
            if sensor.hazard == "temperature" and zone_normal_c
            else (_DEFAULT_BASELINE.get(sensor.hazard, 1.0))
        )
    return SensorProfile(sensor, baseline, rng, zone_normal_c)
