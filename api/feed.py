"""The live feed of alert changes: one PostgreSQL ``LISTEN``, fanned out to every client.

Every alert change (the machine's and people's) is announced with ``pg_notify``
in the transaction that makes it, so the feed sees only committed changes, in
commit order. `AlertFeed` holds one listening connection per API process; for
each change it reads the alert once and hands it to the subscribers whose scope
covers the alert's enterprise. A subscriber that falls more than
`QUEUE_SIZE` changes behind is told to ``resync`` (re-read the list) rather
than being sent a gap silently; so is everyone when the listening connection
drops and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from core.access import Scope
from core.catalogue import Catalogue
from storage import alerting

__all__ = ["QUEUE_SIZE", "AlertFeed", "FeedItem", "Subscription"]

QUEUE_SIZE = 1000
_RETRY_S = (0.5, 1.0, 2.0, 5.0)

log = structlog.get_logger("qorgau.api.feed")


@dataclass(frozen=True, slots=True)
class FeedItem:
    event: str  # "alert" or "resync"
    data: dict[str, Any]
    id: int | None = None  # the change's entry in alert_history (the SSE event id)


@dataclass(eq=False)
class Subscription:
    scope: Scope
    queue: asyncio.Queue[FeedItem] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    behind: bool = False

    def offer(self, item: FeedItem) -> None:
        if self.behind:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.behind = True

    async def next(self) -> FeedItem:
        if self.behind and self.queue.empty():
            self.behind = False
            return FeedItem("resync", {"reason": f"more than {QUEUE_SIZE} changes behind"})
        return await self.queue.get()


class AlertFeed:
    def __init__(
        self, dsn: str, pool: AsyncConnectionPool[Any], render: Any, catalogue: Catalogue
    ) -> None:
        self._dsn = dsn
        self._pool = pool
        self._render = render  # AlertRow -> JSON-able dict
        self._catalogue = catalogue
        self._subscribers: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def subscribe(self, scope: Scope) -> Subscription:
        sub = Subscription(scope)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {alerting.CHANGES_CHANNEL}")
                    if failures:
                        self._broadcast(FeedItem("resync", {"reason": "the feed reconnected"}))
                    failures = 0
                    self.listening.set()
                    async for note in conn.notifies():
                        await self._deliver(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the feed must outlive a database restart
                self.listening.clear()
                delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                failures += 1
                log.warning("alert feed lost its connection", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)

    def _broadcast(self, item: FeedItem) -> None:
        for sub in list(self._subscribers):
            sub.offer(item)

    async def _deliver(self, payload: str) -> None:
        if not self._subscribers:
            return
        try:
            change = orjson.loads(payload)
            alert_id = int(change["id"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("unreadable alert change", payload=payload[:200])
            return
        region, enterprise = change.get("region_id"), str(change.get("enterprise_id"))
        targets = [
            s
            for s in self._subscribers
            if s.scope.national or (region is not None and s.scope.covers(region, enterprise))
        ]
        if not targets:
            return
        async with self._pool.connection() as conn:
            row = await alerting.get_alert(conn, scope=Scope(national=True), alert_id=alert_id)
        if row is None:
            return
        event_id = change.get("event_id")
        item = FeedItem(
            "alert",
            {
                "action": change.get("action"),
                "actor": change.get("actor"),
                "alert": self._render(row, self._catalogue),
            },
            int(event_id) if isinstance(event_id, int) else None,
        )
        for sub in targets:
            sub.offer(item)
