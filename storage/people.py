"""People: users with a role and scope, where each is told, their push subscriptions, and
the wrong passwords given for each user name (existing or not).

Passwords arrive here already hashed; this module never sees one in clear.
Functions take a connection first and keyword-only arguments after it; the
synchronous ones serve the ``qorgau users`` command, the asynchronous ones the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from core.access import Role, Scope

__all__ = [
    "ChannelRow",
    "PushSubscriptionRow",
    "UserRow",
    "activation_lock",
    "add_channel",
    "clear_failed_activations",
    "clear_failed_sign_ins",
    "create_user",
    "delete_push_subscription_by_endpoint",
    "end_session",
    "find_user",
    "get_user",
    "get_user_by_username",
    "list_channels",
    "list_push_subscriptions",
    "list_users",
    "record_failed_activation",
    "record_failed_sign_in",
    "remove_channel",
    "save_push_subscription",
    "sign_in_lock",
    "update_user",
    "upgrade_password_hash",
]

_USER_COLUMNS = """
SELECT id, username, full_name, role, regions, enterprise_id, tags, language, email, phone,
       password_hash, active, token_version, created_at, updated_at, personnel_number, zone_id
FROM users
"""


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    full_name: str
    role: str
    regions: list[str]
    enterprise_id: str | None
    tags: list[str]
    language: str
    email: str | None
    phone: str | None
    password_hash: str | None  # None: a worker imported from a roster, not activated yet
    active: bool
    token_version: int
    created_at: datetime
    updated_at: datetime
    personnel_number: str | None = None
    zone_id: str | None = None

    @property
    def scope(self) -> Scope:
        return Scope.for_role(
            Role(self.role), regions=self.regions, enterprise_id=self.enterprise_id
        )


@dataclass(frozen=True, slots=True)
class ChannelRow:
    user_id: int
    channel: str
    address: str
    secret: str | None


@dataclass(frozen=True, slots=True)
class PushSubscriptionRow:
    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    user_agent: str | None
    created_at: datetime


def create_user(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    role: Role,
    password_hash: str,
    regions: list[str] | None = None,
    enterprise_id: str | None = None,
    full_name: str = "",
    tags: list[str] | None = None,
    language: str = "ru",
    email: str | None = None,
    phone: str | None = None,
) -> UserRow:
    """Insert a user; raises `psycopg.errors.UniqueViolation` if the name is taken."""
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        cur.execute(
            "INSERT INTO users (username, full_name, role, regions, enterprise_id, tags, language,"
            " email, phone, password_hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id, username, full_name, role, regions, enterprise_id, tags, language,"
            " email, phone, password_hash, active, token_version, created_at, updated_at,"
            " personnel_number, zone_id",
            (
                username,
                full_name,
                role.value,
                regions or [],
                enterprise_id,
                tags or [],
                language,
                email,
                phone,
                password_hash,
            ),
        )
        row = cur.fetchone()
    assert row is not None
    return row


_UPDATABLE = frozenset(
    {
        "full_name",
        "role",
        "regions",
        "enterprise_id",
        "tags",
        "language",
        "email",
        "phone",
        "password_hash",
        "active",
    }
)


def update_user(conn: psycopg.Connection[Any], *, username: str, **changes: Any) -> UserRow | None:
    """Change some fields of a user; a new password or disabling invalidates their tokens."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    if not changes:
        return get_user_by_username(conn, username=username)
    assignments: list[sql.Composable] = [
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in sorted(changes)
    ]
    if "password_hash" in changes or changes.get("active") is False:
        assignments.append(sql.SQL("token_version = token_version + 1"))
    query = sql.SQL(
        "UPDATE users SET {}, updated_at = now() WHERE username = {} RETURNING {}"
    ).format(
        sql.SQL(", ").join(assignments),
        sql.Placeholder("username"),
        sql.SQL(
            "id, username, full_name, role, regions, enterprise_id, tags, language, email,"
            " phone, password_hash, active, token_version, created_at, updated_at,"
            " personnel_number, zone_id"
        ),
    )
    params = {**changes, "username": username}
    if "role" in params and isinstance(params["role"], Role):
        params["role"] = params["role"].value
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        cur.execute(query, params)
        row = cur.fetchone()
    if row is not None and ("password_hash" in changes or changes.get("active") is True):
        # A new password or re-enabling also lifts a lock from wrong passwords.
        conn.execute("DELETE FROM sign_in_failures WHERE username = %s", (username,))
    return row


