"""Dependencies shared by the routes, as ``Annotated`` aliases.

A route asks for what it needs by type (``conn: ConnDep``); the objects
themselves live on ``app.state``, put there by `api.main.create_app` and its
lifespan. ``CurrentUser`` is the signed-in person (their access token checked
and their row re-read, so a disabled user or a changed password takes effect at
once); ``ScopeDep`` is the part of the country they may see, which every query
of enterprise data filters by.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from api.security import InvalidToken, TokenSigner
from core.access import ALERT_ACTORS, Role, Scope
from core.catalogue import Catalogue
from core.settings import Settings
from storage import people
from storage.people import UserRow

__all__ = [
    "TOKEN_URL",
    "AdminUser",
    "AlertActor",
    "CatalogueDep",
    "ConnDep",
    "CurrentUser",
    "Pool",
    "PoolDep",
    "ScopeDep",
    "SettingsDep",
    "SignerDep",
    "StreamUser",
]

TOKEN_URL = "/api/v1/login/access-token"
_oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL)

Pool = AsyncConnectionPool[AsyncConnection[Any]]


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_catalogue(request: Request) -> Catalogue:
    return cast(Catalogue, request.app.state.catalogue)


def get_signer(request: Request) -> TokenSigner:
    return cast(TokenSigner, request.app.state.signer)


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
SignerDep = Annotated[TokenSigner, Depends(get_signer)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


async def get_current_user(
    conn: ConnDep, signer: SignerDep, token: Annotated[str, Depends(_oauth2)]
) -> UserRow:
    try:
        claims = signer.decode(token, expect="access")
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from exc
    user = await people.get_user(conn, user_id=claims.user_id)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise _unauthorized("this session has ended; sign in again")
    return user


CurrentUser = Annotated[UserRow, Depends(get_current_user)]

_oauth2_optional = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)


async def get_stream_user(
    pool: PoolDep,
    signer: SignerDep,
    header_token: Annotated[str | None, Depends(_oauth2_optional)],
    access_token: str | None = None,
) -> UserRow:
    """`get_current_user` for streams, which must not hold a pooled connection for as long
    as they stay open (hours): the user is read with a connection returned at once. And
    browsers' EventSource cannot send an Authorization header, so the access token may
    come as the ``access_token`` query parameter."""
    token = header_token or access_token
    if not token:
        raise _unauthorized("Not authenticated")
    async with pool.connection() as conn:
        return await get_current_user(conn, signer, token)


StreamUser = Annotated[UserRow, Depends(get_stream_user)]


def get_scope(user: CurrentUser) -> Scope:
    return user.scope


ScopeDep = Annotated[Scope, Depends(get_scope)]


def require_alert_actor(user: CurrentUser) -> UserRow:
    if Role(user.role) not in ALERT_ACTORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"a {user.role} cannot act on alerts")
    return user


def require_admin(user: CurrentUser) -> UserRow:
    if user.role != Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only an admin may do this")
    return user


AlertActor = Annotated[UserRow, Depends(require_alert_actor)]
AdminUser = Annotated[UserRow, Depends(require_admin)]
