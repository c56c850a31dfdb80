"""About the signed-in worker: the conditions at their workplace."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from fastapi import APIRouter, HTTPException, Request, status

from api.deps import FORBIDDEN, UNAUTHORIZED, CatalogueDep, ConnDep, CurrentUser, ScopeDep
from api.schemas import (
    WorkplaceEnterprisePublic,
    WorkplacePublic,
    WorkplaceSensorPublic,
    WorkplaceZonePublic,
)
from api.workplace import State, judge, sensor_messages, worst, zone_messages
from core.access import Role
from core.alarms import AlertKind
from core.limits import Limits
from storage import queries

__all__ = ["router"]

router = APIRouter(prefix="/me", tags=["me"], responses=UNAUTHORIZED)


def _levels(hazard: str, limits: Limits) -> tuple[float | None, float | None]:
    """The warning and critical levels a reading of ``hazard`` is held to (oxygen: below)."""
    if hazard == "smoke":
        return limits.fire.smoke_warning, limits.fire.smoke_critical
    for rule in limits.rules(hazard):
        if rule.kind in (AlertKind.THRESHOLD, AlertKind.CEILING):
            warning = rule.warning if rule.warning is not None else rule.warning_below
            critical = rule.critical if rule.critical is not None else rule.critical_below
            return warning, critical
    return None, None


@router.get("/workplace", summary="Your workplace: is the air safe", responses=FORBIDDEN)
async def my_workplace(
    request: Request, conn: ConnDep, user: CurrentUser, scope: ScopeDep, catalogue: CatalogueDep
) -> WorkplacePublic:
    """For a worker: their enterprise (with its emergency line), their zone (every zone of
    the enterprise while they have none), each sensor's newest reading and a state —
    green, amber, red or unknown (a silent or faulty sensor) — with a sentence in
    Russian, Kazakh and English."""
    if user.role != Role.WORKER or user.enterprise_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only a worker has a workplace here")
    enterprise = await queries.get_enterprise(conn, scope=scope, enterprise_id=user.enterprise_id)
    if enterprise is None:  # the enterprise left the reference data
        raise HTTPException(status.HTTP_404_NOT_FOUND, "your enterprise is not monitored")
    limits = cast(Limits, request.app.state.limits)
    # Users carry a zone from migration 0016 on (users.zone_id); until then, every zone.
    zone_id = cast(str | None, getattr(user, "zone_id", None))
    zone_rows, sensor_rows = await queries.workplace(
        conn, enterprise_id=user.enterprise_id, zone_id=zone_id
    )
    now = datetime.now(UTC)
    zones = []
    for z in zone_rows:
        sensors = []
        for s in (s for s in sensor_rows if s.zone_id == z.id):
            state, reason = judge(
                s.hazard,
                s.last_value,
                s.last_plausible,
                s.last_ts,
                s.interval_s,
                now,
                limits,
                alert_level=s.alert_level,
                fault=s.fault,
            )
            hazard = catalogue.get(s.hazard)
            warning, critical = _levels(s.hazard, limits)
            sensors.append(
                WorkplaceSensorPublic(
                    sensor_id=s.id,
                    hazard=s.hazard,
                    value=s.last_value,
                    unit=hazard.unit if hazard is not None else None,
                    ts=s.last_ts,
                    state=state,
                    reason=reason,
                    warning=warning,
                    critical=critical,
                    messages=sensor_messages(s.hazard, state, reason, catalogue),
                )
            )
        zone_state: State = worst([s.state for s in sensors])
        zones.append(
            WorkplaceZonePublic(
                id=z.id,
                name=z.name,
                kind=z.kind,
                state=zone_state,
                messages=zone_messages(z.name, zone_state),
                sensors=sensors,
            )
        )
    return WorkplacePublic(
        enterprise=WorkplaceEnterprisePublic(
            id=enterprise.id,
            name=enterprise.name,
            name_ru=enterprise.name_ru,
            emergency_phone=enterprise.emergency_phone,
        ),
        zone_assigned=zone_id is not None,
        state=worst([z.state for z in zones]),
        checked_at=now,
        zones=zones,
    )
