"""MQTT identities (sensors, gateways, workers' apps, services) and the device registry the
bridge checks readings against.

Secrets arrive here already hashed (`core.identities.mosquitto_hash`); this module
never sees one in clear. The synchronous functions serve ``qorgau devices`` and the
local launcher; the asynchronous ones the bridge.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row

from core.identities import IdentityKind, MqttIdentity, acl_file, password_file

__all__ = [
    "IdentityRow",
    "Registry",
    "active_identities",
    "add_identity",
    "auth_files",
    "get_identity",
    "list_identities",
    "load_registry",
    "mark_synced",
    "revoke_identity",
    "set_secret_hash",
    "synced_at",
]


@dataclass(frozen=True, slots=True)
class IdentityRow:
    username: str
    kind: str
    enterprise_id: str | None
    sensor_ids: list[str]
    all_sensors: bool
    service: str | None
    password_hash: str
    note: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None

    def identity(self) -> MqttIdentity:
        return MqttIdentity(
            username=self.username,
            kind=IdentityKind(self.kind),
            enterprise_id=self.enterprise_id,
            sensors=tuple(self.sensor_ids),
            all_sensors=self.all_sensors,
            service=self.service,
            password_hash=self.password_hash,
        )


_COLUMNS = """
SELECT username, kind, enterprise_id, sensor_ids, all_sensors, service, password_hash, note,
       created_at, rotated_at, revoked_at
FROM mqtt_identities
"""


def add_identity(
    conn: psycopg.Connection[Any],
    *,
    username: str,
    kind: IdentityKind,
    password_hash: str,
    enterprise_id: str | None = None,
    sensor_ids: list[str] | None = None,
    all_sensors: bool = False,
    service: str | None = None,
    note: str = "",
) -> IdentityRow:
    """Create an identity; `psycopg.errors.UniqueViolation` when the name is taken."""
    with conn.cursor(row_factory=class_row(IdentityRow)) as cur:
        cur.execute(
            "INSERT INTO mqtt_identities (username, kind, enterprise_id, sensor_ids, all_sensors,"
            " service, password_hash, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING username, kind, enterprise_id, sensor_ids, all_sensors, service,"
            " password_hash, note, created_at, rotated_at, revoked_at",
            (
                username,
                kind.value,
                enterprise_id,
                sensor_ids or [],
                all_sensors,
                service,
                password_hash,
                note,
            ),
        )
        row = cur.fetchone()
    assert row is not None
    return row


def get_identity(conn: psycopg.Connection[Any], *, username: str) -> IdentityRow | None:
    with conn.cursor(row_factory=class_row(IdentityRow)) as cur:
        cur.execute(_COLUMNS + " WHERE username = %s", (username,))
        return cur.fetchone()


def list_identities(
    conn: psycopg.Connection[Any],
    *,
    enterprise_id: str | None = None,
    kind: IdentityKind | None = None,
    include_revoked: bool = False,
) -> list[IdentityRow]:
    where, params = ["TRUE"], []
    if enterprise_id is not None:
        where.append("enterprise_id = %s")
        params.append(enterprise_id)
    if kind is not None:
        where.append("kind = %s")
        params.append(kind.value)
    if not include_revoked:
        where.append("revoked_at IS NULL")
    with conn.cursor(row_factory=class_row(IdentityRow)) as cur:
        cur.execute(_COLUMNS + " WHERE " + " AND ".join(where) + " ORDER BY username", params)
        return cur.fetchall()


def active_identities(conn: psycopg.Connection[Any]) -> list[MqttIdentity]:
    return [row.identity() for row in list_identities(conn)]


def set_secret_hash(
    conn: psycopg.Connection[Any], *, username: str, password_hash: str, reinstate: bool = False
) -> bool:
    """A new secret (rotation); with ``reinstate`` a revoked identity comes back too.
    False when there is no such identity (or it is revoked and not reinstated)."""
    cur = conn.execute(
        "UPDATE mqtt_identities SET password_hash = %s, rotated_at = now(),"
        " revoked_at = CASE WHEN %s THEN NULL ELSE revoked_at END"
        " WHERE username = %s AND (revoked_at IS NULL OR %s)",
        (password_hash, reinstate, username, reinstate),
    )
    return cur.rowcount == 1


def revoke_identity(conn: psycopg.Connection[Any], *, username: str) -> bool:
    cur = conn.execute(
        "UPDATE mqtt_identities SET revoked_at = now() WHERE username = %s AND revoked_at IS NULL",
        (username,),
    )
    return cur.rowcount == 1


def auth_files(identities: list[MqttIdentity]) -> tuple[str, str, str]:
    """``(password file, ACL file, digest)`` for the broker."""
    passwd, acl = password_file(identities), acl_file(identities)
    digest = hashlib.sha256((passwd + "\0" + acl).encode()).hexdigest()
    return passwd, acl, digest


def mark_synced(conn: psycopg.Connection[Any], *, identities: int, digest: str) -> None:
    conn.execute(
        "INSERT INTO mqtt_auth_sync (id, synced_at, identities, digest)"
        " VALUES (1, clock_timestamp(), %s, %s) ON CONFLICT (id) DO UPDATE"
        " SET synced_at = EXCLUDED.synced_at, identities = EXCLUDED.identities,"
        " digest = EXCLUDED.digest",
        (identities, digest),
    )


def synced_at(conn: psycopg.Connection[Any]) -> datetime | None:
    row = conn.execute("SELECT synced_at FROM mqtt_auth_sync WHERE id = 1").fetchone()
    return row[0] if row else None


@dataclass(frozen=True, slots=True)
class Registry:
    """What the bridge checks each message against: which enterprise a sensor belongs to
    and what it measures, and which enterprise a worker's app belongs to."""

    sensors: dict[str, tuple[str, str]]  # sensor id -> (enterprise id, hazard)
    workers: dict[str, str]  # worker (app user name) -> enterprise id


async def load_registry(conn: psycopg.AsyncConnection[Any]) -> Registry:
    cur = await conn.execute("SELECT id, enterprise_id, hazard FROM sensors")
    sensors = {sid: (eid, hazard) for sid, eid, hazard in await cur.fetchall()}
    cur = await conn.execute(
        "SELECT username, enterprise_id FROM users WHERE role = 'worker' AND active"
        " AND enterprise_id IS NOT NULL"
        " UNION SELECT username, enterprise_id FROM mqtt_identities"
        " WHERE kind = 'app' AND revoked_at IS NULL"
    )
    workers = {name: eid for name, eid in await cur.fetchall()}
    return Registry(sensors, workers)
