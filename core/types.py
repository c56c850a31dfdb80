"""Domain types: frozen, slotted dataclasses with no behaviour beyond their own invariants."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["Enterprise", "Industry", "Reading", "Region", "Sensor", "Zone"]


@dataclass(frozen=True, slots=True)
class Region:
    """A region (oblys) or a city of republican significance; ``id`` is its ISO 3166-2:KZ code."""

    id: str
    kind: str  # "region" | "city"
    name_en: str
    name_ru: str
    name_kk: str
    center: str
    timezone: str


@dataclass(frozen=True, slots=True)
class Industry:
    """A section of OKED, Kazakhstan's classifier of economic activities (NACE Rev. 2 based)."""

    code: str
    name_en: str
    name_ru: str


@dataclass(frozen=True, slots=True)
class Sensor:
    """A fixed workplace sensor measuring one hazard, reporting every ``interval_s`` seconds."""

    id: str
    enterprise_id: str
    zone_id: str
    hazard: str
    interval_s: float
    gateway: bool = False
    baseline: float | None = None
    model: str = ""


@dataclass(frozen=True, slots=True)
class Zone:
    """A workshop or area of an enterprise; the unit over which fire signals are combined."""

    id: str
    enterprise_id: str
    name: str
    kind: str
    normal_temperature_c: float | None = None
    sensors: tuple[Sensor, ...] = ()


@dataclass(frozen=True, slots=True)
class Enterprise:
    """An enterprise on the digital map: where it is, what it does, what it measures."""

    id: str
    name: str
    region_id: str
    industry_code: str
    city: str
    name_ru: str = ""
    oked: str = ""
    lat: float | None = None
    lon: float | None = None
    workers: int | None = None
    zones: tuple[Zone, ...] = field(default=())
    emergency_phone: str | None = None  # the enterprise's own emergency line, for its workers

    @property
    def sensors(self) -> tuple[Sensor, ...]:
        return tuple(s for z in self.zones for s in z.sensors)


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated measurement, its value already in the hazard's canonical unit.

    ``raw_value``/``raw_unit`` keep what the device sent, so a conversion can be audited.
    ``plausible`` is False when the value lies outside the physically possible range:
    such a reading is kept (it says the sensor is faulty) but never treated as a hazard.
    """

    enterprise_id: str
    sensor_id: str
    ts: datetime
    hazard: str
    value: float
    unit: str
    seq: int | None
    raw_value: float
    raw_unit: str
    plausible: bool = True
