"""Sign-in: the OAuth2 password flow, and a refresh token for a new pair of tokens."""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import ConnDep, SignerDep
from api.schemas import RefreshRequest, TokenPublic
from api.security import InvalidToken, verify_password
from storage import people

__all__ = ["router"]

router = APIRouter(prefix="/login", tags=["login"])
log = structlog.get_logger("qorgau.api.login")

_BAD_LOGIN = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "wrong user name or password",
    headers={"WWW-Authenticate": "Bearer"},
)


@router.post("/access-token", summary="Sign in (OAuth2 password flow)")
async def login_access_token(
    conn: ConnDep, signer: SignerDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenPublic:
    """A short-lived access token and a refresh token for a user name and password."""
    user = await people.find_user(conn, username=form.username)
    # Argon2 takes tens of milliseconds of CPU: off the event loop.
    ok, new_hash = await asyncio.to_thread(
        verify_password, form.password, user.password_hash if user else None
    )
    if user is None or not ok:
        log.warning("sign-in refused", username=form.username, reason="bad credentials")
        raise _BAD_LOGIN
    if not user.active:
        log.warning("sign-in refused", username=form.username, reason="disabled")
        raise _BAD_LOGIN
    if new_hash is not None:
        await people.upgrade_password_hash(conn, user_id=user.id, password_hash=new_hash)
    log.info("signed in", username=user.username, role=user.role)
    return TokenPublic.from_pair(signer.issue(user_id=user.id, token_version=user.token_version))


@router.post("/refresh", summary="A new pair of tokens for a refresh token")
async def refresh_token(conn: ConnDep, signer: SignerDep, body: RefreshRequest) -> TokenPublic:
    try:
        claims = signer.decode(body.refresh_token, expect="refresh")
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc
    user = await people.get_user(conn, user_id=claims.user_id)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this session has ended; sign in again")
    return TokenPublic.from_pair(signer.issue(user_id=user.id, token_version=user.token_version))
