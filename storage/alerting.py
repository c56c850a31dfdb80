"""The SQL of an alert's life: machine changes, people's actions, history, and reads.

Decisions (may this alert be re-opened? may it be acknowledged?) are made in
`alerts.lifecycle`; this module only reads and writes rows, inside the caller's
transaction. Every change also announces itself with ``pg_notify`` on
`CHANGES_CHANNEL`, which PostgreSQL delivers when (and only if) the
transaction commits — the API's live feed listens to it.

Reads for people take a `core.access.Scope` and filter by it in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row, tuple_row

from core.access import Scope
from core.alarms import AlertEvent
from storage.queries import IN_SCOPE

__all__ = [
    "ALERT_COLUMNS",
    "CHANGES_CHANNEL",
    "AlertFilter",
    "AlertRow",
    "ChangeRow",
    "HistoryRow",
    "add_key",
    "alert_id_for_key",
    "alerts_by_id",
    "append_history",
    "append_machine_events",
    "changes_since",
    "close_leftover_open",
    "count_alerts",
    "find_reopenable",
    "get_alert",
    "history",
    "insert_alert",
    "list_alerts",
    "lock_alert",
    "notify_change",
    "update_alert",
]

CHANGES_CHANNEL = "qorgau_alert_changes"

ALERT_COLUMNS = """
SELECT a.id, a.alert_key, a.enterprise_id, e.region_id, a.sensor_id, a.hazard, a.kind,
       a.source, a.severity, a.state, a.status, a.opened_at, a.value, a.limit_value,
       a.message, a.zone_id, a.escalated_at, a.cleared_at, a.acknowledged_at,
       ack.username AS acknowledged_by, a.resolved_at, res.username AS resolved_by,
       a.resolution, a.resolution_comment, a.reopened_count, a.reopened_at,
       a.escalation_level, a.last_notified_at, a.reminders, a.updated_at
FROM alerts a
LEFT JOIN enterprises e ON e.id = a.enterprise_id
LEFT JOIN users ack ON ack.id = a.acknowledged_by
LEFT JOIN users res ON res.id = a.resolved_by
"""


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    alert_key: str | None
    enterprise_id: str
    region_id: str | None  # None for an enterprise not (yet) in the reference data
    sensor_id: str | None
    hazard: str | None
    kind: str
    source: str
    severity: str
    state: str  # the condition, as the machine sees it: open, cleared, retracted
    status: str  # where people are with it: open, acknowledged, resolved
    opened_at: datetime
    value: float | None
    limit_value: float | None
    message: str
    zone_id: str | None
    escalated_at: datetime | None
    cleared_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolution: str | None
    resolution_comment: str | None
    reopened_count: int
    reopened_at: datetime | None
    escalation_level: int
    last_notified_at: datetime | None
    reminders: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    alert_id: int
    at: datetime
    actor: str
    action: str
    status: str
    severity: str
    value: float | None
    reason: str | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """What a person asks the alert list for; every field optional."""

    status: tuple[str, ...] = ()
    severity: str | None = None
    kind: tuple[str, ...] = ()
    region_id: str | None = None
    enterprise_id: str | None = None
    sensor_id: str | None = None
    since: datetime | None = None  # opened at or after
    until: datetime | None = None  # opened before
    active: bool | None = None  # the condition is still going on


# --- machine side ----------------------------------------------------------------------


async def alert_id_for_key(conn: psycopg.AsyncConnection[Any], *, alert_key: str) -> int | None:
    cur = await conn.execute("SELECT alert_id FROM alert_keys WHERE alert_key = %s", (alert_key,))
    row = await cur.fetchone()
    return int(row[0]) if row else None


async def find_reopenable(
    conn: psycopg.AsyncConnection[Any],
    *,
    sensor_id: str,
    kind: str,
    source: str,
    resolved_since: datetime,
) -> tuple[int, str] | None:
    """``(id, status)`` of the newest cleared alert of this (sensor, kind, source) that people
    have not resolved, or resolved at or after ``resolved_since``; locked for update."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(
            "SELECT id, status FROM alerts WHERE sensor_id = %s AND kind = %s AND source = %s"
            " AND state = 'cleared' AND (status <> 'resolved' OR resolved_at >= %s)"
            " ORDER BY opened_at DESC LIMIT 1 FOR UPDATE",
            (sensor_id, kind, source, resolved_since),
        )
        row = await cur.fetchone()
    return (int(row[0]), str(row[1])) if row else None