def get_user_by_username(conn: psycopg.Connection[Any], *, username: str) -> UserRow | None:
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        cur.execute(_USER_COLUMNS + "WHERE username = %s", (username,))
        return cur.fetchone()


def list_users(conn: psycopg.Connection[Any], *, role: Role | None = None) -> list[UserRow]:
    with conn.cursor(row_factory=class_row(UserRow)) as cur:
        cur.execute(
            _USER_COLUMNS + "WHERE %(role)s::text IS NULL OR role = %(role)s ORDER BY username",
            {"role": role.value if role else None},
        )
        return cur.fetchall()


def add_channel(
    conn: psycopg.Connection[Any],
    *,
    user_id: int,
    channel: str,
    address: str,
    secret: str | None = None,
) -> None:
    conn.execute(
        "INSERT INTO user_channels (user_id, channel, address, secret) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (user_id, channel, address) DO UPDATE SET secret = EXCLUDED.secret",
        (user_id, channel, address, secret),
    )


def remove_channel(
    conn: psycopg.Connection[Any], *, user_id: int, channel: str, address: str
) -> bool:
    cur = conn.execute(
        "DELETE FROM user_channels WHERE user_id = %s AND channel = %s AND address = %s",
        (user_id, channel, address),
    )
    return cur.rowcount > 0


def list_channels(conn: psycopg.Connection[Any], *, user_id: int) -> list[ChannelRow]:
    with conn.cursor(row_factory=class_row(ChannelRow)) as cur:
        cur.execute(
            "SELECT user_id, channel, address, secret FROM user_channels WHERE user_id = %s"
            " ORDER BY channel, address",
            (user_id,),
        )
        return cur.fetchall()


_LIVE_SESSION = "WHERE id = %s AND NOT EXISTS (SELECT 1 FROM ended_sessions WHERE sid = %s)"


async def get_user(
    conn: psycopg.AsyncConnection[Any], *, user_id: int, session: str | None = None
) -> UserRow | None:
    """The user, or None — also when ``session`` (a token's session id) has been ended."""
    async with conn.cursor(row_factory=class_row(UserRow)) as cur:
        await cur.execute(
            _USER_COLUMNS + _LIVE_SESSION,
            (user_id, session),
        )
        return await cur.fetchone()


async def end_session(
    conn: psycopg.AsyncConnection[Any], *, user_id: int, session: str, expires_at: datetime
) -> None:
    """Refuse ``session``'s tokens from now on (until ``expires_at``, when they would have
    expired anyway); sessions ended long ago are forgotten here."""
    await conn.execute("DELETE FROM ended_sessions WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO ended_sessions (sid, user_id, expires_at) VALUES (%s, %s, %s)"
        " ON CONFLICT (sid) DO NOTHING",
        (session, user_id, expires_at),
    )


async def find_user(conn: psycopg.AsyncConnection[Any], *, username: str) -> UserRow | None:
    async with conn.cursor(row_factory=class_row(UserRow)) as cur:
        await cur.execute(_USER_COLUMNS + "WHERE username = %s", (username,))
        return await cur.fetchone()


