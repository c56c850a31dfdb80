"""Workers' accounts: a roster imported in one transaction, one-time activation codes.

A roster's rows arrive checked (`core.roster.parse_roster`); here they meet the
database. A personnel number the enterprise already has is an update of that worker;
a new one is a new worker with no password, a user name of their own and a one-time
activation code. Everything of one import is written in one transaction, under a lock
per enterprise (two imports of one enterprise run one after the other), so a failure
anywhere leaves nothing of it, and importing the same file again changes nothing and
issues no code.

Codes are stored as a keyed hash only (`core.activation.code_hash`); the code itself
exists only in what these functions return, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import class_row

from core.activation import code_hash, format_code, new_code
from core.roster import RosterRow, RowError, worker_username
from storage.people import UserRow

__all__ = [
    "Activation",
    "ImportOutcome",
    "IssuedCode",
    "WorkerRow",
    "activate",
    "enterprise_zones",
    "import_roster",
    "issue_code",
    "list_workers",
]

_ROSTER_LOCK = 0x526F7374  # "Rost": with the enterprise's hash, one import at a time


@dataclass(frozen=True, slots=True)
class IssuedCode:
    """A code just made for a worker: shown once, then only its hash exists."""

    username: str
    full_name: str
    personnel_number: str | None
    code: str  # grouped, as printed: 7K2M-9QXD-H4TA
    expires_at: datetime
    line: int | None = None  # the roster's line that created the worker


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    created: tuple[IssuedCode, ...]  # empty in a dry run (no code is made)
    created_count: int  # workers created (or, in a dry run, that would be)
    updated: int  # workers whose name, zone or phone changed (count)
    unchanged: int  # workers already as the roster says (count)
    errors: tuple[RowError, ...]  # rows the database's state refuses

    def report(self, read_errors: Sequence[RowError]) -> tuple[list[RowError], int]:
        """Every refusal of the file — ``read_errors`` (the reading's) and these — by line,
        and how many lines were refused (a line may have several errors)."""
        errors = sorted((*read_errors, *self.errors), key=lambda e: e.line)
        return errors, len({e.line for e in errors})


@dataclass(frozen=True, slots=True)
class WorkerRow:
    username: str
    full_name: str
    personnel_number: str | None
    zone_id: str | None
    phone: str | None
    active: bool
    activated: bool
    code_expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class _Existing:
    id: int
    username: str
    role: str
    full_name: str
    zone_id: str | None
    phone: str | None
    personnel_number: str


class Activation(StrEnum):
    ACTIVATED = "activated"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no such code, used already, or its worker disabled


async def enterprise_zones(
    conn: psycopg.AsyncConnection[Any], *, enterprise_id: str
) -> dict[str, str]:
    """The enterprise's zones, id -> name."""
    cur = await conn.execute(
        "SELECT id, name FROM zones WHERE enterprise_id = %s ORDER BY id", (enterprise_id,)
    )
    return {zone_id: name for zone_id, name in await cur.fetchall()}


async def import_roster(
    conn: psycopg.AsyncConnection[Any],
    *,
    enterprise_id: str,
    rows: Sequence[RosterRow],
    key: bytes,
    valid_for: timedelta,
    issued_by: str | None,
    dry_run: bool = False,
) -> ImportOutcome:
    """Create the workers of ``rows`` new to the enterprise (each with an activation code
    valid for ``valid_for``), update those whose details changed, in one transaction.

    ``dry_run`` decides and counts the same but writes nothing and makes no code.
    """
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_ROSTER_LOCK, enterprise_id)
        )
        async with conn.cursor(row_factory=class_row(_Existing)) as cur:
            await cur.execute(
                "SELECT id, username, role, full_name, zone_id, phone, personnel_number"
                " FROM users WHERE enterprise_id = %s AND personnel_number = ANY(%s)",
                (enterprise_id, [r.personnel_number for r in rows]),
            )
            existing = {e.personnel_number: e for e in await cur.fetchall()}
        errors: list[RowError] = []
        new: list[RosterRow] = []
        changed: list[tuple[int, RosterRow]] = []
        unchanged = 0
        for row in rows:
            known = existing.get(row.personnel_number)
            if known is None:
                new.append(row)
            elif known.role != "worker":
                errors.append(
                    RowError(
                        row.line,
                        "personnel_number",
                        row.personnel_number,
                        f"this personnel number is {known.username}'s, a {known.role}:"
                        " a roster imports workers only",
                    )
                )
            elif (known.full_name, known.zone_id, known.phone) == (
                row.name,
                row.zone_id,
                row.phone,
            ):
                unchanged += 1
            else:
                changed.append((known.id, row))
        if dry_run:
            return ImportOutcome((), len(new), len(changed), unchanged, tuple(errors))

        if changed:
            await conn.execute(
                "UPDATE users AS u SET full_name = v.full_name, zone_id = v.zone_id,"
                " phone = v.phone, updated_at = now()"
                " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])"
                " AS v(id, full_name, zone_id, phone) WHERE u.id = v.id",
                (
                    [i for i, _ in changed],
                    [r.name for _, r in changed],
                    [r.zone_id for _, r in changed],
                    [r.phone for _, r in changed],
                ),
            )
        created: list[IssuedCode] = []
        if new:
            res = await conn.execute(
                "SELECT username FROM users WHERE starts_with(username, %s)",
                (enterprise_id.lower() + ".",),
            )
            taken = {name for (name,) in await res.fetchall()}
            names = []
            for row in new:
                names.append(worker_username(enterprise_id, row.personnel_number, taken=taken))
                taken.add(names[-1])
            res = await conn.execute(
                "INSERT INTO users (username, full_name, role, enterprise_id, phone,"
                " personnel_number, zone_id, password_hash)"
                " SELECT v.username, v.full_name, 'worker', %s, v.phone, v.personnel_number,"
                " v.zone_id, NULL"
                " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[])"
                " AS v(username, full_name, phone, personnel_number, zone_id)"
                " RETURNING id, username",
                (
                    enterprise_id,
                    names,
                    [r.name for r in new],
                    [r.phone for r in new],
                    [r.personnel_number for r in new],
                    [r.zone_id for r in new],
                ),
            )
            ids = {name: i for i, name in await res.fetchall()}
            codes = [new_code() for _ in new]
            res = await conn.execute(
                "INSERT INTO activation_codes (user_id, code_hash, expires_at, issued_by)"
                " SELECT v.user_id, v.code_hash, now() + %s, %s"
                " FROM unnest(%s::bigint[], %s::text[]) AS v(user_id, code_hash)"
                " RETURNING expires_at",
                (
                    valid_for,
                    issued_by,
                    [ids[name] for name in names],
                    [code_hash(code, key) for code in codes],
                ),
            )
            expires = await res.fetchone()
            assert expires is not None
            created = [
                IssuedCode(
                    name, row.name, row.personnel_number, format_code(code), expires[0], row.line
                )
                for name, row, code in zip(names, new, codes, strict=True)
            ]
        return ImportOutcome(tuple(created), len(created), len(changed), unchanged, tuple(errors))


