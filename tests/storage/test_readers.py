"""Grafana's read-only role, signed in as it over a real connection: it reads what the
walls show and nothing else, cannot write even what it reads, and cannot be turned into
something stronger by choosing a name that already has more."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from core.errors import ConfigError
from storage.readers import READER_TABLES, ensure_reader

PASSWORD = "a-long-reader-password-0123"


@pytest.fixture
def reader(database_url: str) -> Iterator[tuple[str, str]]:
    """A fresh reader role; (role, its DSN). Dropped with its grants afterwards."""
    role = f"t_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert ensure_reader(conn, role, PASSWORD) is True
    try:
        yield role, make_conninfo(database_url, user=role, password=PASSWORD)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_it_reads_every_table_the_walls_show(reader: tuple[str, str]) -> None:
    _role, dsn = reader
    with psycopg.connect(dsn) as conn:
        for table in READER_TABLES:
            conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(table)))
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW statement_timeout").fetchone() == ("30s",)


@pytest.mark.parametrize(
    "table", ["users", "mqtt_identities", "push_subscriptions", "deliveries", "user_channels"]
)
def test_it_cannot_read_people_secrets_or_addresses(reader: tuple[str, str], table: str) -> None:
    _role, dsn = reader
    with (
        psycopg.connect(dsn) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(table)))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE alerts SET status = 'resolved'",
        "DELETE FROM readings",
        "INSERT INTO regions (id) VALUES ('KZ-00')",
        "CREATE TABLE grafana_was_here (x int)",
        "SET default_transaction_read_only = off; UPDATE alerts SET status = 'resolved'",
    ],
)
def test_it_cannot_write_even_what_it_reads(reader: tuple[str, str], statement: str) -> None:
    _role, dsn = reader
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(psycopg.Error):
        conn.execute(statement.encode())


def test_running_again_takes_back_what_was_granted_by_hand(
    database_url: str, reader: tuple[str, str]
) -> None:
    role, dsn = reader
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("GRANT SELECT ON users TO {}").format(sql.Identifier(role)))
        assert ensure_reader(conn, role, PASSWORD + "-new") is False
    new_dsn = make_conninfo(dsn, password=PASSWORD + "-new")
    with psycopg.connect(new_dsn) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT 1 FROM users")


@pytest.mark.parametrize(
    ("role", "password", "why"),
    [
        ("postgres", PASSWORD, "more than read access"),  # a superuser keeps its powers
        ('x"; DROP TABLE alerts; --', PASSWORD, "not a plain role name"),
        ("Grafana", PASSWORD, "not a plain role name"),
        ("grafana_short", "short", "at least 16"),
    ],
)
def test_it_refuses_names_and_passwords_that_would_not_be_read_only(
    database_url: str, role: str, password: str, why: str
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        superuser = conn.execute("SELECT rolname FROM pg_roles WHERE rolsuper").fetchone()
        assert superuser is not None
        name = superuser[0] if role == "postgres" else role
        with pytest.raises(ConfigError, match=why):
            ensure_reader(conn, name, password)
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() is not None


def _owner_of_tables(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'alerts'").fetchone()
    assert row is not None
    return str(row[0])


def test_the_owner_of_the_tables_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        owner = _owner_of_tables(conn)
        with pytest.raises(ConfigError, match="more than read access"):
            ensure_reader(conn, owner, PASSWORD)
