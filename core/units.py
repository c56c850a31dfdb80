"""Unit conversion: the physics lives here, the facts (molar mass, LEL) in the catalogue.

Every conversion is compiled once per (hazard, unit) into a plain function, so
converting a reading costs one call.

>>> from core.units import compile_conversion
>>> to_mg = compile_conversion("ppm", "mg/m3", molar_mass_g_mol=28.010)
>>> round(to_mg(100.0), 2)   # 100 ppm of CO at 25 °C, 101.325 kPa
114.56
>>> round(compile_conversion("%vol", "%LEL", lel_percent_vol=4.4)(2.2), 6)
50.0
>>> compile_conversion("degF", "degC")(212.0)
100.0
"""

from __future__ import annotations

import math
from collections.abc import Callable

from core.errors import CatalogueError

__all__ = ["MOLAR_VOLUME_L_MOL", "Conversion", "compile_conversion"]

#: Molar volume of an ideal gas at 25 °C and 101.325 kPa, the reference
#: conditions used by occupational exposure limits (ACGIH, OSHA, EU IOELV).
MOLAR_VOLUME_L_MOL = 24.45
STANDARD_GRAVITY_M_S2 = 9.80665

Conversion = Callable[[float], float]


def _affine(factor: float, offset: float = 0.0) -> Conversion:
    if offset == 0.0:
        if factor == 1.0:
            return lambda v: v
        return lambda v: v * factor
    return lambda v: v * factor + offset


def _smoke_db_per_m(v: float) -> float:
    # Obscuration in dB/m to percent obscuration per metre: 100 * (1 - 10^(-dB/10)).
    return 100.0 * (1.0 - math.pow(10.0, -v / 10.0))


def compile_conversion(
    source: str,
    target: str,
    *,
    molar_mass_g_mol: float | None = None,
    lel_percent_vol: float | None = None,
) -> Conversion:
    """Return a function converting a value from ``source`` to ``target`` units.

    Raises `CatalogueError` when the pair is unknown or a needed fact is missing.
    """
    where = f"conversion {source!r} -> {target!r}"
    if source == target:
        return _affine(1.0)
    if target == "mg/m3":
        if source == "ug/m3":
            return _affine(1e-3)
        if source in ("ppm", "ppb"):
            if not molar_mass_g_mol:
                raise CatalogueError(where, "needs molar_mass_g_mol")
            per_ppm = molar_mass_g_mol / MOLAR_VOLUME_L_MOL
            return _affine(per_ppm if source == "ppm" else per_ppm / 1000.0)
    if target == "%LEL" and source in ("%vol", "ppm"):
        if not lel_percent_vol:
            raise CatalogueError(where, "needs lel_percent_vol")
        to_vol = 1.0 if source == "%vol" else 1e-4
        return _affine(to_vol * 100.0 / lel_percent_vol)
    if target == "%vol" and source == "ppm":
        return _affine(1e-4)
    if target == "degC":
        if source == "degF":
            return _affine(5.0 / 9.0, -32.0 * 5.0 / 9.0)
        if source == "K":
            return _affine(1.0, -273.15)
    if target == "m/s2":
        if source == "mm/s2":
            return _affine(1e-3)
        if source == "g":
            return _affine(STANDARD_GRAVITY_M_S2)
    if target == "%obs/m" and source == "dB/m":
        return _smoke_db_per_m
    raise CatalogueError(where, "no known conversion")