async def save_push_subscription(
    conn: psycopg.AsyncConnection[Any],
    *,
    user_id: int,
    endpoint: str,
    p256dh: str,
    auth: str,
    user_agent: str | None,
) -> PushSubscriptionRow:
    """Store (or move to this user, with new keys) the subscription of one browser."""
    async with conn.cursor(row_factory=class_row(PushSubscriptionRow)) as cur:
        await cur.execute(
            "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, user_agent)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (endpoint) DO UPDATE SET"
            " user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,"
            " user_agent = EXCLUDED.user_agent"
            " RETURNING id, user_id, endpoint, p256dh, auth, user_agent, created_at",
            (user_id, endpoint, p256dh, auth, user_agent),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def delete_push_subscription_by_endpoint(
    conn: psycopg.AsyncConnection[Any], *, user_id: int, endpoint: str
) -> bool:
    """Remove one of the user's own subscriptions; False if they have none at ``endpoint``."""
    cur = await conn.execute(
        "DELETE FROM push_subscriptions WHERE user_id = %s AND endpoint = %s",
        (user_id, endpoint),
    )
    return cur.rowcount > 0


async def list_push_subscriptions(
    conn: psycopg.AsyncConnection[Any], *, user_id: int
) -> list[PushSubscriptionRow]:
    async with conn.cursor(row_factory=class_row(PushSubscriptionRow)) as cur:
        await cur.execute(
            "SELECT id, user_id, endpoint, p256dh, auth, user_agent, created_at"
            " FROM push_subscriptions WHERE user_id = %s ORDER BY id",
            (user_id,),
        )
        return await cur.fetchall()


async def upgrade_password_hash(
    conn: psycopg.AsyncConnection[Any], *, user_id: int, password_hash: str
) -> None:
    """Store a stronger hash of the same password (sessions stay valid)."""
    await conn.execute(
        "UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id)
    )


async def record_failed_sign_in(
    conn: psycopg.AsyncConnection[Any],
    *,
    username: str,
    limit: int,
    lock_for: timedelta,
    forget_after: timedelta,
) -> datetime | None:
    """Count a wrong password for ``username``, whether or not a user has that name; after
    ``limit`` in a row the name is locked for ``lock_for``.

    Names whose last failure is older than ``forget_after`` (and that are not locked) are
    forgotten first, so names tried once by a guesser do not pile up. Returns the end of
    the lock when this failure (or an earlier one) locked the name.
    """
    return await _record_failure(
        conn, _SIGN_IN, username, limit=limit, lock_for=lock_for, forget_after=forget_after
    )


async def sign_in_lock(conn: psycopg.AsyncConnection[Any], *, username: str) -> datetime | None:
    """When the lock on ``username`` ends, if it is locked now (whether or not it exists)."""
    return await _lock(conn, _SIGN_IN, username)


async def clear_failed_sign_ins(conn: psycopg.AsyncConnection[Any], *, username: str) -> None:
    """Forget the wrong passwords of ``username`` (after a right one)."""
    await _clear(conn, _SIGN_IN, username)


async def record_failed_activation(
    conn: psycopg.AsyncConnection[Any],
    *,
    client: str,
    limit: int,
    lock_for: timedelta,
    forget_after: timedelta,
) -> datetime | None:
    """Count a wrong activation code from ``client`` (its address), as `record_failed_sign_in`
    counts wrong passwords for a name; returns the end of the lock if it is locked."""
    return await _record_failure(
        conn, _ACTIVATION, client, limit=limit, lock_for=lock_for, forget_after=forget_after
    )


async def activation_lock(conn: psycopg.AsyncConnection[Any], *, client: str) -> datetime | None:
    """When the lock on activations from ``client`` ends, if it is locked now."""
    return await _lock(conn, _ACTIVATION, client)


async def clear_failed_activations(conn: psycopg.AsyncConnection[Any], *, client: str) -> None:
    """Forget the wrong codes from ``client`` (after a right one)."""
    await _clear(conn, _ACTIVATION, client)


# Where wrong guesses are counted: (table, the column naming what is counted).
_SIGN_IN = ("sign_in_failures", "username")
_ACTIVATION = ("activation_failures", "client")


async def _record_failure(
    conn: psycopg.AsyncConnection[Any],
    counter: tuple[str, str],
    key: str,
    *,
    limit: int,
    lock_for: timedelta,
    forget_after: timedelta,
) -> datetime | None:
    table, column = map(sql.Identifier, counter)
    await conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE last_failed_at < now() - %s"
            " AND (locked_until IS NULL OR locked_until <= now())"
        ).format(table),
        (forget_after,),
    )
    cur = await conn.execute(
        sql.SQL(
            "INSERT INTO {table} AS f ({column}, failures, locked_until, last_failed_at)"
            " VALUES (%(key)s, 1, CASE WHEN 1 >= %(limit)s THEN now() + %(lock_for)s END,"
            " now())"
            " ON CONFLICT ({column}) DO UPDATE SET failures = f.failures + 1,"
            " last_failed_at = now(), locked_until = CASE WHEN f.failures + 1 >= %(limit)s"
            " THEN now() + %(lock_for)s ELSE f.locked_until END"
            " RETURNING locked_until"
        ).format(table=table, column=column),
        {"key": key, "limit": limit, "lock_for": lock_for},
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def _lock(
    conn: psycopg.AsyncConnection[Any], counter: tuple[str, str], key: str
) -> datetime | None:
    table, column = map(sql.Identifier, counter)
    cur = await conn.execute(
        sql.SQL("SELECT locked_until FROM {} WHERE {} = %s AND locked_until > now()").format(
            table, column
        ),
        (key,),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def _clear(conn: psycopg.AsyncConnection[Any], counter: tuple[str, str], key: str) -> None:
    table, column = map(sql.Identifier, counter)
    await conn.execute(sql.SQL("DELETE FROM {} WHERE {} = %s").format(table, column), (key,))
