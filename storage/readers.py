"""A read-only database role for Grafana's data source.

Grafana's editors can run any SQL through a data source, so the walls read the
database as a role that can only ``SELECT`` the tables they show — not users,
password hashes, device identities, push subscriptions or the delivery log —
inside read-only transactions with a statement timeout (`ensure_reader`).

On TimescaleDB a ``GRANT`` on a hypertable reaches its chunks and one on a
continuous aggregate (``readings_1m``) reaches its materialisation hypertable
(TimescaleDB 2.x propagates them), so the same statements serve both flavours.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg import sql

from core.errors import ConfigError

__all__ = ["MIN_READER_PASSWORD", "READER_TABLES", "ensure_reader"]

# What the Grafana walls (dashboards/) read: reference data, readings and their
# per-minute rollup, exposures, model scores, alerts and their history, components.
READER_TABLES = (
    "regions",
    "industries",
    "enterprises",
    "zones",
    "sensors",
    "readings",
    "readings_1m",
    "exposures",
    "anomalies",
    "alerts",
    "alert_history",
    "components",
)
MIN_READER_PASSWORD = 16
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def ensure_reader(
    conn: psycopg.Connection[Any],
    role: str,
    password: str,
    *,
    statement_timeout_s: int = 30,
) -> bool:
    """Create ``role`` (True) or bring it up to date (False): it logs in with ``password``,
    may ``SELECT`` `READER_TABLES` and nothing else, every transaction read-only, every
    statement stopped after ``statement_timeout_s``. Run again after each migration (a
    deployment's setup job does). Refuses a role that is a superuser, may create roles or
    databases, or owns anything (it would not be read-only)."""
    if not _ROLE.match(role):
        raise ConfigError(f"{role!r} is not a plain role name ([a-z_][a-z0-9_]*, up to 63)")
    if len(password) < MIN_READER_PASSWORD:
        raise ConfigError(f"the reader's password needs at least {MIN_READER_PASSWORD} characters")
    ident = sql.Identifier(role)
    # Hashed here (SCRAM-SHA-256 by default), so the password never reaches the server's log.
    hashed = conn.pgconn.encrypt_password(password.encode(), role.encode()).decode()
    with conn.transaction():
        row = conn.execute(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls,"
            " EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)"
            " FROM pg_roles r WHERE rolname = %s",
            (role,),
        ).fetchone()
        if row is not None and (row[0] or row[1]):
            raise ConfigError(
                f"role {role!r} exists with more than read access (a superuser, may create"
                " roles or databases, or owns tables): choose another name for the reader"
            )
        created = row is None
        verb = "CREATE" if created else "ALTER"
        conn.execute(
            sql.SQL(
                "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
            ).format(sql.SQL(verb), ident, sql.Literal(hashed))
        )
        conn.execute(sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(ident))
        conn.execute(
            sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                ident, sql.Literal(f"{int(statement_timeout_s)}s")
            )
        )
        database = conn.execute("SELECT current_database()").fetchone()
        assert database is not None
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database[0]), ident)
        )
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
        # Whatever else it was given before (by hand, by an older release) goes.
        for what in ("TABLES", "SEQUENCES"):
            conn.execute(
                sql.SQL("REVOKE ALL ON ALL {} IN SCHEMA public FROM {}").format(
                    sql.SQL(what), ident
                )
            )
        conn.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in READER_TABLES), ident
            )
        )
    return created
