"""Heartbeats of running components, and how fresh the data in a scope is.

A component (`stream.worker`, ...) calls `beat` every few seconds; `list_components`
reads them back with each one's age, so that a wall can say "worker-2 silent for 40 s"
instead of showing a frozen screen as if nothing happened. `newest_reading` is the
time of the newest stored reading of the enterprises in a scope.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from core.access import Scope
from storage.queries import IN_SCOPE

__all__ = ["ComponentRow", "beat", "list_components", "newest_reading"]

_HOST = socket.gethostname()[:200]


@dataclass(frozen=True, slots=True)
class ComponentRow:
    name: str
    kind: str
    host: str
    pid: int
    ready: bool
    started_at: datetime
    seen_at: datetime
    age_s: float  # seconds since its last heartbeat, by the database's clock


_BEAT = """
INSERT INTO components (name, kind, host, pid, ready, started_at, seen_at)
VALUES (%(name)s, %(kind)s, %(host)s, %(pid)s, %(ready)s, %(started_at)s, now())
ON CONFLICT (name) DO UPDATE
SET kind = EXCLUDED.kind, host = EXCLUDED.host, pid = EXCLUDED.pid, ready = EXCLUDED.ready,
    started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at
"""

_LIST = """
SELECT name, kind, host, pid, ready, started_at, seen_at,
       extract(epoch FROM now() - seen_at)::float8 AS age_s
FROM components
ORDER BY kind, name
"""

# The newest reading per enterprise is one backward step on (enterprise_id, ts DESC).
_NEWEST = (
    "SELECT max(last.ts) FROM enterprises e CROSS JOIN LATERAL ("  # noqa: S608 - constants
    " SELECT r.ts FROM readings r WHERE r.enterprise_id = e.id ORDER BY r.ts DESC LIMIT 1"
    f") AS last WHERE {IN_SCOPE}"
)


async def beat(
    conn: psycopg.AsyncConnection[Any],
    *,
    name: str,
    kind: str,
    ready: bool,
    started_at: datetime,
) -> None:
    """Record that component ``name`` is alive (and whether it is ready) now."""
    await conn.execute(
        _BEAT,
        {
            "name": name,
            "kind": kind,
            "host": _HOST,
            "pid": os.getpid(),
            "ready": ready,
            "started_at": started_at,
        },
    )


async def list_components(conn: psycopg.AsyncConnection[Any]) -> list[ComponentRow]:
    async with conn.cursor(row_factory=class_row(ComponentRow)) as cur:
        await cur.execute(_LIST)
        return await cur.fetchall()


async def newest_reading(conn: psycopg.AsyncConnection[Any], *, scope: Scope) -> datetime | None:
    """When the newest reading of the enterprises in ``scope`` was taken (None: none yet)."""
    cur = await conn.execute(_NEWEST, scope.sql_params())
    row = await cur.fetchone()
    return row[0] if row is not None else None
