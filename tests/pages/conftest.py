"""A database of its own for the page tests: the wall shows everything open in scope, so
alerts other tests leave behind must not be on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.reference import load_reference
from storage.migrate import migrate
from storage.reference import seed_reference
from tests.conftest import _create_database, _drop_database


@pytest.fixture(scope="module")
def pages_database_url() -> Iterator[str]:
    name, url = _create_database()
    try:
        migrate(url, timescale="auto")
        seed_reference(url, load_reference())
        yield url
    finally:
        _drop_database(name)
