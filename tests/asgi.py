"""The API in-process for tests: a fresh app whose lifespan (pool, live feed) really runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from api import create_app
from core.settings import Settings

__all__ = ["serve"]


@asynccontextmanager
async def serve(
    settings: Settings, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to ``create_app(settings)`` over ASGI (no socket: streams are
    buffered, so tests of the live feed use a real server instead)."""
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://qorgau.test", headers=headers
        ) as client,
    ):
        yield client
