"""The delivery log: who was told what on which channel, every attempt, and the claims.

One ``deliveries`` row per (change id, recipient, channel, address) — the
idempotency key — holding the notification as JSON and the target, so a
delivery can be resumed by another process; one ``delivery_attempts`` row per
attempt. A row is driven by whoever holds its claim (``claimed_by`` until
``claimed_until``): claims are taken with conditional UPDATEs (and ``FOR
UPDATE SKIP LOCKED`` when scanning), so two dispatchers never send the same
delivery, and a claim lapses by itself when its holder dies.

Functions take an open ``psycopg.AsyncConnection`` and keyword-only
arguments, run in the caller's transaction, return ``class_row`` dataclasses,
and return ``None`` when the one thing asked for does not exist (or, for a
claim, is not free). Times come from the caller's clock, never ``now()``, so
one clock decides what is due.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

__all__ = [
    "DELIVERY_STATUSES",
    "FINAL_STATUSES",
    "AttemptRecord",
    "DeliveryAttemptRow",
    "DeliveryLogRow",
    "DeliveryRow",
    "claim_delivery",
    "claim_due_deliveries",
    "create_delivery",
    "delete_push_subscription",
    "finish_attempt",
    "get_delivery",
    "get_delivery_by_id",
    "list_deliveries",
    "list_delivery_attempts",
]

DELIVERY_STATUSES = ("pending", "retrying", "sent", "failed", "rejected", "gone")
FINAL_STATUSES = frozenset({"sent", "failed", "rejected", "gone"})


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """A whole ``deliveries`` row, secrets included: for the deliverer only."""

    id: int
    change_id: str
    alert_key: str | None
    recipient: str
    recipient_name: str
    language: str
    channel: str
    address: str
    target_secret: str | None
    p256dh: str | None
    auth: str | None
    subscription_id: int | None
    notification: dict[str, Any]
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    next_attempt_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    sent_at: datetime | None
    latency_ms: float | None
    http_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryLogRow:
    """A delivery as the admin log shows it: no secrets, no keys, no payload."""

    id: int
    change_id: str
    alert_key: str | None
    recipient: str
    channel: str
    address: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    latency_ms: float | None
    http_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class DeliveryAttemptRow:
    delivery_id: int
    attempt: int
    at: datetime
    status: str  # "sent" | "retry" | "rejected" | "gone"
    latency_ms: float
    http_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt as the deliverer saw it (``status``: sent, retry, rejected, gone)."""

    attempt: int
    at: datetime
    status: str
    latency_ms: float
    http_status: int | None = None
    error: str | None = None


# Every column of DeliveryRow, in its order: the dataclass is the one list of them.
_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(DeliveryRow))

_INSERT = sql.SQL("""
INSERT INTO deliveries (change_id, alert_key, recipient, recipient_name, language, channel,
    address, target_secret, p256dh, auth, subscription_id, notification, status, attempts,
    created_at, updated_at, next_attempt_at, claimed_by, claimed_until)
VALUES (%(change_id)s, %(alert_key)s, %(recipient)s, %(recipient_name)s, %(language)s,
    %(channel)s, %(address)s, %(target_secret)s, %(p256dh)s, %(auth)s, %(subscription_id)s,
    %(notification)s, 'pending', 0, %(now)s, %(now)s, %(now)s, %(claimed_by)s, %(claimed_until)s)
ON CONFLICT (change_id, recipient, channel, address) DO NOTHING
RETURNING {columns}
""").format(columns=_COLUMNS)


