"""What routing and escalation read and write: the people of an audience with every way to
reach them, alerts due for escalation or a late route, warnings waiting for a digest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

__all__ = [
    "DigestItemRow",
    "EnterpriseInfo",
    "MemberRow",
    "add_digest_item",
    "audience_members",
    "claim_escalation_step",
    "due_digest_items",
    "enterprise_info",
    "late_route_candidates",
    "mark_digest_flushed",
    "mark_late_routed",
]


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A person of an audience, with every address they are told at."""

    id: int
    username: str
    full_name: str
    role: str
    language: str
    enterprise_id: str | None
    email: str | None
    channels: list[dict[str, Any]]  # {"channel", "address", "secret"}
    subscriptions: list[dict[str, Any]]  # {"id", "endpoint", "p256dh", "auth"}


@dataclass(frozen=True, slots=True)
class EnterpriseInfo:
    id: str
    name: str
    region_id: str


_MEMBERS = """
SELECT u.id, u.username, u.full_name, u.role, u.language, u.enterprise_id, u.email,
       coalesce((SELECT json_agg(json_build_object('channel', c.channel, 'address', c.address,
                                                   'secret', c.secret) ORDER BY c.channel)
                 FROM user_channels c WHERE c.user_id = u.id), '[]') AS channels,
       coalesce((SELECT json_agg(json_build_object('id', p.id, 'endpoint', p.endpoint,
                                                   'p256dh', p.p256dh, 'auth', p.auth) ORDER BY p.id)
                 FROM push_subscriptions p WHERE p.user_id = u.id), '[]') AS subscriptions
FROM users u
WHERE u.active AND u.role = %(role)s
  AND CASE WHEN u.role IN ('safety_officer', 'worker') THEN u.enterprise_id = %(enterprise_id)s
           ELSE cardinality(u.regions) = 0 OR %(region_id)s = ANY(u.regions) END
  AND (NOT %(national_only)s OR cardinality(u.regions) = 0)
  AND (cardinality(%(tags)s::text[]) = 0 OR u.tags && %(tags)s::text[])
ORDER BY u.id
"""


async def audience_members(
    conn: psycopg.AsyncConnection[Any],
    *,
    role: str,
    region_id: str,
    enterprise_id: str,
    tags: list[str],
    national_only: bool,
) -> list[MemberRow]:
    """Active users of ``role`` whose scope covers the enterprise (in ``region_id``)."""
    async with conn.cursor(row_factory=class_row(MemberRow)) as cur:
        await cur.execute(
            _MEMBERS,
            {
                "role": role,
                "region_id": region_id,
                "enterprise_id": enterprise_id,
                "tags": tags,
                "national_only": national_only,
            },
        )
        return await cur.fetchall()


async def enterprise_info(
    conn: psycopg.AsyncConnection[Any], *, enterprise_id: str
) -> EnterpriseInfo | None:
    async with conn.cursor(row_factory=class_row(EnterpriseInfo)) as cur:
        await cur.execute(
            "SELECT id, coalesce(nullif(name_ru, ''), name) AS name, region_id"
            " FROM enterprises WHERE id = %s",
            (enterprise_id,),
        )
        return await cur.fetchone()


async def claim_escalation_step(
    conn: psycopg.AsyncConnection[Any],
    *,
    alert_id: int,
    from_level: int,
    from_reminders: int,
    level: int,
    reminders: int,
    at: datetime,
) -> bool:
    """Move the alert to its next escalation step, if nobody acknowledged it or took the
    step meanwhile (another dispatcher, or the same one retried); True if this call did."""
    cur = await conn.execute(
        "UPDATE alerts SET escalation_level = %s, reminders = %s, last_notified_at = %s,"
        " updated_at = now() WHERE id = %s AND status = 'open' AND severity = 'critical'"
        " AND escalation_level = %s AND reminders = %s",
        (level, reminders, at, alert_id, from_level, from_reminders),
    )
    return cur.rowcount == 1


async def late_route_candidates(
    conn: psycopg.AsyncConnection[Any],
    *,
    route: str,
    kinds: list[str],
    opened_before: datetime,
) -> list[int]:
    """Ids of alerts still going on since before ``opened_before`` not yet sent to ``route``."""
    cur = await conn.execute(
        "SELECT id FROM alerts WHERE state = 'open' AND status <> 'resolved'"
        " AND (cardinality(%s::text[]) = 0 OR kind = ANY(%s::text[]))"
        " AND coalesce(reopened_at, opened_at) <= %s AND NOT (%s = ANY(late_routed)) ORDER BY id",
        (kinds, kinds, opened_before, route),
    )
    return [int(r[0]) for r in await cur.fetchall()]


async def mark_late_routed(
    conn: psycopg.AsyncConnection[Any], *, alert_id: int, route: str
) -> bool:
    cur = await conn.execute(
        "UPDATE alerts SET late_routed = array_append(late_routed, %s)"
        " WHERE id = %s AND NOT (%s = ANY(late_routed))",
        (route, alert_id, route),
    )
    return cur.rowcount == 1


@dataclass(frozen=True, slots=True)
class DigestItemRow:
    id: int
    change_id: str
    recipient: str
    recipient_name: str
    language: str
    channel: str
    address: str
    secret: str | None
    p256dh: str | None
    auth: str | None
    subscription_id: int | None
    notification: dict[str, Any]
    created_at: datetime


async def add_digest_item(
    conn: psycopg.AsyncConnection[Any],
    *,
    change_id: str,
    recipient: str,
    recipient_name: str,
    language: str,
    channel: str,
    address: str,
    secret: str | None,
    p256dh: str | None,
    auth: str | None,
    subscription_id: int | None,
    notification: dict[str, Any],
    created_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO digest_items (change_id, recipient, recipient_name, language, channel,"
        " address, secret, p256dh, auth, subscription_id, notification, created_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            change_id,
            recipient,
            recipient_name,
            language,
            channel,
            address,
            secret,
            p256dh,
            auth,
            subscription_id,
            Jsonb(notification),
            created_at,
        ),
    )


async def due_digest_items(
    conn: psycopg.AsyncConnection[Any], *, oldest_before: datetime
) -> list[DigestItemRow]:
    """Unsent items of every (recipient, channel, address) whose oldest waiting item is older
    than ``oldest_before``, oldest first; locked so two dispatchers never send one twice."""
    async with conn.cursor(row_factory=class_row(DigestItemRow)) as cur:
        await cur.execute(
            "SELECT id, change_id, recipient, recipient_name, language, channel, address,"
            " secret, p256dh, auth, subscription_id, notification, created_at"
            " FROM digest_items d WHERE flushed_at IS NULL AND EXISTS ("
            "   SELECT 1 FROM digest_items o WHERE o.flushed_at IS NULL"
            "   AND o.recipient = d.recipient AND o.channel = d.channel"
            "   AND o.address = d.address AND o.created_at <= %s)"
            " ORDER BY recipient, channel, address, created_at, id FOR UPDATE SKIP LOCKED",
            (oldest_before,),
        )
        return await cur.fetchall()


async def mark_digest_flushed(
    conn: psycopg.AsyncConnection[Any], *, ids: list[int], at: datetime
) -> None:
    await conn.execute("UPDATE digest_items SET flushed_at = %s WHERE id = ANY(%s)", (at, ids))
