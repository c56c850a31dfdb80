"""Ordered SQL migrations, applied once each, safe to run concurrently and repeatedly.

Files in ``storage/migrations`` are named ``NNNN_name.sql`` (applies everywhere)
or ``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` (one of the two is
applied, by whether TimescaleDB is in use). A file whose first line is
``-- qorgau: no-transaction`` runs statement by statement outside a transaction
(TimescaleDB refuses some DDL inside one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import psycopg

from core.errors import ConfigError

__all__ = ["Migration", "MigrationResult", "available_migrations", "migrate"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(plain|timescale))?\.sql$")
_LOCK_KEY = 0x51_6F_72_67  # "Qorg": serialises concurrent migrators
_NO_TX = "-- qorgau: no-transaction"


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    flavour: str | None  # None = both
    sql: str

    @property
    def transactional(self) -> bool:
        return not self.sql.lstrip().startswith(_NO_TX)


@dataclass(slots=True)
class MigrationResult:
    flavour: str
    applied: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def available_migrations() -> list[Migration]:
    out = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            out.append(Migration(m[1], m[2], m[3], entry.read_text("utf-8")))
    return sorted(out, key=lambda x: (x.version, x.flavour or ""))


def _split_statements(sql: str) -> list[str]:
    # Only for no-transaction files, which hold simple DDL with no ';' inside literals.
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _timescale_available(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def migrate(dsn: str, *, timescale: Literal["auto", "on", "off"] = "auto") -> MigrationResult:
    """Bring the database at ``dsn`` to the latest schema; return what was done."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, name text NOT NULL, flavour text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            recorded = conn.execute(
                "SELECT flavour FROM schema_migrations WHERE flavour <> 'any' LIMIT 1"
            ).fetchone()
            if recorded is not None:
                flavour = recorded[0]  # a database keeps the flavour it was created with
            elif timescale == "off":
                flavour = "plain"
            else:
                has_ts = _timescale_available(conn)
                if timescale == "on" and not has_ts:
                    raise ConfigError(
                        "QORGAU_TIMESCALE=on but the timescaledb extension is not available"
                    )
                flavour = "timescale" if has_ts else "plain"
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            result = MigrationResult(flavour=flavour)
            for mig in available_migrations():
                if mig.flavour not in (None, flavour):
                    continue
                label = f"{mig.version}_{mig.name}"
                if mig.version in done:
                    result.skipped.append(label)
                    continue
                record = (
                    "INSERT INTO schema_migrations (version, name, flavour) VALUES (%s, %s, %s)"
                )
                params = (mig.version, mig.name, mig.flavour or "any")
                if mig.transactional:
                    with conn.transaction():
                        conn.execute(mig.sql.encode())
                        conn.execute(record, params)
                else:
                    for statement in _split_statements(mig.sql):
                        conn.execute(statement.encode())
                    conn.execute(record, params)
                result.applied.append(label)
            return result
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