async def issue_code(
    conn: psycopg.AsyncConnection[Any],
    *,
    enterprise_id: str,
    username: str,
    key: bytes,
    valid_for: timedelta,
    issued_by: str | None,
) -> IssuedCode | None:
    """A new code for the enterprise's worker ``username`` (the old one, if any, stops
    working); None when the enterprise has no such worker."""
    code = new_code()
    cur = await conn.execute(
        "WITH worker AS (SELECT id, username, full_name, personnel_number FROM users"
        "  WHERE enterprise_id = %s AND username = %s AND role = 'worker'),"
        " issued AS (INSERT INTO activation_codes (user_id, code_hash, expires_at, issued_by)"
        "  SELECT id, %s, now() + %s, %s FROM worker"
        "  ON CONFLICT (user_id) DO UPDATE SET code_hash = EXCLUDED.code_hash,"
        "  created_at = now(), expires_at = EXCLUDED.expires_at, issued_by = EXCLUDED.issued_by"
        "  RETURNING expires_at)"
        " SELECT worker.username, worker.full_name, worker.personnel_number, issued.expires_at"
        " FROM worker, issued",
        (enterprise_id, username, code_hash(code, key), valid_for, issued_by),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    name, full_name, number, expires_at = row
    return IssuedCode(name, full_name, number, format_code(code), expires_at)


async def activate(
    conn: psycopg.AsyncConnection[Any], *, hashed_code: str, password_hash: str
) -> tuple[Activation, UserRow | None]:
    """Burn the code whose hash is ``hashed_code`` and, if it was live, give its worker
    ``password_hash`` (ending their sessions, lifting a sign-in lock). The caller commits:
    a code tried is used up even when it had expired."""
    cur = await conn.execute(
        "DELETE FROM activation_codes WHERE code_hash = %s RETURNING user_id, expires_at > now()",
        (hashed_code,),
    )
    found = await cur.fetchone()
    if found is None:
        return Activation.UNKNOWN, None
    user_id, live = found
    if not live:
        return Activation.EXPIRED, None
    async with conn.cursor(row_factory=class_row(UserRow)) as cur:
        await cur.execute(
            "UPDATE users SET password_hash = %s, token_version = token_version + 1,"
            " updated_at = now() WHERE id = %s AND active AND role = 'worker'"
            " RETURNING id, username, full_name, role, regions, enterprise_id, tags, language,"
            " email, phone, password_hash, active, token_version, created_at, updated_at,"
            " personnel_number, zone_id",
            (password_hash, user_id),
        )
        user = await cur.fetchone()
    if user is None:
        return Activation.UNKNOWN, None
    await conn.execute("DELETE FROM sign_in_failures WHERE username = %s", (user.username,))
    return Activation.ACTIVATED, user


async def list_workers(
    conn: psycopg.AsyncConnection[Any], *, enterprise_id: str, limit: int, offset: int
) -> list[WorkerRow]:
    """The enterprise's workers by user name, whether each has activated their account."""
    async with conn.cursor(row_factory=class_row(WorkerRow)) as cur:
        await cur.execute(
            "SELECT u.username, u.full_name, u.personnel_number, u.zone_id, u.phone, u.active,"
            " u.password_hash IS NOT NULL AS activated, c.expires_at AS code_expires_at,"
            " u.created_at"
            " FROM users u LEFT JOIN activation_codes c ON c.user_id = u.id"
            " WHERE u.enterprise_id = %s AND u.role = 'worker'"
            " ORDER BY u.username LIMIT %s OFFSET %s",
            (enterprise_id, limit, offset),
        )
        return await cur.fetchall()
