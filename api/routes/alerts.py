"""Alerts: list and filter, one with its readings and history, acknowledge, resolve, comment,
and a live feed of changes (Server-Sent Events), all within the caller's scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, status
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from alerts import lifecycle
from alerts.lifecycle import Actor, AlertNotFound, TransitionRefused
from api.deps import (
    FORBIDDEN,
    MAX_ID,
    UNAUTHORIZED,
    UNREADABLE_BODY,
    AlertActor,
    CatalogueDep,
    ConnDep,
    Instant,
    PoolDep,
    ScopeDep,
    StreamUser,
    page_limit,
    page_offset,
)
from api.feed import AlertFeed
from api.schemas import (
    AlertDetailPublic,
    AlertPagePublic,
    AlertPublic,
    CommentRequest,
    HistoryPublic,
    ReadingPointPublic,
    ReadingSeriesPublic,
    ResolveRequest,
)
from core.access import Role
from core.alarms import AlertKind, Severity
from storage import alerting, queries
from storage.people import UserRow

__all__ = ["lifecycle_error_handler", "router"]

router = APIRouter(prefix="/alerts", tags=["alerts"], responses=UNAUTHORIZED)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No alert with this id in your scope."}
}
_CONFLICT: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {
        "description": "The alert is not in a state that allows this (e.g. already "
        "acknowledged); the body's `alert` is how it is now."
    }
}
AlertId = Annotated[int, Path(ge=1, le=MAX_ID, description="The alert's number.", examples=[1])]
AROUND = timedelta(minutes=30)
REPLAY_MAX = 1000  # changes a reconnecting feed client is sent; beyond that, resync


def _actor(user: UserRow) -> Actor:
    return Actor(user_id=user.id, username=user.username, role=Role(user.role), scope=user.scope)


@router.get("", summary="List alerts")
async def list_alerts(
    conn: ConnDep,
    scope: ScopeDep,
    catalogue: CatalogueDep,
    status_: Annotated[
        list[lifecycle.Status] | None,
        Query(alias="status", description="Only these statuses (repeatable)."),
    ] = None,
    severity: Annotated[Severity | None, Query(description="Only this severity.")] = None,
    kind: Annotated[
        list[AlertKind] | None, Query(description="Only these kinds (repeatable).")
    ] = None,
    region_id: Annotated[str | None, Query(description="Only this region.")] = None,
    enterprise_id: Annotated[str | None, Query(description="Only this enterprise.")] = None,
    sensor_id: Annotated[str | None, Query(description="Only this sensor.")] = None,
    active: Annotated[
        bool | None, Query(description="Only alerts whose condition is (or is not) going on.")
    ] = None,
    since: Annotated[
        Instant | None, Query(description="Opened at or after (ISO 8601 with offset).")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="Opened before (ISO 8601 with offset).")
    ] = None,
    limit: Annotated[int, page_limit("alerts")] = 100,
    offset: Annotated[int, page_offset("alerts")] = 0,
) -> AlertPagePublic:
    """Alerts in your scope: unresolved first, critical before warning, newest first."""
    where = alerting.AlertFilter(
        status=tuple(s.value for s in status_ or ()),
        severity=severity.value if severity else None,
        kind=tuple(k.value for k in kind or ()),
        region_id=region_id,
        enterprise_id=enterprise_id,
        sensor_id=sensor_id,
        since=since,
        until=until,
        active=active,
    )
    rows = await alerting.list_alerts(conn, scope=scope, where=where, limit=limit, offset=offset)
    total = await alerting.count_alerts(conn, scope=scope, where=where)
    return AlertPagePublic(total=total, items=[AlertPublic.from_row(r, catalogue) for r in rows])


@router.get(
    "/feed",
    summary="Live feed of alert changes (Server-Sent Events)",
    response_class=EventSourceResponse,
)
async def alert_feed(
    request: Request,
    user: StreamUser,
    pool: PoolDep,
    catalogue: CatalogueDep,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Sent by EventSource when it reconnects: the changes after it first.",
        ),
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_ID, description="The same as Last-Event-ID, for other clients."),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every change of an alert in your scope as it is committed: ``event: alert`` with
    ``{"action", "actor", "alert"}`` and ``id`` = the change's number. ``event: ready`` comes
    first. A client that reconnects with ``Last-Event-ID`` (EventSource does) first gets
    the changes it missed (each with the alert as it is now), up to `REPLAY_MAX`; beyond
    that, or when the feed itself missed changes, ``event: resync`` (re-read the list).
    Browsers' EventSource cannot send headers: pass the access token as
    ``?access_token=...``."""
    feed = cast(AlertFeed, request.app.state.feed)
    sub = feed.subscribe(user.scope)  # before the replay: nothing falls between the two
    try:
        yield ServerSentEvent(event="ready", data={"scope": user.scope.describe()})
        resume = after if after is not None else _event_id(last_event_id)
        replayed = 0
        if resume is not None:
            async with pool.connection() as conn:
                changes = await alerting.changes_since(
                    conn, scope=user.scope, after_id=resume, limit=REPLAY_MAX + 1
                )
                alerts = await alerting.alerts_by_id(
                    conn, scope=user.scope, ids=sorted({c.alert_id for c in changes})
                )
            if len(changes) > REPLAY_MAX:
                yield ServerSentEvent(
                    event="resync", data={"reason": f"more than {REPLAY_MAX} changes missed"}
                )
            else:
                for c in changes:
                    replayed = c.id
                    alert = alerts.get(c.alert_id)
                    if alert is None:
                        continue
                    yield ServerSentEvent(
                        id=str(c.id),
                        event="alert",
                        data={
                            "action": c.action,
                            "actor": c.actor,
                            "alert": AlertPublic.from_row(alert, catalogue),
                        },
                    )
        while True:
            item = await sub.next()
            if item.id is not None and item.id <= replayed:
                continue  # already sent by the replay
            yield ServerSentEvent(
                id=str(item.id) if item.id is not None else None,
                event=item.event,
                data=item.data,
            )
    finally:
        feed.unsubscribe(sub)


