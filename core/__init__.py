"""Qorgau's domain: readings, enterprises, sensors, the hazard catalogue, settings, errors.

`core` does no I/O beyond reading its own packaged data files (and the local
stack's own secrets, `core.statefiles`) and imports nothing else of the project;
every other package builds on it.
"""

from __future__ import annotations

from core.catalogue import Catalogue, Hazard, load_catalogue
from core.errors import CatalogueError, ConfigError, InvalidReading, QorgauError
from core.reference import ReferenceData, load_reference
from core.settings import Settings
from core.types import Enterprise, Industry, Reading, Region, Sensor, Zone

__all__ = [
    "Catalogue",
    "CatalogueError",
    "ConfigError",
    "Enterprise",
    "Hazard",
    "Industry",
    "InvalidReading",
    "QorgauError",
    "Reading",
    "ReferenceData",
    "Region",
    "Sensor",
    "Settings",
    "Zone",
    "load_catalogue",
    "load_reference",
]
