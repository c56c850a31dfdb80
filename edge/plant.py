"""A believable plant to measure detection on: ``qorgau eval plant``.

A seed gives a plant of several enterprises (zones of typical kinds, ~70
sensors), a few days of readings in ``qorgau replay``'s format, the reference
data that describes it, and labels: every incident injected, with its class,
where and when it starts and ends, how soon it must be reported and which
alert kinds count as reporting it.

Normal operation is made as varied as a real plant's, because that is where
false alarms come from: a schedule per enterprise (one, two or three shifts;
weekends and Kazakhstan's public holidays off or reduced), ramps and a start-up
surge at each shift start and a lunch dip, production rate changing from day
to day and within a day, day-to-day weather (the daily mean moving up to
±10 °C from one day to the next, a daily cycle on top), ventilation switching
between levels, zones whose sensors move together, hot shops with tapping
heat, welding bays with smoke blips, forklifts with CO blips, sensors of coarse
resolution that legitimately repeat a value, gas sensors reporting in ppm or
mg/m3. Incidents of eleven classes are injected among that.

Everything derives from the seed (``numpy.random.default_rng``): the same seed
gives the same plant, byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy.signal import lfilter

from core.catalogue import Catalogue
from core.limits import Limits

__all__ = [
    "INCIDENT_CLASSES",
    "IncidentClass",
    "Plant",
    "PlantIncident",
    "PlantSensor",
    "generate_plant",
    "warning_levels",
    "write_plant",
]

LOCAL_UTC_OFFSET_H = 5  # Kazakhstan keeps one time zone, UTC+5, since 2024-03-01

# Public holidays of Kazakhstan (month, day): New Year, Orthodox Christmas, Women's Day,
# Nauryz, Unity Day, Defender's Day, Victory Day, Capital Day, Constitution Day,
# Republic Day, Independence Day.
HOLIDAYS = frozenset(
    {(1, 1), (1, 2), (1, 7), (3, 8), (3, 21), (3, 22), (3, 23), (5, 1), (5, 7), (5, 9)}
    | {(7, 6), (8, 30), (10, 25), (12, 16)}
)


@dataclass(frozen=True, slots=True)
class IncidentClass:
    name: str
    critical: bool
    deadline_s: float  # from the start, by when an alert of an ``expect`` kind must open
    expect: tuple[str, ...]  # alert kinds that report it
    zone_wide: bool = False  # an alert on any sensor of the zone reports it


INCIDENT_CLASSES: dict[str, IncidentClass] = {
    c.name: c
    for c in (
        IncidentClass("acute_gas", True, 60.0, ("threshold", "ceiling", "stel")),
        IncidentClass("oxygen_deficiency", True, 60.0, ("threshold",)),
        IncidentClass("flammable_gas", True, 60.0, ("threshold",)),
        IncidentClass("fast_fire", True, 120.0, ("fire",), zone_wide=True),
        IncidentClass("smouldering_fire", True, 900.0, ("fire",), zone_wide=True),
        IncidentClass("chronic_exposure", False, 8 * 3600.0, ("twa", "stel")),
        IncidentClass("garbage", False, 60.0, ("sensor_fault",)),
        IncidentClass("stuck", False, 900.0, ("sensor_fault",)),
        IncidentClass("stale", False, 900.0, ("stale",)),
        IncidentClass("subtle_departure", False, 1800.0, ("anomaly",)),
        IncidentClass("drift", False, 12 * 3600.0, ("sensor_fault",)),
    )
}


@dataclass(slots=True)
class PlantSensor:
    id: str
    enterprise_id: str
    zone_id: str
    hazard: str
    interval_s: float
    base: float  # typical level at full activity, canonical unit
    idle: float  # level with nothing running
    resolution: float  # the sensor's step, canonical unit
    unit: str  # the unit it reports in
    role: str = ""  # welding, forklift, hot, outdoor, cold, tools: what moves it


@dataclass(slots=True)
class PlantZone:
    id: str
    enterprise_id: str
    name: str
    kind: str
    normal_temperature_c: float | None
    sensors: list[PlantSensor] = field(default_factory=list)


@dataclass(slots=True)
class PlantEnterprise:
    id: str
    name: str
    region_id: str
    industry_code: str
    city: str
    schedule: str  # day (1 shift), two (2 shifts), continuous (3 shifts, 7 days)
    zones: list[PlantZone] = field(default_factory=list)


@dataclass(slots=True)
class PlantIncident:
    id: str
    kind: str
    enterprise_id: str
    zone_id: str
    sensors: list[str]
    start: datetime
    end: datetime
    note: str = ""

    def record(self) -> dict[str, Any]:
        cls = INCIDENT_CLASSES[self.kind]
        return {
            **asdict(self),
            "start": _iso(self.start),
            "end": _iso(self.end),
            "critical": cls.critical,
            "deadline_s": cls.deadline_s,
            "expect": list(cls.expect),
            "zone_wide": cls.zone_wide,
        }


@dataclass(slots=True)
class Plant:
    seed: int
    start: datetime  # UTC, local midnight of the first day
    days: int
    enterprises: list[PlantEnterprise]
    incidents: list[PlantIncident]
    readings: int = 0

    @property
    def sensors(self) -> list[PlantSensor]:
        return [s for e in self.enterprises for z in e.zones for s in z.sensors]


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the plant's layout -------------------------------------------------------------
# Zone templates: (hazard, typical level at full activity, level when idle, interval s,
# role). Levels are in the hazard's canonical unit and stay below every limit.
_ZONES: dict[str, list[tuple[str, float, float, float, str]]] = {
    "hot_shop": [
        ("co", 8.0, 2.0, 10, "hot"),
        ("temperature", 0.0, 0.0, 30, "hot"),
        ("smoke", 0.25, 0.1, 10, ""),
        ("dust", 1.2, 0.2, 60, ""),
        ("noise", 77.0, 58.0, 10, ""),
    ],
    "gas_hazard": [
        ("h2s", 1.2, 0.4, 10, ""),
        ("ch4", 1.5, 0.6, 10, ""),
        ("o2", 20.9, 20.9, 10, ""),
        ("so2", 1.5, 0.4, 10, ""),
        ("temperature", 0.0, 0.0, 60, "indoor"),
    ],
    "confined_space": [
        ("o2", 20.9, 20.9, 10, ""),
        ("h2s", 0.8, 0.3, 10, ""),
        ("co", 3.0, 1.0, 10, ""),
        ("ch4", 1.0, 0.4, 10, ""),
    ],
    "welding": [
        ("smoke", 0.3, 0.1, 10, "welding"),
        ("co", 3.0, 0.8, 10, "welding"),
        ("no2", 0.3, 0.05, 10, "welding"),
        ("noise", 75.0, 55.0, 10, ""),
        ("temperature", 0.0, 0.0, 30, "indoor"),
    ],
    "storage": [
        ("co", 2.0, 0.5, 10, "forklift"),
        ("smoke", 0.15, 0.1, 10, ""),
        ("temperature", 0.0, 0.0, 60, "outdoor"),
        ("humidity", 0.0, 0.0, 60, "outdoor"),
    ],
    "workshop": [
        ("noise", 76.0, 52.0, 5, ""),
        ("vibration", 1.1, 0.05, 10, "tools"),
        ("dust", 0.9, 0.1, 60, ""),
        ("temperature", 0.0, 0.0, 60, "indoor"),
    ],
    "cold_store": [
        ("temperature", -18.0, -18.0, 30, "cold"),
        ("nh3", 2.0, 1.0, 10, ""),
    ],
}
_ZONE_NAMES = {
    "hot_shop": "Casting bay",
    "gas_hazard": "Process unit",
    "confined_space": "Pump pit",
    "welding": "Welding bay",
    "storage": "Warehouse",
    "workshop": "Machine shop",
    "cold_store": "Cold store",
}
_INDUSTRIES = [  # (OKED section, zone kinds to draw from)
    ("C", ["hot_shop", "welding", "workshop", "storage"]),  # metals
    ("B", ["gas_hazard", "confined_space", "workshop", "storage"]),  # mining, oil and gas
    ("C", ["welding", "workshop", "storage", "hot_shop"]),  # machinery
    ("C", ["cold_store", "storage", "workshop"]),  # food
    ("D", ["gas_hazard", "workshop", "confined_space", "storage"]),  # power and heat
    ("F", ["welding", "storage", "workshop"]),  # construction yards
]
_SCHEDULES = (("continuous", 0.4), ("two", 0.35), ("day", 0.25))
_REGIONS = [("KZ-35", "Temirtau"), ("KZ-23", "Atyrau"), ("KZ-75", "Almaty"), ("KZ-11", "Kokshetau")]
_FINE = {  # the usual step of a sensor of each hazard (canonical unit)
    "co": 0.1,
    "h2s": 0.01,
    "so2": 0.01,
    "no2": 0.01,
    "nh3": 0.1,
    "ch4": 0.1,
    "o2": 0.1,
    "smoke": 0.01,
    "dust": 0.01,
    "noise": 0.1,
    "vibration": 0.01,
    "temperature": 0.1,
    "humidity": 0.1,
}
_COARSE = {"co": 1.0, "h2s": 0.1, "nh3": 1.0, "temperature": 0.5, "humidity": 1.0, "noise": 1.0}


def _zone(
    rng: np.random.Generator, catalogue: Catalogue, ent: PlantEnterprise, kind: str
) -> PlantZone:
    zi = len(ent.zones)
    zid = f"{ent.id}-Z{zi + 1:02d}"
    normal = (
        float(rng.uniform(30, 40))
        if kind == "hot_shop"
        else -18.0
        if kind == "cold_store"
        else float(rng.uniform(18, 24))
    )
    zone = PlantZone(zid, ent.id, f"{_ZONE_NAMES[kind]} {zi + 1}", kind, round(normal, 1))
    for hazard, base, idle, interval, role in _ZONES[kind]:
        if hazard == "temperature":
            base = idle = normal
        elif hazard == "humidity":
            base = idle = float(rng.uniform(35, 60))
        elif hazard != "o2":
            scale = float(rng.uniform(0.7, 1.3))
            base, idle = base * scale, idle * scale
        if hazard == "noise":
            base = min(base, 77.0)  # a busy shop, not a TWA breach by itself
        coarse = hazard in _COARSE and rng.random() < 0.3
        resolution = _COARSE[hazard] if coarse else _FINE[hazard]
        unit = catalogue[hazard].unit
        if catalogue[hazard].molar_mass_g_mol and unit == "mg/m3" and rng.random() < 0.4:
            unit = "ppm"
        sid = f"{zid}-{hazard[:3].upper()}{len(zone.sensors) + 1}"
        zone.sensors.append(
            PlantSensor(
                sid, ent.id, zid, hazard, float(interval), base, idle, resolution, unit, role
            )
        )
    ent.zones.append(zone)
    return zone


# Zone kinds that give every incident class somewhere to happen: oxygen and flammable
# gas, a zone that can burn (heat, smoke and CO together), hand tools, dust.
_NEEDED = (("o2", "confined_space"), ("ch4", "gas_hazard"), ("vibration", "workshop"))


def _layout(
    rng: np.random.Generator, catalogue: Catalogue, n_sensors: int
) -> list[PlantEnterprise]:
    enterprises: list[PlantEnterprise] = []
    total = 0
    e = 0
    while total < n_sensors:
        e += 1
        code, kinds = _INDUSTRIES[int(rng.integers(len(_INDUSTRIES)))]
        kinds = [str(k) for k in rng.permutation(kinds)]
        schedule = str(rng.choice([n for n, _ in _SCHEDULES], p=[p for _, p in _SCHEDULES]))
        region, city = _REGIONS[int(rng.integers(len(_REGIONS)))]
        ent = PlantEnterprise(f"P{e:02d}", f"Plant {e}", region, code, city, schedule)
        for zi in range(int(rng.integers(3, 6))):
            kind = kinds[zi] if zi < len(kinds) else kinds[int(rng.integers(len(kinds)))]
            total += len(_zone(rng, catalogue, ent, kind).sensors)
        enterprises.append(ent)
    hazards = {s.hazard for en in enterprises for z in en.zones for s in z.sensors}
    for hazard, kind in _NEEDED:
        if hazard not in hazards:
            _zone(rng, catalogue, enterprises[int(rng.integers(len(enterprises)))], kind)
    burnable = any(
        {"temperature", "smoke", "co"} <= {s.hazard for s in z.sensors}
        for en in enterprises
        for z in en.zones
    )
    if not burnable:
        _zone(rng, catalogue, enterprises[int(rng.integers(len(enterprises)))], "hot_shop")
    return enterprises


# --- the drivers of normal operation, per minute -------------------------------------
def _activity(
    rng: np.random.Generator, ent: PlantEnterprise, start: datetime, minutes: int
) -> np.ndarray:
    """How busy the enterprise is, 0..~1.2, minute by minute (local schedule)."""
    act = np.zeros(minutes)
    local0 = start + timedelta(hours=LOCAL_UTC_OFFSET_H)
    days = minutes // 1440 + 1
    for d in range(days):
        day = (local0 + timedelta(days=d)).date()
        off = day.weekday() >= 5 or (day.month, day.day) in HOLIDAYS
        rate = float(rng.uniform(0.7, 1.1))
        change_at = int(rng.integers(6 * 60, 20 * 60))  # the rate changes once a day
        rate2 = float(np.clip(rate + rng.normal(0, 0.15), 0.5, 1.2))
        if ent.schedule == "continuous":
            shifts = [(0, 0.55), (8 * 60, 1.0), (16 * 60, 0.85)]
            level_off = 0.7
        elif ent.schedule == "two":
            shifts = [(7 * 60, 1.0), (15 * 60, 0.8)]
            level_off = 0.0
        else:
            shifts = [(8 * 60, 1.0)]
            level_off = 0.0
        if off and ent.schedule != "continuous":
            if rng.random() < 0.3:  # a Saturday or holiday half shift
                shifts, level_off = [(9 * 60, 0.5)], 0.0
            else:
                shifts = []
        for s_start, level in shifts:
            level *= level_off if (off and ent.schedule == "continuous") else 1.0
            length = 8 * 60 if ent.schedule != "day" else 9 * 60
            for m in range(length):
                i = d * 1440 + s_start + m
                if i >= minutes:
                    break
                ramp = min(1.0, (m + 1) / 20.0, (length - m) / 15.0)
                surge = 1.2 if 0 <= m < 25 else 1.0  # start-up: machines, forklifts
                lunch = 0.6 if length // 2 - 15 <= m < length // 2 + 15 else 1.0
                r = rate if (s_start + m) < change_at else rate2
                act[i] = max(act[i], level * ramp * surge * lunch * r)
    return act


def _ar1(rng: np.random.Generator, n: int, tau: float, sigma: float) -> np.ndarray:
    """A stationary AR(1) series with correlation time ``tau`` steps and spread ``sigma``."""
    phi = math.exp(-1.0 / max(tau, 1e-9))
    noise = rng.normal(0.0, sigma * math.sqrt(1 - phi * phi), n)
    noise[0] = rng.normal(0.0, sigma)  # start in the stationary state
    out: np.ndarray = lfilter([1.0], [1.0, -phi], noise)
    return out


def _weather(rng: np.random.Generator, start: datetime, minutes: int) -> np.ndarray:
    """Outdoor temperature, °C, minute by minute: a daily mean that moves up to ±10 °C
    from one day to the next, a daily cycle (coldest at 05:00 local) on top."""
    days = minutes // 1440 + 2
    season = float(rng.uniform(-15, 25))
    means = [season]
    for _ in range(days):
        means.append(float(np.clip(means[-1] + rng.normal(0, 4.5), season - 15, season + 15)))
        if abs(means[-1] - means[-2]) > 10:
            means[-1] = means[-2] + math.copysign(10, means[-1] - means[-2])
    t = np.arange(minutes)
    local_h = ((t / 60.0) + LOCAL_UTC_OFFSET_H) % 24
    day_mean = np.interp(t / 1440.0, np.arange(len(means)), means)
    swing = float(rng.uniform(3, 7))
    return day_mean - swing * np.cos(2 * np.pi * (local_h - 5) / 24)


def _ventilation(rng: np.random.Generator, minutes: int) -> np.ndarray:
    """Dilution factor of a zone's ventilation: steps between levels a few times a day."""
    out = np.ones(minutes)
    level = 1.0
    i = 0
    while i < minutes:
        span = int(rng.integers(120, 600))
        level = float(rng.choice([0.7, 1.0, 1.0, 1.3]))
        out[i : i + span] = level
        i += span
    return out