async def create_delivery(
    conn: psycopg.AsyncConnection[Any],
    *,
    change_id: str,
    alert_key: str | None,
    recipient: str,
    recipient_name: str,
    language: str,
    channel: str,
    address: str,
    target_secret: str | None,
    p256dh: str | None,
    auth: str | None,
    subscription_id: int | None,
    notification: dict[str, Any],
    now: datetime,
    claimed_by: str,
    claimed_until: datetime,
) -> DeliveryRow | None:
    """Insert a new ``pending`` delivery claimed by ``claimed_by``; None if the key exists."""
    params = {
        "change_id": change_id,
        "alert_key": alert_key,
        "recipient": recipient,
        "recipient_name": recipient_name,
        "language": language,
        "channel": channel,
        "address": address,
        "target_secret": target_secret,
        "p256dh": p256dh,
        "auth": auth,
        "subscription_id": subscription_id,
        "notification": Jsonb(notification),
        "now": now,
        "claimed_by": claimed_by,
        "claimed_until": claimed_until,
    }
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(_INSERT, params)
        return await cur.fetchone()


async def get_delivery(
    conn: psycopg.AsyncConnection[Any],
    *,
    change_id: str,
    recipient: str,
    channel: str,
    address: str,
) -> DeliveryRow | None:
    """The delivery with this idempotency key."""
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(
            sql.SQL(
                "SELECT {columns} FROM deliveries"
                " WHERE change_id = %s AND recipient = %s AND channel = %s AND address = %s"
            ).format(columns=_COLUMNS),
            (change_id, recipient, channel, address),
        )
        return await cur.fetchone()


async def get_delivery_by_id(
    conn: psycopg.AsyncConnection[Any], *, delivery_id: int
) -> DeliveryRow | None:
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(
            sql.SQL("SELECT {columns} FROM deliveries WHERE id = %s").format(columns=_COLUMNS),
            (delivery_id,),
        )
        return await cur.fetchone()


async def claim_delivery(
    conn: psycopg.AsyncConnection[Any],
    *,
    delivery_id: int,
    claimed_by: str,
    now: datetime,
    claimed_until: datetime,
) -> DeliveryRow | None:
    """Take (or renew) the claim on an unfinished delivery; None when it is finished or held.

    A claim is free when nobody holds it or its lease ran out; its own holder may renew it.
    """
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(
            sql.SQL("""
            UPDATE deliveries SET claimed_by = %(by)s, claimed_until = %(until)s, updated_at = %(now)s
            WHERE id = %(id)s AND status IN ('pending', 'retrying')
              AND (claimed_until IS NULL OR claimed_until <= %(now)s OR claimed_by = %(by)s)
            RETURNING {columns}
            """).format(columns=_COLUMNS),
            {"id": delivery_id, "by": claimed_by, "until": claimed_until, "now": now},
        )
        return await cur.fetchone()


async def claim_due_deliveries(
    conn: psycopg.AsyncConnection[Any],
    *,
    now: datetime,
    claimed_by: str,
    claimed_until: datetime,
    limit: int = 100,
) -> list[DeliveryRow]:
    """Claim up to ``limit`` unfinished deliveries that are due and not held, oldest due first.

    Rows another transaction is claiming at the same moment are skipped, not waited for.
    """
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(
            sql.SQL("""
            UPDATE deliveries SET claimed_by = %(by)s, claimed_until = %(until)s, updated_at = %(now)s
            WHERE id IN (
                SELECT id FROM deliveries
                WHERE status IN ('pending', 'retrying') AND next_attempt_at <= %(now)s
                  AND (claimed_until IS NULL OR claimed_until <= %(now)s)
                ORDER BY next_attempt_at
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED)
            RETURNING {columns}
            """).format(columns=_COLUMNS),
            {"by": claimed_by, "until": claimed_until, "now": now, "limit": limit},
        )
        rows = await cur.fetchall()
    return sorted(rows, key=lambda r: r.next_attempt_at)