async def close_leftover_open(conn: psycopg.AsyncConnection[Any], e: AlertEvent) -> None:
    """An open alert of the same (sensor, kind, source) under another key (machine state lost
    before a checkpoint) is closed, so the database never holds two."""
    await conn.execute(
        "UPDATE alerts SET state = 'cleared', cleared_at = %s, updated_at = now()"
        " WHERE sensor_id = %s AND kind = %s AND source = %s AND state = 'open'"
        " AND alert_key <> %s",
        (e.ts, e.sensor_id, e.kind.value, str(e.details.get("source", "")), e.key),
    )


async def insert_alert(conn: psycopg.AsyncConnection[Any], e: AlertEvent) -> int | None:
    """A new open alert for ``e``; None when its key is already stored (a redelivery)."""
    cur = await conn.execute(
        "INSERT INTO alerts (alert_key, enterprise_id, sensor_id, hazard, kind, severity, state,"
        " opened_at, value, message, zone_id, limit_value, source)"
        " VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (alert_key) DO NOTHING RETURNING id",
        (
            e.key,
            e.enterprise_id,
            e.sensor_id,
            e.hazard,
            e.kind.value,
            e.severity.value,
            e.ts,
            e.value,
            e.message,
            e.zone_id,
            e.limit,
            str(e.details.get("source", "")),
        ),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    alert_id = int(row[0])
    await add_key(conn, alert_key=e.key, alert_id=alert_id)
    return alert_id


async def add_key(conn: psycopg.AsyncConnection[Any], *, alert_key: str, alert_id: int) -> None:
    await conn.execute(
        "INSERT INTO alert_keys (alert_key, alert_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (alert_key, alert_id),
    )


_UPDATABLE = frozenset(
    {
        "severity",
        "state",
        "status",
        "value",
        "message",
        "limit_value",
        "escalated_at",
        "cleared_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
        "resolution",
        "resolution_comment",
        "reopened_count",
        "reopened_at",
        "escalation_level",
        "last_notified_at",
        "reminders",
    }
)


async def update_alert(conn: psycopg.AsyncConnection[Any], *, alert_id: int, **fields: Any) -> None:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update alert fields {sorted(unknown)}")
    query = sql.SQL("UPDATE alerts SET {}, updated_at = now() WHERE id = {}").format(
        sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in sorted(fields)
        ),
        sql.Placeholder("alert_id"),
    )
    await conn.execute(query, {**fields, "alert_id": alert_id})


async def append_history(
    conn: psycopg.AsyncConnection[Any],
    *,
    alert_id: int,
    at: datetime,
    action: str,
    status: str,
    severity: str,
    actor: str = "machine",
    actor_id: int | None = None,
    value: float | None = None,
    reason: str | None = None,
    comment: str | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO alert_history (alert_id, at, actor_id, actor, action, status, severity,"
        " value, reason, comment) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (alert_id, at, actor_id, actor, action, status, severity, value, reason, comment),
    )


async def append_machine_events(
    conn: psycopg.AsyncConnection[Any], events: list[AlertEvent]
) -> None:
    """The machine's own record of its changes, idempotent on (key, action, ts)."""
    if not events:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO alert_events (alert_key, action, ts, severity, value, message)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(e.key, e.action.value, e.ts, e.severity.value, e.value, e.message) for e in events],
        )


async def notify_change(
    conn: psycopg.AsyncConnection[Any], *, alert_id: int, action: str, actor: str
) -> None:
    """Announce a change on `CHANGES_CHANNEL`; delivered to listeners at commit."""
    await conn.execute(
        "SELECT pg_notify(%s, json_build_object('id', a.id, 'action', %s::text, 'actor', %s::text,"
        " 'event_id', (SELECT max(h.id) FROM alert_history h WHERE h.alert_id = a.id),"
        " 'enterprise_id', a.enterprise_id, 'region_id', e.region_id, 'status', a.status,"
        " 'state', a.state, 'severity', a.severity, 'kind', a.kind, 'sensor_id', a.sensor_id,"
        " 'at', now())::text)"
        " FROM alerts a LEFT JOIN enterprises e ON e.id = a.enterprise_id WHERE a.id = %s",
        (CHANGES_CHANNEL, action, actor, alert_id),
    )


# --- people's side -----------------------------------------------------------------------


async def lock_alert(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, alert_id: int
) -> AlertRow | None:
    """The alert, locked until the transaction ends; None if absent or outside ``scope``."""
    async with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        await cur.execute(
            ALERT_COLUMNS + "WHERE a.id = %(alert_id)s AND " + IN_SCOPE + " FOR UPDATE OF a",
            {**scope.sql_params(), "alert_id": alert_id},
        )
        return await cur.fetchone()


