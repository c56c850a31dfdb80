"""Routing as data: which people are told about which alert change, and the escalation chain.

The rules live in ``core/data/routing.toml`` (or ``QORGAU_ROUTING_PATH``);
`load_routing` validates every route and names the one at fault. Matching is
pure: `Routing.matches` says which routes an alert change falls under; the
people behind a route's audience are looked up in storage by the dispatcher.

>>> r = load_routing()
>>> [x.audience.role.value for x in r.matches(kind="fire", severity="critical", category="climate", action="open")]
['fire_inspector', 'safety_officer', 'control_room', 'worker']
>>> [x.audience.role.value for x in r.matches(kind="stale", severity="warning", category="gas", action="open")]
['safety_officer']
>>> [x.audience.role.value for x in r.matches(kind="ceiling", severity="critical", category="flammable", action="open")]
['fire_inspector', 'safety_officer', 'control_room', 'worker']
>>> [x.audience.role.value for x in r.matches(kind="stel", severity="warning", category="gas", action="open")]
['labour_inspector', 'safety_officer']
>>> r.escalation.levels[-1].name
'national control room'
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from core.access import Role
from core.alarms import AlertKind, Severity
from core.catalogue import CATEGORIES
from core.datafile import read_toml
from core.errors import CatalogueError

__all__ = [
    "CHANNELS",
    "Audience",
    "EscalationPolicy",
    "Route",
    "Routing",
    "load_routing",
]

CHANNELS = frozenset({"webpush", "email", "webhook", "apprise", "mqtt"})
PURPOSES = frozenset({"alert", "evacuate"})
_ROUTE_KEYS = {
    "name",
    "audience",
    "kinds",
    "categories",
    "exclude_categories",
    "severities",
    "tags",
    "channels",
    "purpose",
    "digest",
    "after_open_min",
    "on_clear",
}
_LEVEL_KEYS = {"name", "audience", "tags", "national", "channels"}


@dataclass(frozen=True, slots=True)
class Audience:
    """People of one role within an alert's scope, optionally only those with some tags."""

    role: Role
    tags: frozenset[str] = frozenset()
    national: bool = False  # only users who cover the whole country (control rooms)
    channels: frozenset[str] = CHANNELS


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    audience: Audience
    kinds: frozenset[str]  # empty = every kind
    categories: frozenset[str]  # empty = every category
    exclude_categories: frozenset[str]
    severities: frozenset[str]
    purpose: str = "alert"
    digest: bool = False  # warnings batched into a periodic digest
    after_open: timedelta | None = None  # only once the alert has been open this long
    on_clear: bool = False

    def matches(self, *, kind: str, severity: str, category: str | None, action: str) -> bool:
        if self.kinds and kind not in self.kinds:
            return False
        if severity not in self.severities:
            return False
        if self.categories and category not in self.categories:
            return False
        if category is not None and category in self.exclude_categories:
            return False
        if action == "clear":
            return self.on_clear
        return action in ("open", "escalate")


@dataclass(frozen=True, slots=True)
class EscalationLevel:
    name: str
    audience: Audience


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    ack_within: timedelta
    remind_every: timedelta
    levels: tuple[EscalationLevel, ...]


@dataclass(frozen=True, slots=True)
class Routing:
    routes: tuple[Route, ...]
    escalation: EscalationPolicy
    digest_every: timedelta
    source: str

    def matches(
        self, *, kind: str, severity: str, category: str | None, action: str
    ) -> list[Route]:
        """The routes an alert change falls under (immediately, not `after_open`)."""
        return [
            r
            for r in self.routes
            if r.after_open is None
            and r.matches(kind=kind, severity=severity, category=category, action=action)
        ]

    def late_routes(self) -> list[Route]:
        """Routes that apply only once an alert has stayed open long enough."""
        return [r for r in self.routes if r.after_open is not None]