async def finish_attempt(
    conn: psycopg.AsyncConnection[Any],
    *,
    delivery_id: int,
    claimed_by: str,
    attempt: AttemptRecord,
    status: str,
    next_attempt_at: datetime | None = None,
    claimed_until: datetime | None = None,
) -> DeliveryRow | None:
    """Log one attempt and move the delivery to ``status``; None if the claim was lost.

    ``status`` is the delivery's new status (``retrying`` keeps the claim until
    ``claimed_until`` and is due again at ``next_attempt_at``; a final status
    releases the claim). Run it in a transaction: both writes or neither.
    """
    if status not in DELIVERY_STATUSES:
        raise ValueError(f"unknown delivery status {status!r}")
    final = status in FINAL_STATUSES
    async with conn.cursor(row_factory=class_row(DeliveryRow)) as cur:
        await cur.execute(
            sql.SQL("""
            UPDATE deliveries SET
                status = %(status)s,
                attempts = %(attempt)s,
                updated_at = %(at)s,
                next_attempt_at = coalesce(%(next)s::timestamptz, next_attempt_at),
                claimed_by = CASE WHEN %(final)s::boolean THEN NULL ELSE claimed_by END,
                claimed_until = CASE WHEN %(final)s::boolean THEN NULL ELSE %(until)s::timestamptz END,
                sent_at = CASE WHEN %(status)s = 'sent' THEN %(at)s::timestamptz ELSE sent_at END,
                latency_ms = CASE WHEN %(status)s = 'sent' THEN %(latency)s::float8 ELSE latency_ms END,
                http_status = %(http)s::integer,
                last_error = %(error)s::text
            WHERE id = %(id)s AND claimed_by = %(by)s
            RETURNING {columns}
            """).format(columns=_COLUMNS),
            {
                "id": delivery_id,
                "by": claimed_by,
                "status": status,
                "attempt": attempt.attempt,
                "at": attempt.at,
                "next": next_attempt_at,
                "until": claimed_until,
                "final": final,
                "latency": attempt.latency_ms,
                "http": attempt.http_status,
                "error": attempt.error,
            },
        )
        row = await cur.fetchone()
    if row is None:
        return None
    await conn.execute(
        "INSERT INTO delivery_attempts"
        " (delivery_id, attempt, at, status, latency_ms, http_status, error)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            delivery_id,
            attempt.attempt,
            attempt.at,
            attempt.status,
            attempt.latency_ms,
            attempt.http_status,
            attempt.error,
        ),
    )
    return row


async def delete_push_subscription(
    conn: psycopg.AsyncConnection[Any], *, subscription_id: int
) -> bool:
    """Delete a dead Web Push subscription; False when it was already gone."""
    cur = await conn.execute("DELETE FROM push_subscriptions WHERE id = %s", (subscription_id,))
    return cur.rowcount > 0


async def list_deliveries(
    conn: psycopg.AsyncConnection[Any],
    *,
    alert_key: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[DeliveryLogRow]:
    """The delivery log, newest first, optionally for one alert, channel or status."""
    async with conn.cursor(row_factory=class_row(DeliveryLogRow)) as cur:
        await cur.execute(
            """
            SELECT id, change_id, alert_key, recipient, channel, address, status, attempts,
                   created_at, next_attempt_at, sent_at, latency_ms, http_status, last_error
            FROM deliveries
            WHERE (%(alert_key)s::text IS NULL OR alert_key = %(alert_key)s)
              AND (%(channel)s::text IS NULL OR channel = %(channel)s)
              AND (%(status)s::text IS NULL OR status = %(status)s)
            ORDER BY id DESC
            LIMIT %(limit)s OFFSET %(offset)s
            """,
            {
                "alert_key": alert_key,
                "channel": channel,
                "status": status,
                "limit": limit,
                "offset": offset,
            },
        )
        return await cur.fetchall()


async def list_delivery_attempts(
    conn: psycopg.AsyncConnection[Any], *, delivery_id: int
) -> list[DeliveryAttemptRow]:
    """Every attempt of one delivery, in order."""
    async with conn.cursor(row_factory=class_row(DeliveryAttemptRow)) as cur:
        await cur.execute(
            "SELECT delivery_id, attempt, at, status, latency_ms, http_status, error"
            " FROM delivery_attempts WHERE delivery_id = %s ORDER BY attempt",
            (delivery_id,),
        )
        return await cur.fetchall()