async def get_alert(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, alert_id: int
) -> AlertRow | None:
    async with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        await cur.execute(
            ALERT_COLUMNS + "WHERE a.id = %(alert_id)s AND " + IN_SCOPE,
            {**scope.sql_params(), "alert_id": alert_id},
        )
        return await cur.fetchone()


_FILTER = (
    "WHERE "
    + IN_SCOPE
    + """
  AND (cardinality(%(status)s::text[]) = 0 OR a.status = ANY(%(status)s::text[]))
  AND (%(severity)s::text IS NULL OR a.severity = %(severity)s)
  AND (cardinality(%(kind)s::text[]) = 0 OR a.kind = ANY(%(kind)s::text[]))
  AND (%(region_id)s::text IS NULL OR e.region_id = %(region_id)s)
  AND (%(enterprise_id)s::text IS NULL OR a.enterprise_id = %(enterprise_id)s)
  AND (%(sensor_id)s::text IS NULL OR a.sensor_id = %(sensor_id)s)
  AND (%(since)s::timestamptz IS NULL OR a.opened_at >= %(since)s)
  AND (%(until)s::timestamptz IS NULL OR a.opened_at < %(until)s)
  AND (%(active)s::boolean IS NULL OR (a.state = 'open') = %(active)s)
  AND a.state <> 'retracted'
"""
)


_COUNT = "SELECT count(*) FROM alerts a LEFT JOIN enterprises e ON e.id = a.enterprise_id "


_COUNT = "SELECT count(*) FROM alerts a LEFT JOIN enterprises e ON e.id = a.enterprise_id "


def _filter_params(scope: Scope, f: AlertFilter) -> dict[str, Any]:
    return {
        **scope.sql_params(),
        "status": list(f.status),
        "severity": f.severity,
        "kind": list(f.kind),
        "region_id": f.region_id,
        "enterprise_id": f.enterprise_id,
        "sensor_id": f.sensor_id,
        "since": f.since,
        "until": f.until,
        "active": f.active,
    }


async def list_alerts(
    conn: psycopg.AsyncConnection[Any],
    *,
    scope: Scope,
    where: AlertFilter,
    limit: int | None = 100,
    offset: int = 0,
) -> list[AlertRow]:
    """Alerts in ``scope`` matching ``where``: unresolved first, critical first, then newest
    first; ``limit`` None for all of them."""
    async with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        await cur.execute(
            ALERT_COLUMNS
            + _FILTER
            + " ORDER BY (a.status = 'resolved'), (a.severity = 'critical') DESC,"
            " a.opened_at DESC, a.id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {**_filter_params(scope, where), "limit": limit, "offset": offset},
        )
        return await cur.fetchall()


async def count_alerts(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, where: AlertFilter
) -> int:
    cur = await conn.execute(
        _COUNT + _FILTER,
        _filter_params(scope, where),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


_CHANGES = (
    "SELECT h.id, h.alert_id, h.action, h.actor FROM alert_history h"
    " JOIN alerts a ON a.id = h.alert_id LEFT JOIN enterprises e ON e.id = a.enterprise_id"
    " WHERE h.id > %(after_id)s AND a.state <> 'retracted' AND "
)


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One entry of the audit trail, as the live feed replays it."""

    id: int
    alert_id: int
    action: str
    actor: str


async def changes_since(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, after_id: int, limit: int
) -> list[ChangeRow]:
    """Changes of alerts in ``scope`` recorded after history entry ``after_id``, oldest first."""
    async with conn.cursor(row_factory=class_row(ChangeRow)) as cur:
        await cur.execute(
            _CHANGES + IN_SCOPE + " ORDER BY h.id LIMIT %(limit)s",
            {**scope.sql_params(), "after_id": after_id, "limit": limit},
        )
        return await cur.fetchall()


async def alerts_by_id(
    conn: psycopg.AsyncConnection[Any], *, scope: Scope, ids: list[int]
) -> dict[int, AlertRow]:
    async with conn.cursor(row_factory=class_row(AlertRow)) as cur:
        await cur.execute(
            ALERT_COLUMNS + "WHERE a.id = ANY(%(ids)s) AND " + IN_SCOPE,
            {**scope.sql_params(), "ids": ids},
        )
        return {r.id: r for r in await cur.fetchall()}


async def history(conn: psycopg.AsyncConnection[Any], *, alert_id: int) -> list[HistoryRow]:
    """Every change of one alert, oldest first (the caller has checked the scope)."""
    async with conn.cursor(row_factory=class_row(HistoryRow)) as cur:
        await cur.execute(
            "SELECT id, alert_id, at, actor, action, status, severity, value, reason, comment"
            " FROM alert_history WHERE alert_id = %s ORDER BY id",
            (alert_id,),
        )
        return await cur.fetchall()
