"""Who may see what: roles, and the scope of enterprises a person's role covers.

A `Scope` is what every query that returns enterprise data filters by, in the
query itself. It is decided by the role:

- ``admin`` and a ``control_room`` with no region: the whole country;
- ``labour_inspector`` / ``fire_inspector``: one or more regions;
- ``control_room``: one region (or the whole country);
- ``safety_officer`` and ``worker``: one enterprise.

>>> Scope.for_role(Role.LABOUR_INSPECTOR, regions=["KZ-55"]).covers("KZ-55", "E003")
True
>>> Scope.for_role(Role.SAFETY_OFFICER, enterprise_id="E001").covers("KZ-35", "E002")
False
>>> Scope.for_role(Role.FIRE_INSPECTOR)
Traceback (most recent call last):
...
core.errors.ConfigError: a fire_inspector needs one or more regions
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.errors import ConfigError

__all__ = ["ALERT_ACTORS", "Role", "Scope"]


class Role(StrEnum):
    ADMIN = "admin"
    LABOUR_INSPECTOR = "labour_inspector"  # exposure and limit alerts of their regions
    FIRE_INSPECTOR = "fire_inspector"  # fire and flammable-gas alerts of their regions
    SAFETY_OFFICER = "safety_officer"  # everything of their enterprise
    CONTROL_ROOM = "control_room"  # a region's (or the country's) wall
    WORKER = "worker"  # the mobile app of one enterprise's worker

    @property
    def regional(self) -> bool:
        return self in (Role.LABOUR_INSPECTOR, Role.FIRE_INSPECTOR, Role.CONTROL_ROOM)

    @property
    def of_enterprise(self) -> bool:
        return self in (Role.SAFETY_OFFICER, Role.WORKER)


# Who may acknowledge, resolve and comment on alerts; workers see their enterprise's
# alerts but act through the app's reports, not on the alarm itself.
ALERT_ACTORS = frozenset(
    {
        Role.ADMIN,
        Role.LABOUR_INSPECTOR,
        Role.FIRE_INSPECTOR,
        Role.SAFETY_OFFICER,
        Role.CONTROL_ROOM,
    }
)


@dataclass(frozen=True, slots=True)
class Scope:
    """The enterprises a person may see: all, those of some regions, or one."""

    national: bool = False
    regions: tuple[str, ...] = ()
    enterprise_id: str | None = None

    @classmethod
    def for_role(
        cls, role: Role, *, regions: Iterable[str] = (), enterprise_id: str | None = None
    ) -> Scope:
        """The scope ``role`` gives; `ConfigError` when the regions/enterprise do not fit it."""
        regions = tuple(sorted(set(regions)))
        if role is Role.ADMIN:
            if regions or enterprise_id:
                raise ConfigError("an admin sees the whole country: give no region or enterprise")
            return cls(national=True)
        if role.regional:
            if enterprise_id:
                raise ConfigError(f"a {role} is scoped by region, not by enterprise")
            if role is Role.CONTROL_ROOM:
                if len(regions) > 1:
                    raise ConfigError("a control_room watches one region or the whole country")
                return cls(national=not regions, regions=regions)
            if not regions:
                raise ConfigError(f"a {role} needs one or more regions")
            return cls(regions=regions)
        if regions or not enterprise_id:
            raise ConfigError(f"a {role} belongs to exactly one enterprise (and no region)")
        return cls(enterprise_id=enterprise_id)

    def covers(self, region_id: str, enterprise_id: str) -> bool:
        """Whether an enterprise (in ``region_id``) is inside this scope."""
        return self.national or region_id in self.regions or enterprise_id == self.enterprise_id

    def sql_params(self) -> dict[str, Any]:
        """Parameters of the storage layer's scope filter (``scope_*`` placeholders)."""
        return {
            "scope_national": self.national,
            "scope_regions": list(self.regions),
            "scope_enterprise": self.enterprise_id,
        }

    def describe(self) -> str:
        """In words, for logs and the CLI.

        >>> Scope(regions=("KZ-35", "KZ-55")).describe()
        'regions KZ-35, KZ-55'
        """
        if self.national:
            return "the whole country"
        if self.enterprise_id:
            return f"enterprise {self.enterprise_id}"
        return "regions " + ", ".join(self.regions)
