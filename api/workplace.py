"""A worker's workplace as a traffic light: each sensor green, amber, red or unknown.

The newest reading is judged against the limits catalogue's instantaneous levels
(``threshold`` and ``ceiling`` rules: at or above ``warning``/``critical``, or at or
below ``warning_below``/``critical_below`` for oxygen; smoke against the fire
settings' levels), and an open limit or fire alert on the sensor (an average over
STEL or TWA past its limit, a fire) makes it at least that grave. A sensor that is
silent (no reading for its stale limit: 3 reporting intervals, at least 60 s), whose
newest reading is implausible, or whose ``sensor_fault``/``stale`` alarm is open is
**unknown**, never green: nobody knows the air there.

Each state comes with a sentence a worker understands, in Russian, Kazakh and English.

>>> from datetime import UTC, datetime
>>> from core.limits import load_limits
>>> limits, now = load_limits(), datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
>>> judge("co", 150.0, True, now, 10.0, now, limits, alert_level=0, fault=False)
('red', 'critical')
>>> judge("co", 5.0, True, now, 10.0, now, limits, alert_level=0, fault=False)
('green', None)
>>> judge("co", 5.0, True, None, 10.0, now, limits, alert_level=0, fault=False)
('unknown', 'no_data')
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from alerts.texts import hazard_name_kk
from core.alarms import AlertKind, Severity
from core.catalogue import Catalogue
from core.limits import Limits

__all__ = ["STATES", "State", "judge", "sensor_messages", "worst", "zone_messages"]

State = Literal["green", "amber", "red", "unknown"]
#: Gravest last: a zone is as grave as its gravest sensor, and unknown outranks green.
STATES: tuple[State, ...] = ("green", "unknown", "amber", "red")
Reason = Literal["warning", "critical", "no_data", "silent", "implausible", "fault"] | None

_INSTANT = (AlertKind.THRESHOLD, AlertKind.CEILING)


def stale_after(interval_s: float, limits: Limits) -> timedelta:
    """How long a sensor may stay silent before nobody knows the air (as the worker's
    stale rule: `HealthSettings.stale_factor` intervals, at least ``min_stale_s``)."""
    h = limits.health
    return timedelta(seconds=max(h.stale_factor * interval_s, h.min_stale_s))


def _level(hazard: str, value: float, limits: Limits) -> Severity | None:
    levels = [r.level(value) for r in limits.rules(hazard) if r.kind in _INSTANT]
    if hazard == "smoke":
        fire = limits.fire
        levels.append(
            Severity.CRITICAL
            if value >= fire.smoke_critical
            else Severity.WARNING
            if value >= fire.smoke_warning
            else None
        )
    if Severity.CRITICAL in levels:
        return Severity.CRITICAL
    return Severity.WARNING if Severity.WARNING in levels else None


def judge(
    hazard: str,
    value: float | None,
    plausible: bool | None,
    ts: datetime | None,
    interval_s: float,
    now: datetime,
    limits: Limits,
    *,
    alert_level: int,
    fault: bool,
) -> tuple[State, Reason]:
    """One sensor's state and why (see the module's doc)."""
    if ts is None or value is None:
        return "unknown", "no_data"
    if fault:
        return "unknown", "fault"
    if now - ts > stale_after(interval_s, limits):
        return "unknown", "silent"
    if not plausible:
        return "unknown", "implausible"
    level = _level(hazard, value, limits)
    if level is Severity.CRITICAL or alert_level >= 2:
        return "red", "critical"
    if level is Severity.WARNING or alert_level == 1:
        return "amber", "warning"
    return "green", None


def worst(states: list[State]) -> State:
    """The gravest of ``states``; a zone without sensors is unknown.

    >>> worst(["green", "amber"]), worst(["green", "unknown"]), worst([])
    ('amber', 'unknown', 'unknown')
    """
    return max(states, key=STATES.index) if states else "unknown"


_SENSOR: dict[str, dict[str, str]] = {
    "ru": {
        "green": "{name}: в норме",
        "amber": "{name}: повышенный уровень — будьте внимательны, следуйте указаниям мастера",
        "red": "{name}: опасный уровень — выйдите из зоны",
        "no_data": "{name}: нет данных от датчика — состояние неизвестно",
        "silent": "{name}: датчик молчит — состояние неизвестно",
        "implausible": "{name}: датчик неисправен — состояние неизвестно",
        "fault": "{name}: датчик неисправен — состояние неизвестно",
    },
    "kk": {
        "green": "{name}: қалыпты",
        "amber": "{name}: деңгейі жоғары — абай болыңыз, шебердің нұсқауын орындаңыз",
        "red": "{name}: қауіпті деңгей — аймақтан шығыңыз",
        "no_data": "{name}: датчиктен дерек жоқ — жағдайы белгісіз",
        "silent": "{name}: датчик үнсіз — жағдайы белгісіз",
        "implausible": "{name}: датчик ақаулы — жағдайы белгісіз",
        "fault": "{name}: датчик ақаулы — жағдайы белгісіз",
    },
    "en": {
        "green": "{name}: normal",
        "amber": "{name}: raised level — take care, follow your supervisor's instructions",
        "red": "{name}: dangerous level — leave the zone",
        "no_data": "{name}: no data from the sensor — state unknown",
        "silent": "{name}: the sensor is silent — state unknown",
        "implausible": "{name}: the sensor is faulty — state unknown",
        "fault": "{name}: the sensor is faulty — state unknown",
    },
}

_ZONE: dict[str, dict[str, str]] = {
    "ru": {
        "green": "{zone}: всё в норме",
        "amber": "{zone}: повышенный уровень — будьте внимательны",
        "red": "{zone}: опасно — выйдите из зоны",
        "unknown": "{zone}: нет данных — состояние неизвестно, уточните у мастера",
    },
    "kk": {
        "green": "{zone}: бәрі қалыпты",
        "amber": "{zone}: деңгейі жоғары — абай болыңыз",
        "red": "{zone}: қауіпті — аймақтан шығыңыз",
        "unknown": "{zone}: дерек жоқ — жағдайы белгісіз, шеберден сұраңыз",
    },
    "en": {
        "green": "{zone}: all normal",
        "amber": "{zone}: raised level — take care",
        "red": "{zone}: danger — leave the zone",
        "unknown": "{zone}: no data — state unknown, ask your supervisor",
    },
}


def _names(hazard: str, catalogue: Catalogue) -> dict[str, str]:
    h = catalogue.get(hazard)
    if h is None:
        return {"ru": hazard, "kk": hazard, "en": hazard}
    return {"ru": h.name_ru, "kk": hazard_name_kk(hazard) or h.name_ru, "en": h.name_en}


def sensor_messages(
    hazard: str, state: State, reason: Reason, catalogue: Catalogue
) -> dict[str, str]:
    """The sentence for one sensor's state, per language.

    >>> from core.catalogue import load_catalogue
    >>> sensor_messages("co", "red", "critical", load_catalogue())["ru"]
    'Оксид углерода: опасный уровень — выйдите из зоны'
    """
    key = reason if state == "unknown" and reason else state
    names = _names(hazard, catalogue)
    return {lang: texts[key].format(name=names[lang]) for lang, texts in _SENSOR.items()}


def zone_messages(zone: str, state: State) -> dict[str, str]:
    """The sentence for a zone's state, per language."""
    return {lang: texts[state].format(zone=zone) for lang, texts in _ZONE.items()}