def _event_id(header: str | None) -> int | None:
    try:
        event_id = int(header) if header else None
    except ValueError:
        return None  # not one of ours: start from now
    return event_id if event_id is not None and 0 <= event_id <= MAX_ID else None


@router.get("/{alert_id}", summary="One alert, its history and its readings", responses=_NOT_FOUND)
async def get_alert(
    conn: ConnDep, scope: ScopeDep, catalogue: CatalogueDep, alert_id: AlertId
) -> AlertDetailPublic:
    row = await alerting.get_alert(conn, scope=scope, alert_id=alert_id)
    if row is None or row.state == "retracted":
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id} not found")
    history = await alerting.history(conn, alert_id=row.id)
    series = None
    if row.sensor_id and not row.sensor_id.startswith("worker:"):
        start = row.opened_at - AROUND
        end = min((row.cleared_at or datetime.now(UTC)) + AROUND, datetime.now(UTC))
        end = max(end, start + timedelta(seconds=1))
        points, downsampled, width = await queries.readings_for_sensor(
            conn, scope=scope, sensor_id=row.sensor_id, start=start, end=end, max_points=500
        )
        hazard = catalogue.get(row.hazard) if row.hazard else None
        series = ReadingSeriesPublic(
            sensor_id=row.sensor_id,
            hazard=row.hazard or "",
            unit=hazard.unit if hazard is not None else None,
            start=start,
            end=end,
            downsampled=downsampled,
            bucket_seconds=width,
            points=[ReadingPointPublic.from_storage(p) for p in points],
        )
    return AlertDetailPublic(
        alert=AlertPublic.from_row(row, catalogue),
        history=[HistoryPublic.from_row(h) for h in history],
        readings=series,
    )


@router.post(
    "/{alert_id}/acknowledge",
    summary="Acknowledge: you have seen it and are on it",
    responses={**FORBIDDEN, **_NOT_FOUND, **_CONFLICT},
)
async def acknowledge_alert(
    conn: ConnDep, user: AlertActor, catalogue: CatalogueDep, alert_id: AlertId
) -> AlertPublic:
    row = await lifecycle.acknowledge(
        conn, actor=_actor(user), alert_id=alert_id, at=datetime.now(UTC)
    )
    await conn.commit()  # before answering: the person must not see a change that is not kept
    return AlertPublic.from_row(row, catalogue)


@router.post(
    "/{alert_id}/resolve",
    summary="Resolve with a reason (and a comment)",
    responses={**FORBIDDEN, **_NOT_FOUND, **_CONFLICT, **UNREADABLE_BODY},
)
async def resolve_alert(
    conn: ConnDep,
    user: AlertActor,
    catalogue: CatalogueDep,
    alert_id: AlertId,
    body: ResolveRequest,
) -> AlertPublic:
    row = await lifecycle.resolve(
        conn,
        actor=_actor(user),
        alert_id=alert_id,
        reason=body.reason,
        comment=body.comment,
        at=datetime.now(UTC),
    )
    await conn.commit()
    return AlertPublic.from_row(row, catalogue)


@router.post(
    "/{alert_id}/comments",
    summary="Add a comment",
    responses={**FORBIDDEN, **_NOT_FOUND, **UNREADABLE_BODY},
)
async def comment_alert(
    conn: ConnDep,
    user: AlertActor,
    catalogue: CatalogueDep,
    alert_id: AlertId,
    body: CommentRequest,
) -> AlertPublic:
    row = await lifecycle.add_comment(
        conn, actor=_actor(user), alert_id=alert_id, text=body.text, at=datetime.now(UTC)
    )
    await conn.commit()
    return AlertPublic.from_row(row, catalogue)


def lifecycle_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Turns `alerts.lifecycle` refusals into answers: 404, 409 (with the alert now) or 422
    (as FastAPI's validation errors are)."""
    if isinstance(exc, AlertNotFound):
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, TransitionRefused):
        catalogue = request.app.state.catalogue
        return JSONResponse(
            {
                "detail": str(exc),
                "alert": AlertPublic.from_row(exc.alert, catalogue).model_dump(mode="json"),
            },
            status_code=status.HTTP_409_CONFLICT,
        )
    # Any other refusal is about what was sent: FastAPI's validation-error shape.
    error = {"type": "value_error", "loc": ["body"], "msg": str(exc)}
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