def _blips(
    rng: np.random.Generator, act: np.ndarray, per_hour: float, minutes_long: tuple[int, int]
) -> np.ndarray:
    """0/1 minute mask of short events (welding runs, forklift passes) while work goes on."""
    out = np.zeros(len(act))
    busy = act > 0.3
    for i in np.flatnonzero(busy):
        if rng.random() < per_hour / 60.0:
            out[i : i + int(rng.integers(*minutes_long))] = 1.0
    return out


@dataclass(slots=True)
class _Series:
    sensor: PlantSensor
    t: np.ndarray  # seconds since the plant's start
    v: np.ndarray  # canonical unit, before the sensor's step
    keep: np.ndarray  # False: no reading (stale)
    raw: np.ndarray | None = None  # garbage values to report as they are
    frozen: np.ndarray | None = None  # True: repeats the reading before, exactly (stuck)


def _normal(
    rng: np.random.Generator,
    s: PlantSensor,
    seconds: float,
    act_m: np.ndarray,
    outdoor_m: np.ndarray,
    vent_m: np.ndarray,
    latent_m: np.ndarray,
) -> _Series:
    n = int(seconds // s.interval_s)
    t = rng.uniform(0, s.interval_s) + np.arange(n) * s.interval_s
    t = t + rng.normal(0, 0.2, n)  # clock jitter
    m = np.clip((t // 60).astype(int), 0, len(act_m) - 1)
    act = np.interp(t / 60.0, np.arange(len(act_m)), act_m)
    own = _ar1(rng, n, tau=600.0 / s.interval_s, sigma=0.08)
    common = latent_m[m]
    h = s.hazard
    if h == "temperature":
        if s.role == "cold":
            doors = _blips(rng, act_m, 3.0, (2, 6))[m]
            v = s.base + 0.5 * own + 4.0 * doors * (0.5 + 0.5 * rng.random())
        elif s.role == "outdoor":
            v = outdoor_m[m] * 0.6 + 8.0 + 1.5 * act + 0.8 * own
        elif s.role == "hot":
            tapping = _blips(rng, act_m, 0.4, (8, 15))[m]
            v = s.base + 4.0 * act + 0.15 * (outdoor_m[m] - 10) + 5.0 * tapping + own * 1.5
        else:
            v = s.base + 2.0 * act + 0.1 * (outdoor_m[m] - 10) + own * 0.8
        v = v + rng.normal(0, 0.05, n)
    elif h == "humidity":
        v = s.base - 0.6 * (outdoor_m[m] - 10) * 0.3 + 5 * own + rng.normal(0, 0.3, n)
        v = np.clip(v, 5, 98)
    elif h == "o2":
        v = 20.9 - 0.15 * act + 0.05 * own + rng.normal(0, 0.03, n)
    elif h == "noise":
        # Energy sum of the machines (in proportion to activity) over the idle hum.
        active = 10 ** (s.base / 10) * np.clip(act, 0, None)
        v = 10 * np.log10(10 ** (s.idle / 10) + active) + 1.2 * own * 10 + rng.normal(0, 0.8, n)
    elif h == "vibration":
        v = (
            s.idle
            + (s.base - s.idle) * act * np.exp(own * 2 + 0.5 * common)
            + rng.normal(0, 0.03, n)
        )
        v = np.clip(v, 0, None)
    else:  # gases, dust, smoke: what the work emits, diluted by the ventilation
        level = s.idle + (s.base - s.idle) * act
        v = level * np.exp(own * 2 + common) / vent_m[m] + rng.normal(0, 0.02 * max(s.base, 0.1), n)
        if s.role == "welding" and h == "smoke":
            v = v + _blips(rng, act_m, 3.0, (1, 4))[m] * rng.uniform(0.4, 1.4)
        elif s.role == "welding":
            v = v + _blips(rng, act_m, 3.0, (1, 4))[m] * s.base * rng.uniform(0.3, 0.8)
        elif s.role == "forklift":
            v = v + _blips(rng, act_m, 4.0, (1, 2))[m] * rng.uniform(4.0, 11.0)
        v = np.clip(v, 0, None)
    return _Series(s, t, v, np.ones(n, dtype=bool))


# --- incidents -------------------------------------------------------------------
def _window(series: _Series, start_s: float, end_s: float) -> np.ndarray:
    return (series.t >= start_s) & (series.t < end_s)


def warning_levels(
    limits: Limits, hazards: list[str], *, instantaneous: bool = False
) -> dict[str, float]:
    """The lowest level at which each hazard's limits warn (any limit, or only the set
    points a single reading is judged against)."""
    out: dict[str, float] = {}
    for h in hazards:
        levels = [
            r.warning
            for r in limits.rules(h)
            if r.warning is not None and (r.window_min == 0 or not instantaneous)
        ]
        if levels:
            out[h] = min(levels)
    return out


def _below(v: np.ndarray, ceiling: float | None) -> np.ndarray:
    """Normal operation stays under a set point: values approach ``ceiling`` smoothly
    and never reach it (no flat tops, which would look like a stuck sensor)."""
    if ceiling is None:
        return v
    knee = 0.6 * ceiling
    over = np.clip(v - knee, 0, None)
    span = ceiling - knee
    return np.where(v > knee, knee + span * np.tanh(over / span), v)


def _longest_run_s(se: _Series, s: PlantSensor, a: float, b: float) -> float:
    """The longest time ``s`` held one reported value between ``a`` and ``b`` (s)."""
    w = _window(se, a, b)
    q, t = _quantise(se.v[w], s.resolution), se.t[w]
    if len(q) < 2:
        return math.inf
    starts = np.flatnonzero(np.r_[True, np.diff(q) != 0, True])
    return float(np.max(t[np.minimum(starts[1:], len(t) - 1)] - t[starts[:-1]]))


def _inject(
    rng: np.random.Generator,
    plant: Plant,
    series: dict[str, _Series],
    act: dict[str, np.ndarray],
    warn: dict[str, float],
    per_class: int,
) -> None:
    seconds = plant.days * 86400.0
    busy: dict[str, list[tuple[float, float]]] = {}  # per zone: taken spans
    zones = {z.id: z for e in plant.enterprises for z in e.zones}
    count = 0

    def free(zone_id: str, a: float, b: float) -> bool:
        return all(b + 3600 <= x or a >= y + 3600 for x, y in busy.get(zone_id, []))

    def take(zone_id: str, a: float, b: float) -> None:
        busy.setdefault(zone_id, []).append((a, b))

    def pick(
        hazards: set[str],
        duration: float,
        *,
        working: bool | None = None,
        throughout: bool = False,
        zone_has: frozenset[str] = frozenset(),
        tries: int = 400,
    ) -> tuple[PlantZone, list[PlantSensor], float] | None:
        for _ in range(tries):
            zone = zones[list(zones)[int(rng.integers(len(zones)))]]
            have = [s for s in zone.sensors if s.hazard in hazards]
            if not have or not zone_has <= {s.hazard for s in zone.sensors}:
                continue
            # Leave the first 6 h for the models to learn the plant.
            a = float(rng.uniform(6 * 3600, seconds - duration - 600))
            if working is not None:
                level = act[zone.enterprise_id]
                if throughout:  # busy (or idle) for the whole span and well before it
                    before = 30 if working else 60  # minutes: not a shift starting or ending
                    span = level[max(0, int(a // 60) - before) : int((a + duration) // 60) + 1]
                    if not ((span > 0.4).all() if working else (span < 0.05).all()):
                        continue
                elif (level[int(a // 60)] > 0.4) != working:
                    continue
            if free(zone.id, a, a + duration):
                return zone, have, a
        return None

    def label(
        kind: str, zone: PlantZone, sensors: list[PlantSensor], a: float, b: float, note: str = ""
    ) -> None:
        nonlocal count
        count += 1
        take(zone.id, a, b)
        t0 = plant.start
        plant.incidents.append(
            PlantIncident(
                f"I{count:03d}",
                kind,
                zone.enterprise_id,
                zone.id,
                [s.id for s in sensors],
                t0 + timedelta(seconds=a),
                t0 + timedelta(seconds=b),
                note,
            )
        )

    def ramp(x: np.ndarray, a: float, rise_s: float, hold_s: float, fall_s: float) -> np.ndarray:
        """0 -> 1 over rise_s, 1 for hold_s, back to 0 over fall_s."""
        up = np.clip((x - a) / rise_s, 0, 1)
        down = np.clip(1 - (x - a - rise_s - hold_s) / fall_s, 0, 1)
        return np.where(x < a, 0.0, np.minimum(up, down))

    for _ in range(per_class):
        # Acute toxic gas: to 2-5 times its alarm level within 20 s, for 5-15 min.
        got = pick({"co", "h2s", "so2", "no2", "nh3"}, 1200)
        if got:
            zone, have, a = got
            s = have[int(rng.integers(len(have)))]
            peak = warn[s.hazard] * float(rng.uniform(2, 5))
            hold = float(rng.uniform(300, 900))
            se = series[s.id]
            se.v = se.v + peak * ramp(se.t, a, 20, hold, 120)
            label("acute_gas", zone, [s], a, a + 20 + hold + 120, f"{s.hazard} to {peak:.1f}")
        # Oxygen deficiency: down to 16.5-18.5 %vol within a minute.
        got = pick({"o2"}, 1800)
        if got:
            zone, have, a = got
            s = have[0]
            low = float(rng.uniform(16.5, 18.5))
            hold = float(rng.uniform(300, 900))
            se = series[s.id]
            se.v = se.v - (20.9 - low) * ramp(se.t, a, 45, hold, 180)
            label("oxygen_deficiency", zone, [s], a, a + 45 + hold + 180, f"o2 to {low:.1f}")
        # Flammable gas: 20-45 %LEL within 30 s.
        got = pick({"ch4"}, 1800)
        if got:
            zone, have, a = got
            s = have[0]
            peak = float(rng.uniform(20, 45))
            hold = float(rng.uniform(300, 900))
            se = series[s.id]
            se.v = se.v + peak * ramp(se.t, a, 30, hold, 300)
            label("flammable_gas", zone, [s], a, a + 30 + hold + 300, f"ch4 to {peak:.0f} %LEL")
        # Fast fire: heat +8-12 °C/min, smoke to 10-20 %obs/m, CO +40-100 mg/m3 in minutes.
        got = pick({"temperature"}, 3600, zone_has=frozenset({"temperature", "smoke", "co"}))
        if got:
            zone, _, a = got
            members = [s for s in zone.sensors if s.hazard in {"temperature", "smoke", "co"}]
            if len({s.hazard for s in members}) >= 2:
                rate = float(rng.uniform(8, 12)) / 60.0
                for s in members:
                    se = series[s.id]
                    x = np.clip(se.t - a, 0, 600) * (se.t >= a)
                    after = se.t >= a + 600
                    if s.hazard == "temperature":
                        bump = rate * x
                    elif s.hazard == "smoke":
                        bump = np.clip(x / 300.0, 0, 1) * float(rng.uniform(10, 20))
                    else:
                        bump = np.clip(x / 240.0, 0, 1) * float(rng.uniform(40, 100))
                    se.v = (
                        se.v
                        + bump * ~after
                        + bump.max() * after * np.exp(-np.clip(se.t - a - 600, 0, None) / 600)
                    )
                label("fast_fire", zone, members, a, a + 1800, f"heat {rate * 60:.0f} °C/min")
        # Smouldering fire: smoke 0.2 -> ~3 %obs/m over 25-30 min, CO +3-5 mg/m3, +3 °C.
        got = pick({"smoke"}, 4800, zone_has=frozenset({"temperature", "smoke", "co"}))
        if got:
            zone, _, a = got
            members = [s for s in zone.sensors if s.hazard in {"temperature", "smoke", "co"}]
            if {"smoke", "co"} <= {s.hazard for s in members}:
                grow = float(rng.uniform(1500, 1800))
                smoke_to = float(rng.uniform(2.6, 3.4))
                co_up = float(rng.uniform(3, 5))
                heat_up = float(rng.uniform(2.5, 3.5))
                for s in members:
                    se = series[s.id]
                    x = np.clip((se.t - a) / grow, 0, None) * (se.t >= a)
                    shape = np.where(x <= 1, (np.exp(2.0 * x) - 1) / (math.e**2 - 1), 1.0)
                    shape = shape * (se.t < a + grow + 1200)  # put out 20 min after
                    if s.hazard == "smoke":
                        se.v = se.v + (smoke_to - 0.2) * shape
                    elif s.hazard == "co":
                        se.v = se.v + co_up * shape
                    else:
                        se.v = se.v + heat_up * shape
                label(
                    "smouldering_fire",
                    zone,
                    members,
                    a,
                    a + grow + 1200,
                    f"smoke to {smoke_to:.1f}",
                )
        # Chronic over-exposure: a whole shift at 1.3-1.6 times the shift limit.
        got = pick({"dust"}, 9 * 3600, working=True)
        if got:
            zone, have, a = got
            s = have[0]
            se = series[s.id]
            target = warn[s.hazard] * float(rng.uniform(1.3, 1.6))
            w = _window(se, a, a + 8 * 3600)
            se.v = np.where(
                w, np.maximum(se.v, target + rng.normal(0, 0.1 * target, len(se.v))), se.v
            )
            label("chronic_exposure", zone, [s], a, a + 8 * 3600, f"dust at {target:.1f}")
        # Garbage values for 2-10 min.
        got = pick(set(_FINE), 900)
        if got:
            zone, have, a = got
            s = have[int(rng.integers(len(have)))]
            se = series[s.id]
            b = a + float(rng.uniform(120, 600))
            w = _window(se, a, b)
            junk = float(rng.choice([-9999.0, 65535.0, 1e9, -273.0]))
            se.raw = np.where(w, junk, np.nan) if se.raw is None else np.where(w, junk, se.raw)
            label("garbage", zone, [s], a, b, f"{junk:g}")
        # Stuck: the exact value frozen for 2-5 h, on a sensor whose own history shows it
        # never holds a value that long (at most 4 min in the 6 h before).
        got = pick({h for h in _FINE if h not in {"o2"}}, 5 * 3600)
        if got:
            zone, have, a = got
            fine = [s for s in have if _longest_run_s(series[s.id], s, a - 6 * 3600, a) <= 240]
            if fine:
                s = fine[int(rng.integers(len(fine)))]
                se = series[s.id]
                b = a + float(rng.uniform(2, 5)) * 3600
                w = _window(se, a, b)
                if w.any():
                    se.frozen = w if se.frozen is None else (se.frozen | w)
                    label("stuck", zone, [s], a, b, "frozen")
        # Stale: silent for 1-3 h.
        got = pick(set(_FINE), 3 * 3600)
        if got:
            zone, have, a = got
            s = have[int(rng.integers(len(have)))]
            se = series[s.id]
            b = a + float(rng.uniform(1, 3)) * 3600
            se.keep &= ~_window(se, a, b)
            label("stale", zone, [s], a, b)
        # Subtle departure: night at day level for an hour, or vibration doubled.
        if rng.random() < 0.5:
            got = pick({"co", "h2s", "so2", "dust", "nh3"}, 3600, working=False, throughout=True)
            if got:
                zone, have, a = got
                s = have[int(rng.integers(len(have)))]
                se = series[s.id]
                w = _window(se, a, a + 3600)
                day_level = s.base * float(rng.uniform(0.9, 1.1))
                se.v = np.where(w, se.v - s.idle + day_level, se.v)
                label("subtle_departure", zone, [s], a, a + 3600, "night at day level")
        else:
            got = pick({"vibration"}, 3600, working=True, throughout=True)
            if got:
                zone, have, a = got
                s = have[0]
                se = series[s.id]
                w = _window(se, a, a + 3600)
                se.v = np.where(w, se.v * 2.0, se.v)
                label("subtle_departure", zone, [s], a, a + 3600, "vibration doubled")
        # Calibration drift: the zero creeps up by 40-70 % of the alarm level over 12 h.
        got = pick({"co", "h2s", "so2", "nh3", "ch4"}, 13 * 3600)
        if got:
            zone, have, a = got
            s = have[int(rng.integers(len(have)))]
            se = series[s.id]
            size = warn[s.hazard] * float(rng.uniform(0.4, 0.7))
            creep = np.clip((se.t - a) / (12 * 3600), 0, 1) * (se.t >= a) * (se.t < a + 12 * 3600)
            se.v = se.v + size * creep
            label("drift", zone, [s], a, a + 12 * 3600, f"+{size:.2f} over 12 h")


def generate_plant(
    seed: int,
    days: int,
    catalogue: Catalogue,
    limits: Limits,
    *,
    sensors: int = 70,
    incidents_per_class: int | None = None,
) -> tuple[Plant, dict[str, _Series]]:
    """The plant of ``seed``: its layout, ``days`` of readings per sensor, incidents."""
    if days < 1:
        raise ValueError("a plant needs at least one day")
    rng = np.random.default_rng(seed)
    warnings = warning_levels(limits, list(catalogue))
    set_points = warning_levels(limits, list(catalogue), instantaneous=True)
    year_day = int(rng.integers(0, 365))
    first = date(2026, 1, 1) + timedelta(days=year_day)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(
        hours=LOCAL_UTC_OFFSET_H
    )
    enterprises = _layout(rng, catalogue, sensors)
    plant = Plant(seed, start, days, enterprises, [])
    minutes = days * 1440
    outdoor = _weather(rng, start, minutes)
    series: dict[str, _Series] = {}
    act: dict[str, np.ndarray] = {}
    for ent in enterprises:
        act[ent.id] = _activity(rng, ent, start, minutes)
        for zone in ent.zones:
            vent = _ventilation(rng, minutes)
            latent = _ar1(rng, minutes, tau=20.0, sigma=0.12)
            for s in zone.sensors:
                se = _normal(rng, s, days * 86400.0, act[ent.id], outdoor, vent, latent)
                if s.hazard != "o2":
                    se.v = _below(
                        se.v, 0.9 * set_points[s.hazard] if s.hazard in set_points else None
                    )
                series[s.id] = se
    per_class = incidents_per_class if incidents_per_class is not None else max(1, days)
    _inject(rng, plant, series, act, warnings, per_class)
    return plant, series


def _quantise(v: np.ndarray, step: float) -> np.ndarray:
    return np.round(v / step) * step


def readings(
    plant: Plant, series: dict[str, _Series], catalogue: Catalogue
) -> Iterator[dict[str, Any]]:
    """Every reading of the plant in time order, in ``qorgau replay``'s format."""
    rows: list[tuple[float, str, int, float]] = []  # (t, sensor, seq, value in its unit)
    sensors = {s.id: s for s in plant.sensors}
    for sid, se in series.items():
        s = sensors[sid]
        value = _quantise(se.v, s.resolution)
        if s.unit != catalogue[s.hazard].unit:
            value = value / catalogue.convert(s.hazard, 1.0, s.unit)
            value = np.round(value, 2)
        if se.frozen is not None:  # each frozen span repeats the reading before it
            idx = np.where(se.frozen, 0, np.arange(len(value)))
            value = value[np.maximum.accumulate(idx)]
        if se.raw is not None:
            value = np.where(np.isnan(se.raw), value, se.raw)
        for i in np.flatnonzero(se.keep):
            rows.append((float(se.t[i]), sid, int(i) + 1, float(value[i])))
    rows.sort()
    for t, sid, seq, v in rows:
        s = sensors[sid]
        yield {
            "enterprise_id": s.enterprise_id,
            "sensor_id": sid,
            "ts": _iso(plant.start + timedelta(seconds=t)),
            "hazard": s.hazard,
            "value": round(v, 4),
            "unit": s.unit,
            "seq": seq,
        }


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def enterprises_toml(plant: Plant) -> str:
    """The plant as reference data (the format of ``core/data/enterprises.toml``)."""
    lines = [f"# Generated by qorgau eval plant --seed {plant.seed} --days {plant.days}", ""]
    for e in plant.enterprises:
        lines += [
            "[[enterprises]]",
            f"id = {_toml_str(e.id)}",
            f"name = {_toml_str(e.name)}",
            f"region_id = {_toml_str(e.region_id)}",
            f"industry_code = {_toml_str(e.industry_code)}",
            f"city = {_toml_str(e.city)}",
            "",
        ]
        for z in e.zones:
            lines += [
                "  [[enterprises.zones]]",
                f"  id = {_toml_str(z.id)}",
                f"  name = {_toml_str(z.name)}",
                f"  kind = {_toml_str(z.kind if z.kind in _REFERENCE_KINDS else 'workshop')}",
            ]
            if z.normal_temperature_c is not None:
                lines.append(f"  normal_temperature_c = {z.normal_temperature_c}")
            lines.append("")
            for s in z.sensors:
                baseline = s.base if s.hazard != "temperature" else z.normal_temperature_c
                lines += [
                    "    [[enterprises.zones.sensors]]",
                    f"    id = {_toml_str(s.id)}",
                    f"    hazard = {_toml_str(s.hazard)}",
                    f"    interval_s = {s.interval_s:g}",
                    f"    baseline = {round(float(baseline or 0.0), 3)}",
                    "",
                ]
    return "\n".join(lines)


_REFERENCE_KINDS = frozenset(
    {"hot_shop", "gas_hazard", "confined_space", "storage", "cold_store", "workshop"}
)


def write_plant(
    plant: Plant, series: dict[str, _Series], catalogue: Catalogue, out: Path
) -> dict[str, Any]:
    """Write ``readings.jsonl``, ``enterprises.toml`` and ``labels.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out / "readings.jsonl", "wb") as fh:
        for r in readings(plant, series, catalogue):
            fh.write(orjson.dumps(r) + b"\n")
            n += 1
    plant.readings = n
    (out / "enterprises.toml").write_text(enterprises_toml(plant), "utf-8")
    labels = {
        "seed": plant.seed,
        "days": plant.days,
        "start": _iso(plant.start),
        "end": _iso(plant.start + timedelta(days=plant.days)),
        "sensors": len(plant.sensors),
        "sensor_days": len(plant.sensors) * plant.days,
        "readings": n,
        "zones": {z.id: [s.id for s in z.sensors] for e in plant.enterprises for z in e.zones},
        "schedules": {e.id: e.schedule for e in plant.enterprises},
        "incidents": [i.record() for i in plant.incidents],
    }
    (out / "labels.json").write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    return labels
