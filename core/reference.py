"""Reference data: Kazakhstan's regions, OKED industries, and the seed enterprises.

Loaded from the TOML files in ``core/data/`` and cross-checked on load (every
enterprise names a known region and industry, sensor ids are unique, every
sensor measures a catalogued hazard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.catalogue import Catalogue, load_catalogue
from core.datafile import read_toml
from core.errors import CatalogueError
from core.types import Enterprise, Industry, Region, Sensor, Zone

__all__ = ["PHONE", "ReferenceData", "load_reference"]


@dataclass(frozen=True, slots=True)
class ReferenceData:
    regions: tuple[Region, ...]
    industries: tuple[Industry, ...]
    enterprises: tuple[Enterprise, ...]

    @property
    def sensors(self) -> tuple[Sensor, ...]:
        return tuple(s for e in self.enterprises for s in e.sensors)

    def enterprise(self, enterprise_id: str) -> Enterprise | None:
        return next((e for e in self.enterprises if e.id == enterprise_id), None)


def _read(name: str) -> dict[str, Any]:
    return read_toml(name)[0]


def _get(where: str, raw: dict[str, Any], key: str) -> Any:
    try:
        return raw[key]
    except KeyError:
        raise CatalogueError(where, f"missing field {key!r}") from None


#: A telephone number as people write it: digits, spaces, brackets, dashes, a leading +.
PHONE = re.compile(r"^\+?[0-9][0-9 ()\-]{1,30}[0-9]$")


def _phone(where: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not PHONE.match(value):
        raise CatalogueError(where, f"emergency_phone {value!r} is not a telephone number")
    return value


def load_reference(
    catalogue: Catalogue | None = None, enterprises_path: str | Path | None = None
) -> ReferenceData:
    """Load and cross-validate the reference data: the packaged regions and industries,
    and the packaged enterprises or those of ``enterprises_path`` (the same format;
    e.g. a plant from ``qorgau eval plant``)."""
    catalogue = catalogue or load_catalogue()
    regions = tuple(
        Region(
            id=r["id"],
            kind=r["kind"],
            name_en=r["name_en"],
            name_ru=r["name_ru"],
            name_kk=r["name_kk"],
            center=r["center"],
            timezone=r["timezone"],
        )
        for r in _read("regions.toml")["regions"]
    )
    industries = tuple(
        Industry(code=i["code"], name_en=i["name_en"], name_ru=i["name_ru"])
        for i in _read("industries.toml")["industries"]
    )
    region_ids = {r.id for r in regions}
    industry_codes = {i.code for i in industries}
    seen_sensors: set[str] = set()
    enterprises = []
    doc, source = read_toml("enterprises.toml", enterprises_path)
    for raw in doc.get("enterprises", []):
        eid = _get(source, raw, "id")
        where = f"{source} [{eid}]"
        if raw.get("region_id") not in region_ids:
            raise CatalogueError(where, f"unknown region_id {raw.get('region_id')!r}")
        if raw.get("industry_code") not in industry_codes:
            raise CatalogueError(where, f"unknown industry_code {raw.get('industry_code')!r}")
        zones = []
        for z in raw.get("zones", []):
            sensors = []
            for s in z.get("sensors", []):
                sid = _get(where, s, "id")
                if sid in seen_sensors:
                    raise CatalogueError(where, f"duplicate sensor id {sid!r}")
                seen_sensors.add(sid)
                if s.get("hazard") not in catalogue:
                    raise CatalogueError(
                        where, f"sensor {sid!r}: unknown hazard {s.get('hazard')!r}"
                    )
                sensors.append(
                    Sensor(
                        id=sid,
                        enterprise_id=eid,
                        zone_id=z["id"],
                        hazard=s["hazard"],
                        interval_s=float(s.get("interval_s", 10)),
                        gateway=bool(s.get("gateway", False)),
                        baseline=float(s["baseline"]) if "baseline" in s else None,
                        model=str(s.get("model", "")),
                    )
                )
            zones.append(
                Zone(
                    id=_get(where, z, "id"),
                    enterprise_id=eid,
                    name=z.get("name", ""),
                    kind=z.get("kind", "workshop"),
                    normal_temperature_c=z.get("normal_temperature_c"),
                    sensors=tuple(sensors),
                )
            )
        enterprises.append(
            Enterprise(
                id=eid,
                name=_get(where, raw, "name"),
                name_ru=raw.get("name_ru", ""),
                region_id=raw["region_id"],
                industry_code=raw["industry_code"],
                oked=raw.get("oked", ""),
                city=raw.get("city", ""),
                lat=raw.get("lat"),
                lon=raw.get("lon"),
                workers=raw.get("workers"),
                zones=tuple(zones),
                emergency_phone=_phone(where, raw.get("emergency_phone")),
            )
        )
    return ReferenceData(regions=regions, industries=industries, enterprises=tuple(enterprises))
