"""A database of its own for the page tests: the wall shows everything open in scope, so
alerts other tests leave behind must not be on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import seeded_database


@pytest.fixture(scope="module")
def pages_database_url() -> Iterator[str]:
    with seeded_database() as url:
        yield url
