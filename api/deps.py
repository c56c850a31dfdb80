"""Dependencies shared by the routes, as ``Annotated`` aliases.

A route asks for what it needs by type (``conn: ConnDep``); the objects
themselves live on ``app.state``, put there by `api.main.create_app` and its
lifespan. Authentication will join these as one more alias.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.catalogue import Catalogue
from core.settings import Settings

__all__ = ["CatalogueDep", "ConnDep", "Pool", "PoolDep", "SettingsDep"]

Pool = AsyncConnectionPool[AsyncConnection[Any]]


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_catalogue(request: Request) -> Catalogue:
    return cast(Catalogue, request.app.state.catalogue)


def get_pool(request: Request) -> Pool:
    return cast(Pool, request.app.state.pool)


PoolDep = Annotated[Pool, Depends(get_pool)]


async def get_conn(pool: PoolDep) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection for the duration of the request."""
    async with pool.connection() as conn:
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
CatalogueDep = Annotated[Catalogue, Depends(get_catalogue)]
ConnDep = Annotated[AsyncConnection[Any], Depends(get_conn)]
