"""Hygienic limits, alarm set points and sensor-health settings, loaded from data.

``core/data/limits.toml`` holds, per hazard, a list of rules; each rule names
its legal source and whether the figure was confirmed against that source.
The ministry edits the file, not the code; `load_limits` validates it against
the hazard catalogue and refuses it whole, naming the rule at fault.

>>> limits = load_limits()
>>> [r.kind.value for r in limits.rules("co")]
['threshold', 'ceiling', 'stel', 'twa']
>>> limits.rules("co")[0].level(25.0), limits.rules("co")[0].level(5.0)
(<Severity.WARNING: 'warning'>, None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from core.alarms import AlertKind, Severity
from core.catalogue import Catalogue, load_catalogue
from core.datafile import read_toml
from core.errors import CatalogueError

__all__ = ["FireSettings", "HealthSettings", "LimitRule", "Limits", "load_limits"]

Averaging = Literal["arithmetic", "energy", "rms"]
_CONFIRMATION = ("source", "secondary", "no")
_RULE_KINDS = {AlertKind.THRESHOLD, AlertKind.CEILING, AlertKind.STEL, AlertKind.TWA}
_RULE_FIELDS = {
    "kind",
    "warning",
    "critical",
    "warning_below",
    "critical_below",
    "window_min",
    "averaging",
    "exchange_rate_db",
    "deadband",
    "clear_hold_s",
    "source",
    "confirmed",
    "note",
}


@dataclass(frozen=True, slots=True)
class LimitRule:
    """One rule for one hazard, with the levels that open a warning or a critical alert.

    ``warning``/``critical`` trigger at or above; ``*_below`` at or below (oxygen).
    Windowed rules (``stel``, ``twa``) compare an average over ``window_min``
    minutes: arithmetic for concentrations, ``energy`` (equal-energy with
    ``exchange_rate_db``) for noise, ``rms`` for vibration.
    """

    hazard: str
    kind: AlertKind
    source: str
    confirmed: str  # "source" | "secondary" | "no"
    warning: float | None = None
    critical: float | None = None
    warning_below: float | None = None
    critical_below: float | None = None
    window_min: float = 0.0
    averaging: Averaging = "arithmetic"
    exchange_rate_db: float = 3.0
    deadband: float = 0.1
    clear_hold_s: float = 60.0
    note: str = ""
    # Derived once: the value must be below clear_above and above clear_below to clear.
    clear_above: float = field(init=False, default=math.inf)
    clear_below: float = field(init=False, default=-math.inf)

    def __post_init__(self) -> None:
        lo = min((x for x in (self.warning, self.critical) if x is not None), default=None)
        hi = max(
            (x for x in (self.warning_below, self.critical_below) if x is not None), default=None
        )
        if lo is not None:
            object.__setattr__(self, "clear_above", lo * (1 - self.deadband))
        if hi is not None:
            object.__setattr__(self, "clear_below", hi * (1 + self.deadband))

    def level(self, value: float) -> Severity | None:
        """The severity ``value`` reaches under this rule, or None."""
        if self.critical is not None and value >= self.critical:
            return Severity.CRITICAL
        if self.critical_below is not None and value <= self.critical_below:
            return Severity.CRITICAL
        if self.warning is not None and value >= self.warning:
            return Severity.WARNING
        if self.warning_below is not None and value <= self.warning_below:
            return Severity.WARNING
        return None

    def clear(self, value: float) -> bool:
        """True when ``value`` is back inside the dead-band below (or above) every level."""
        return self.clear_below < value < self.clear_above

    def limit_for(self, severity: Severity) -> float | None:
        if severity is Severity.CRITICAL:
            return self.critical if self.critical is not None else self.critical_below
        return self.warning if self.warning is not None else self.warning_below


@dataclass(frozen=True, slots=True)
class HealthSettings:
    stale_factor: float = 3.0  # silent for this many reporting intervals -> stale
    min_stale_s: float = 60.0
    default_interval_s: float = 60.0
    lateness_s: float = 30.0  # out-of-order readings accepted this far behind the newest
    future_skew_s: float = 300.0  # timestamps further ahead of the receiver are refused
    max_age_s: float = 7 * 86400.0  # older timestamps are refused
    stuck_after_s: dict[str, float] = field(default_factory=dict)  # per hazard, 0 = never
    fault_clear_s: float = 300.0  # plausible for this long -> sensor_fault clears


@dataclass(frozen=True, slots=True)
class FireSettings:
    fixed_c: float = 57.0  # EN 54-5 / ISO 7240-5 class A1 typical static response
    fixed_above_normal_c: float = 15.0  # a hot shop's own level plus this
    ror_c_per_min: float = 8.3  # rate of rise for a heat alarm on its own
    ror_window_s: float = 120.0
    ror_min_span_s: float = 30.0
    smoke_warning: float = 4.0  # %obs/m
    smoke_critical: float = 10.0
    combo_heat_c_per_min: float = 3.0  # weaker signals that, together, mean fire
    combo_smoke: float = 1.5
    combo_co_rise: float = 10.0  # mg/m3 above the CO sensor's normal level
    combo_window_s: float = 180.0
    baseline_tau_s: float = 3600.0  # how fast a heat sensor's normal level adapts
    clear_hold_s: float = 300.0
    # Smouldering, by convergence: smoke creeping up (`stream.detection.fire.Creep`) for
    # smoulder_for_s while the zone's CO or heat is rising too.
    smoulder_smoke_rise: float = 0.4  # %obs/m: the smoke's floor above its normal level
    smoulder_smoke_rate: float = 0.04  # %obs/m a minute, the floor's slope over 8 min
    smoulder_co_rise: float = 0.5  # mg/m3: CO's rise over the same 8 min
    smoulder_heat_rise: float = 0.3  # degC: the heat's rise over the same 8 min
    smoulder_for_s: float = 60.0


class Limits:
    """All rules, by hazard, plus the health and fire settings."""

    def __init__(
        self,
        rules: dict[str, list[LimitRule]],
        health: HealthSettings,
        fire: FireSettings,
        source: str,
    ) -> None:
        self._rules = rules
        self.health = health
        self.fire = fire
        self.source = source

    def rules(self, hazard: str) -> list[LimitRule]:
        return self._rules.get(hazard, [])

    def all_rules(self) -> list[LimitRule]:
        return [r for rs in self._rules.values() for r in rs]


def _num(where: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise CatalogueError(where, f"{key} must be a number, got {v!r}")
    return float(v)


def _rule(hazard: str, raw: Any, where: str) -> LimitRule:
    if not isinstance(raw, dict):
        raise CatalogueError(where, "must be a table")
    unknown = raw.keys() - _RULE_FIELDS
    if unknown:
        raise CatalogueError(where, f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        kind: AlertKind | None = AlertKind(str(raw.get("kind")))
    except ValueError:
        kind = None
    if kind not in _RULE_KINDS:
        raise CatalogueError(where, f"kind must be one of {sorted(k.value for k in _RULE_KINDS)}")
    assert kind is not None
    if not isinstance(raw.get("source"), str) or not raw["source"].strip():
        raise CatalogueError(where, "every limit needs its legal source")
    if raw.get("confirmed") not in _CONFIRMATION:
        raise CatalogueError(where, f"confirmed must be one of {', '.join(_CONFIRMATION)}")
    levels = {
        k: _num(where, k, raw[k])
        for k in ("warning", "critical", "warning_below", "critical_below")
        if k in raw
    }
    if not levels:
        raise CatalogueError(where, "needs at least one of warning, critical, *_below")
    if {"warning", "critical"} <= levels.keys() and levels["warning"] > levels["critical"]:
        raise CatalogueError(where, "warning must not be above critical")
    if {"warning_below", "critical_below"} <= levels.keys() and levels["warning_below"] < levels[
        "critical_below"
    ]:
        raise CatalogueError(where, "warning_below must not be below critical_below")
    window = _num(where, "window_min", raw.get("window_min", 0))
    if kind in (AlertKind.STEL, AlertKind.TWA) and window <= 0:
        raise CatalogueError(where, f"a {kind.value} rule needs window_min > 0")
    averaging = raw.get("averaging", "arithmetic")
    if averaging not in ("arithmetic", "energy", "rms"):
        raise CatalogueError(where, "averaging must be arithmetic, energy or rms")
    deadband = _num(where, "deadband", raw.get("deadband", 0.1))
    if not 0 <= deadband < 1:
        raise CatalogueError(where, "deadband must be in [0, 1)")
    return LimitRule(
        hazard=hazard,
        kind=kind,
        source=raw["source"].strip(),
        confirmed=raw["confirmed"],
        window_min=window,
        averaging=averaging,
        exchange_rate_db=_num(where, "exchange_rate_db", raw.get("exchange_rate_db", 3.0)),
        deadband=deadband,
        clear_hold_s=_num(where, "clear_hold_s", raw.get("clear_hold_s", 60)),
        note=str(raw.get("note", "")),
        **levels,
    )


def load_limits(path: str | Path | None = None, catalogue: Catalogue | None = None) -> Limits:
    """Load and validate the limits file; the packaged one when ``path`` is None."""
    catalogue = catalogue or load_catalogue()
    doc, source = read_toml("limits.toml", path)
    rules: dict[str, list[LimitRule]] = {}
    for hazard, items in doc.get("rules", {}).items():
        if hazard not in catalogue:
            raise CatalogueError(f"{source} [rules.{hazard}]", "hazard not in the catalogue")
        if not isinstance(items, list):
            raise CatalogueError(f"{source} [rules.{hazard}]", "use [[rules.<hazard>]] tables")
        parsed = [
            _rule(hazard, raw, f"{source} [[rules.{hazard}]] #{i + 1}")
            for i, raw in enumerate(items)
        ]
        kinds = [r.kind for r in parsed]
        if len(kinds) != len(set(kinds)):
            raise CatalogueError(
                f"{source} [rules.{hazard}]",
                "one rule per kind (one open alert per sensor and kind)",
            )
        rules[hazard] = parsed
    for table, cls in (("health", HealthSettings), ("fire", FireSettings)):
        unknown = set(doc.get(table, {})) - set(cls.__dataclass_fields__)
        if unknown:
            raise CatalogueError(
                f"{source} [{table}]", f"unknown setting(s): {', '.join(sorted(unknown))}"
            )
    h = doc.get("health", {})
    stuck = {
        k: _num(f"{source} [health.stuck_after_s]", k, v)
        for k, v in h.get("stuck_after_s", {}).items()
    }
    for hz in stuck:
        if hz not in catalogue:
            raise CatalogueError(f"{source} [health.stuck_after_s]", f"unknown hazard {hz!r}")
    health = HealthSettings(
        **{k: _num(f"{source} [health]", k, v) for k, v in h.items() if k != "stuck_after_s"},
        stuck_after_s=stuck,
    )
    fire = FireSettings(
        **{k: _num(f"{source} [fire]", k, v) for k, v in doc.get("fire", {}).items()}
    )
    return Limits(rules, health, fire, source)
