"""Dependencies shared by the routes, as ``Annotated`` aliases.

A route asks for what it needs by type (``conn: ConnDep``); the objects
themselves live on ``app.state``, put there by `api.main.create_app` and its
lifespan. ``CurrentUser`` is the signed-in person (their access token checked
and their row re-read, so a disabled user or a changed password takes effect at
once); ``ScopeDep`` is the part of the country they may see, which every query
of enterprise data filters by.

What a route may be sent is bounded here too, once for every route: ids (`MAX_ID`),
page sizes and offsets (`page_limit`, `page_offset`), instants (`Instant`) within what
PostgreSQL and Python can hold, and no text PostgreSQL cannot hold (`refuse_unstorable_text`, which
`api.main` applies to every route), so that a strange request is a 422 that says
why, never a 500 from the database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, cast

from fastapi import Depends, HTTPException, Query, Request, params, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordBearer
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from pydantic import AfterValidator, AwareDatetime

from api.security import InvalidToken, TokenClaims, TokenSigner
from core.access import ALERT_ACTORS, Role, Scope
from core.catalogue import Catalogue
from core.limits import Limits
from core.settings import Settings
from storage import people
from storage.people import UserRow

__all__ = [
    "FORBIDDEN",
    "MAX_ID",
    "MAX_OFFSET",
    "TOKEN_URL",
    "UNAUTHORIZED",
    "UNREADABLE_BODY",
    "AccountKeeper",
    "AdminUser",
    "AlertActor",
    "CatalogueDep",
    "ConnDep",
    "CurrentUser",
    "Instant",
    "LimitsDep",
    "Pool",
    "PoolDep",
    "ScopeDep",
    "SessionDep",
    "SettingsDep",
    "SignerDep",
    "StreamUser",
    "invalid",
    "page_limit",
    "page_offset",
    "refuse_unstorable_text",
]

TOKEN_URL = "/api/v1/login/access-token"
_oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL)

Pool = AsyncConnectionPool[AsyncConnection[Any]]

# --- what a request may carry -------------------------------------------------------------

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigint
MAX_OFFSET = 1_000_000  # deeper than this, narrow the filter instead of paging on
# Instants Python and PostgreSQL can both hold, with a day to spare for arithmetic
# (a default range reaches back from its end; a detail view reaches around an alert).
MIN_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 12, 30, tzinfo=UTC)


def _within_calendar(value: datetime) -> datetime:
    # Compared, not converted: converting 0001-01-01T00:00+05:00 to UTC overflows.
    if not MIN_INSTANT <= value <= MAX_INSTANT:
        raise ValueError(
            f"must be between {MIN_INSTANT.date().isoformat()} and"
            f" {MAX_INSTANT.date().isoformat()} (UTC)"
        )
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_within_calendar)]
"""An ISO 8601 date and time with its offset, within years 1 to 9999."""


def page_limit(noun: str) -> Any:
    """The ``limit`` query parameter of a list of ``noun``: 1 to 500."""
    return Query(ge=1, le=500, description=f"Page size, in {noun}.")


def page_offset(noun: str) -> Any:
    """The ``offset`` query parameter of a list of ``noun``: 0 to `MAX_OFFSET`."""
    return Query(
        ge=0,
        le=MAX_OFFSET,
        description=f"{noun.capitalize()} to skip (count); at most {MAX_OFFSET:,}: to go"
        " further, narrow the filter.",
    )


_NUL = "\x00"
_NUL_MESSAGE = "Text must not contain NUL characters (\\x00, %00, \\u0000)"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_MESSAGE = "Text must be valid Unicode: no lone surrogates (\\ud800-\\udfff)"


def _text_errors(loc: tuple[str | int, ...], value: Any) -> Iterator[dict[str, Any]]:
    """Validation errors, FastAPI-shaped, for every string in ``value`` that PostgreSQL text
    cannot hold: one with a NUL, or a lone surrogate (JSON's ``\\ud800`` is no character).

    Walked with a stack of its own: a body nested as deep as the JSON parser allows must
    not exhaust Python's.
    """
    todo: list[tuple[tuple[str | int, ...], Any]] = [(loc, value)]
    while todo:
        where, item = todo.pop()
        if isinstance(item, str):
            if _NUL in item:
                yield {"type": "string_nul", "loc": where, "msg": _NUL_MESSAGE, "input": item}
            if _SURROGATE.search(item):
                # Echoed with the surrogates replaced: UTF-8 cannot write them either.
                shown = item.encode("utf-8", "replace").decode("utf-8")
                yield {
                    "type": "string_surrogate",
                    "loc": where,
                    "msg": _SURROGATE_MESSAGE,
                    "input": shown,
                }
        elif isinstance(item, dict):
            for key, child in reversed(item.items()):
                todo += [((*where, key), child), ((*where, key), key)]
        elif isinstance(item, list):
            todo += [((*where, i), child) for i, child in reversed(list(enumerate(item)))]


def invalid(loc: tuple[str | int, ...], msg: str, value: Any = None) -> RequestValidationError:
    """A refusal of what a route was sent, in FastAPI's validation-error shape (the 422 its
    OpenAPI documents), for checks no type can make (a range's start after its end)."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg, "input": value}])


def _is_json(content_type: str) -> bool:
    """Whether FastAPI reads a body of ``content_type`` as JSON (``application/*json``)."""
    media = content_type.partition(";")[0].strip().lower()
    return media.startswith("application/") and (media.endswith("/json") or media.endswith("+json"))


async def refuse_unstorable_text(request: Request) -> None:
    """422 for text PostgreSQL cannot hold anywhere in a request: a NUL character, or a lone
    surrogate, in the path, query, headers, form or JSON body.

    No name, id or comment has one: it is refused at the door, before any route reads the
    database (where it would be an error, a 500), in FastAPI's validation-error shape.
    """
    errors = [
        *(e for k, v in request.path_params.items() for e in _text_errors(("path", k), v)),
        *(
            e
            for k, v in request.query_params.multi_items()
            for e in (*_text_errors(("query", k), k), *_text_errors(("query", k), v))
        ),
        *(e for k, v in request.headers.items() for e in _text_errors(("header", k), v)),
    ]
    # The body only of routes that take one, read as FastAPI read it (and kept) before.
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is not None:
        content_type = request.headers.get("content-type", "")
        if isinstance(body_field.field_info, params.Form):
            form = await request.form()
            for k, v in form.multi_items():
                errors += _text_errors(("body", k), k)
                if isinstance(v, str):
                    errors += _text_errors(("body", k), v)
        elif _is_json(content_type):
            # An empty body FastAPI reads as none (its own 422 says what is missing).
            if await request.body():
                errors += _text_errors(("body",), await request.json())  # parsed by FastAPI
        elif b"\x00" in await request.body():
            errors.append({"type": "string_nul", "loc": ("body",), "msg": _NUL_MESSAGE})
    if errors:
        raise RequestValidationError(errors)


# Answers every route behind sign-in may give, for its OpenAPI `responses`.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {
        "description": "No valid access token: sign in at /api/v1/login/access-token."
    }
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    status.HTTP_403_FORBIDDEN: {"description": "Your role may not do this."}
}
# ... and every route that reads a body (FastAPI's answer before any validation).
UNREADABLE_BODY: dict[int | str, dict[str, Any]] = {
    status.HTTP_400_BAD_REQUEST: {"description": "The body cannot be read (not UTF-8 JSON)."}
}


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_catalogue(request: Request) -> Catalogue:
    return cast(Catalogue, request.app.state.catalogue)


def get_limits(request: Request) -> Limits:
    return cast(Limits, request.app.state.limits)


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
LimitsDep = Annotated[Limits, Depends(get_limits)]
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
    user = await people.get_user(conn, user_id=claims.user_id, session=claims.session)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise _unauthorized("this session has ended; sign in again")
    return user


CurrentUser = Annotated[UserRow, Depends(get_current_user)]


async def get_session(
    signer: SignerDep, user: CurrentUser, token: Annotated[str, Depends(_oauth2)]
) -> tuple[UserRow, TokenClaims]:
    """The signed-in user and the claims of the token they came with."""
    return user, signer.decode(token, expect="access")


SessionDep = Annotated[tuple[UserRow, TokenClaims], Depends(get_session)]

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


def require_account_keeper(user: CurrentUser) -> UserRow:
    """Workers' accounts (rosters, activation codes) are kept by their enterprise's safety
    officers and by admins; which enterprise, the route checks against the scope."""
    if user.role not in (Role.ADMIN, Role.SAFETY_OFFICER):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"a {user.role} cannot manage workers' accounts"
        )
    return user


AccountKeeper = Annotated[UserRow, Depends(require_account_keeper)]
