"""Is what you see live? The newest reading in your scope and the pipeline's heartbeats.

A control room must never trust a frozen screen: the wall asks this every few
seconds and shows a banner for each problem — no reading stored in its scope for
``wall_stale_after_s``, no worker, a worker silent for ``wall_silent_after_s`` or
not ready, the API's own live feed not listening.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request

from api.deps import UNAUTHORIZED, ConnDep, ScopeDep, SettingsDep
from api.schemas import ComponentPublic, ProblemPublic, StatusPublic
from storage import components

__all__ = ["router"]

router = APIRouter(tags=["status"], responses=UNAUTHORIZED)


@router.get("/status", summary="Is the data in your scope live?")
async def status_(
    request: Request, conn: ConnDep, scope: ScopeDep, settings: SettingsDep
) -> StatusPublic:
    """The newest stored reading in your scope, every component's heartbeat, and the
    problems that make the data stale (empty when all is live)."""
    now = datetime.now(UTC)
    newest = await components.newest_reading(conn, scope=scope)
    rows = await components.list_components(conn)
    silent_after = settings.wall_silent_after_s
    parts = [
        ComponentPublic(
            name=r.name,
            kind=r.kind,
            host=r.host,
            ready=r.ready,
            alive=r.age_s <= silent_after,
            seen_s=round(max(r.age_s, 0.0), 1),
        )
        for r in rows
    ]
    problems: list[ProblemPublic] = []
    age = None if newest is None else round(max((now - newest).total_seconds(), 0.0), 1)
    if age is None:
        problems.append(ProblemPublic(code="no_readings", subject=None, seconds=None))
    elif age > settings.wall_stale_after_s:
        problems.append(ProblemPublic(code="readings_late", subject=None, seconds=age))
    workers = [c for c in parts if c.kind == "worker"]
    if not any(c.alive for c in workers):
        problems.append(ProblemPublic(code="no_workers", subject=None, seconds=None))
    for c in workers:
        # A worker that stopped for good (replaced, scaled down) is forgotten after an hour.
        if not c.alive and c.seen_s < 3600:
            problems.append(ProblemPublic(code="worker_silent", subject=c.name, seconds=c.seen_s))
        elif c.alive and not c.ready:
            problems.append(ProblemPublic(code="worker_not_ready", subject=c.name, seconds=None))
    feed = getattr(request.app.state, "feed", None)
    if feed is not None and not feed.listening.is_set():
        problems.append(ProblemPublic(code="feed_down", subject=None, seconds=None))
    return StatusPublic(
        now=now,
        newest_reading_at=newest,
        reading_age_s=age,
        stale_after_s=settings.wall_stale_after_s,
        components=parts,
        problems=problems,
    )