def _names(where: str, raw: Any, allowed: frozenset[str], what: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise CatalogueError(where, f"{what} must be a list of strings")
    if raw == ["*"]:
        return frozenset()
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise CatalogueError(
            where, f"unknown {what} {', '.join(unknown)} (known: {', '.join(sorted(allowed))})"
        )
    return frozenset(raw)


def _audience(where: str, raw: dict[str, Any], key: str = "audience") -> Audience:
    try:
        role = Role(raw[key])
    except KeyError:
        raise CatalogueError(where, f"'{key}' is required") from None
    except ValueError:
        raise CatalogueError(
            where, f"unknown role {raw[key]!r} (known: {', '.join(r.value for r in Role)})"
        ) from None
    channels = _names(where, raw.get("channels"), CHANNELS, "channels") or CHANNELS
    tags = raw.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) and t for t in tags):
        raise CatalogueError(where, "tags must be a list of names")
    national = raw.get("national", False)
    if not isinstance(national, bool):
        raise CatalogueError(where, "national must be true or false")
    if national and role is not Role.CONTROL_ROOM:
        raise CatalogueError(where, "only a control_room audience can be national")
    return Audience(role=role, tags=frozenset(tags), national=national, channels=channels)


def _minutes(where: str, raw: dict[str, Any], key: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise CatalogueError(where, f"{key} must be a positive number of minutes")
    return float(value)


def load_routing(path: str | Path | None = None) -> Routing:
    """The routing file at ``path`` (default: the packaged one), validated whole."""
    doc, source = read_toml("routing.toml", path)
    kinds = frozenset(k.value for k in AlertKind)
    routes = []
    raw_routes = doc.get("route", [])
    if not isinstance(raw_routes, list) or not raw_routes:
        raise CatalogueError(source, "no [[route]] at all: nobody would be told anything")
    for i, raw in enumerate(raw_routes, 1):
        name = raw.get("name") or f"route #{i}"
        where = f"{source}: route {name!r}"
        unknown = sorted(set(raw) - _ROUTE_KEYS)
        if unknown:
            raise CatalogueError(where, f"unknown keys {', '.join(unknown)}")
        if "kinds" not in raw:
            raise CatalogueError(where, "'kinds' is required (\"*\" for every kind)")
        purpose = raw.get("purpose", "alert")
        if purpose not in PURPOSES:
            raise CatalogueError(where, f"purpose must be one of {', '.join(sorted(PURPOSES))}")
        audience = _audience(where, raw)
        if raw.get("tags"):
            audience = Audience(
                audience.role, frozenset(raw["tags"]), audience.national, audience.channels
            )
        severities = _names(
            where, raw.get("severities"), frozenset(s.value for s in Severity), "severities"
        ) or frozenset(s.value for s in Severity)
        after = _minutes(where, raw, "after_open_min", None)
        routes.append(
            Route(
                name=name,
                audience=audience,
                kinds=_names(where, raw["kinds"], kinds, "kinds"),
                categories=_names(where, raw.get("categories"), CATEGORIES, "categories"),
                exclude_categories=_names(
                    where, raw.get("exclude_categories"), CATEGORIES, "categories"
                ),
                severities=severities,
                purpose=purpose,
                digest=bool(raw.get("digest", False)),
                after_open=timedelta(minutes=after) if after else None,
                on_clear=bool(raw.get("on_clear", False)),
            )
        )
    esc = doc.get("escalation", {})
    where = f"{source}: [escalation]"
    levels = []
    for j, raw in enumerate(esc.get("level", []), 1):
        lwhere = f"{where} level {raw.get('name') or j!r}"
        unknown = sorted(set(raw) - _LEVEL_KEYS)
        if unknown:
            raise CatalogueError(lwhere, f"unknown keys {', '.join(unknown)}")
        levels.append(
            EscalationLevel(name=raw.get("name", f"level {j}"), audience=_audience(lwhere, raw))
        )
    ack = _minutes(where, esc, "ack_within_min", 10.0)
    remind = _minutes(where, esc, "remind_every_min", 5.0)
    digest = _minutes(f"{source}: [settings]", doc.get("settings", {}), "digest_every_min", 30.0)
    assert ack is not None and remind is not None and digest is not None
    return Routing(
        routes=tuple(routes),
        escalation=EscalationPolicy(
            ack_within=timedelta(minutes=ack),
            remind_every=timedelta(minutes=remind),
            levels=tuple(levels),
        ),
        digest_every=timedelta(minutes=digest),
        source=source,
    )
