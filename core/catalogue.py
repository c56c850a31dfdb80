"""The hazard catalogue: which hazards exist, their canonical units, accepted units, plausible ranges.

The catalogue is a TOML data file (``core/data/hazards.toml`` by default) that
the ministry may edit; `load_catalogue` validates every entry and fails with
the entry's name and the problem, never half-loads.

>>> cat = load_catalogue()
>>> cat["co"].unit
'mg/m3'
>>> round(cat.convert("co", 50.0, "ppm"), 3)
57.28
>>> cat.convert("co", 1.0, "dBA")
Traceback (most recent call last):
...
core.errors.InvalidReading: unit_not_accepted: hazard 'co' does not accept unit 'dBA' (accepted: mg/m3, ppm, ppb, ug/m3)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datafile import read_toml
from core.errors import CatalogueError, InvalidReading
from core.units import Conversion, compile_conversion

__all__ = ["CATEGORIES", "Catalogue", "Hazard", "load_catalogue"]

CATEGORIES = frozenset({"gas", "flammable", "oxygen", "particulate", "physical", "climate", "fire"})
_REQUIRED = {"name_en", "name_ru", "category", "unit", "accepted_units", "plausible"}
_OPTIONAL = {"molar_mass_g_mol", "lel_percent_vol"}


@dataclass(frozen=True, slots=True)
class Hazard:
    """One harmful or dangerous production factor as the catalogue describes it."""

    id: str
    name_en: str
    name_ru: str
    category: str
    unit: str
    accepted_units: tuple[str, ...]
    plausible_min: float
    plausible_max: float
    molar_mass_g_mol: float | None = None
    lel_percent_vol: float | None = None
    conversions: Mapping[str, Conversion] = field(default_factory=dict, repr=False)

    def is_plausible(self, value: float) -> bool:
        return self.plausible_min <= value <= self.plausible_max


class Catalogue(Mapping[str, Hazard]):
    """Read-only mapping of hazard id to `Hazard`, with unit conversion."""

    def __init__(self, hazards: Mapping[str, Hazard], source: str) -> None:
        self._hazards = dict(hazards)
        self.source = source

    def __getitem__(self, hazard_id: str) -> Hazard:
        return self._hazards[hazard_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._hazards)

    def __len__(self) -> int:
        return len(self._hazards)

    def convert(self, hazard_id: str, value: float, unit: str) -> float:
        """Convert ``value`` in ``unit`` to the hazard's canonical unit.

        Raises `InvalidReading` (``unknown_hazard`` / ``unit_not_accepted``).
        """
        hazard = self._hazards.get(hazard_id)
        if hazard is None:
            raise InvalidReading("unknown_hazard", f"hazard {hazard_id!r} is not in the catalogue")
        conv = hazard.conversions.get(unit)
        if conv is None:
            raise InvalidReading(
                "unit_not_accepted",
                f"hazard {hazard_id!r} does not accept unit {unit!r} "
                f"(accepted: {', '.join(hazard.accepted_units)})",
            )
        return conv(value)


def _number(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CatalogueError(where, f"{name} must be a number, got {value!r}")
    return float(value)


def _parse_hazard(hazard_id: str, raw: Any, where: str) -> Hazard:
    if not isinstance(raw, dict):
        raise CatalogueError(where, "must be a table")
    missing = _REQUIRED - raw.keys()
    if missing:
        raise CatalogueError(where, f"missing field(s): {', '.join(sorted(missing))}")
    unknown = raw.keys() - _REQUIRED - _OPTIONAL
    if unknown:
        raise CatalogueError(where, f"unknown field(s): {', '.join(sorted(unknown))}")
    if raw["category"] not in CATEGORIES:
        raise CatalogueError(
            where, f"category {raw['category']!r} is not one of {', '.join(sorted(CATEGORIES))}"
        )
    unit = raw["unit"]
    accepted = raw["accepted_units"]
    if not isinstance(unit, str) or not unit:
        raise CatalogueError(where, "unit must be a non-empty string")
    if not isinstance(accepted, list) or not all(isinstance(u, str) for u in accepted):
        raise CatalogueError(where, "accepted_units must be a list of strings")
    if unit not in accepted:
        raise CatalogueError(where, f"accepted_units must include the canonical unit {unit!r}")
    plausible = raw["plausible"]
    if not isinstance(plausible, list) or len(plausible) != 2:
        raise CatalogueError(where, "plausible must be [min, max]")
    lo = _number(where, "plausible[0]", plausible[0])
    hi = _number(where, "plausible[1]", plausible[1])
    if not lo < hi:
        raise CatalogueError(where, f"plausible range is empty: [{lo}, {hi}]")
    molar = raw.get("molar_mass_g_mol")
    lel = raw.get("lel_percent_vol")
    molar_f = _number(where, "molar_mass_g_mol", molar) if molar is not None else None
    lel_f = _number(where, "lel_percent_vol", lel) if lel is not None else None
    if molar_f is not None and molar_f <= 0:
        raise CatalogueError(where, "molar_mass_g_mol must be positive")
    if lel_f is not None and not 0 < lel_f < 100:
        raise CatalogueError(where, "lel_percent_vol must be in (0, 100)")
    conversions: dict[str, Conversion] = {}
    for source in accepted:
        try:
            conversions[source] = compile_conversion(
                source, unit, molar_mass_g_mol=molar_f, lel_percent_vol=lel_f
            )
        except CatalogueError as exc:
            raise CatalogueError(where, f"accepted unit {source!r}: {exc.problem}") from None
    return Hazard(
        id=hazard_id,
        name_en=str(raw["name_en"]),
        name_ru=str(raw["name_ru"]),
        category=raw["category"],
        unit=unit,
        accepted_units=tuple(accepted),
        plausible_min=lo,
        plausible_max=hi,
        molar_mass_g_mol=molar_f,
        lel_percent_vol=lel_f,
        conversions=conversions,
    )


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a hazard catalogue; the packaged one when ``path`` is None."""
    doc, source = read_toml("hazards.toml", path)
    table = doc.get("hazards")
    if not isinstance(table, dict) or not table:
        raise CatalogueError(source, "has no [hazards.<id>] tables")
    hazards = {
        hid: _parse_hazard(hid, raw, f"{source} [hazards.{hid}]") for hid, raw in table.items()
    }
    return Catalogue(hazards, source)
