"""Sign-in: the OAuth2 password flow, and a refresh token for a new pair of tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
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

# Password guessing: this many wrong passwords in a row lock the user name for LOCK_FOR.
MAX_FAILED_SIGN_INS = 10
LOCK_FOR = timedelta(minutes=15)
log = structlog.get_logger("qorgau.api.login")

_BAD_LOGIN = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "wrong user name or password",
    headers={"WWW-Authenticate": "Bearer"},
)


def _locked(until: datetime) -> HTTPException:
    wait_s = max(1, int((until - datetime.now(UTC)).total_seconds()))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"sign-in locked after {MAX_FAILED_SIGN_INS} wrong passwords in a row; try again in"
        f" {(wait_s + 59) // 60} min (or ask an admin: qorgau users passwd)",
        headers={"Retry-After": str(wait_s)},
    )


@router.post(
    "/access-token",
    summary="Sign in (OAuth2 password flow)",
    responses={status.HTTP_429_TOO_MANY_REQUESTS: {"description": "Locked for a while."}},
)
async def login_access_token(
    conn: ConnDep, signer: SignerDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenPublic:
    """A short-lived access token and a refresh token for a user name and password."""
    user = await people.find_user(conn, username=form.username)
    if user is not None:
        locked = await people.sign_in_lock(conn, user_id=user.id)
        if locked is not None:
            log.warning("sign-in refused", username=form.username, reason="locked")
            raise _locked(locked)
    # Argon2 takes tens of milliseconds of CPU: off the event loop.
    ok, new_hash = await asyncio.to_thread(
        verify_password, form.password, user.password_hash if user else None
    )
    if user is None or not ok:
        log.warning("sign-in refused", username=form.username, reason="bad credentials")
        if user is not None:
            locked = await people.record_failed_sign_in(
                conn, user_id=user.id, limit=MAX_FAILED_SIGN_INS, lock_for=LOCK_FOR
            )
            await conn.commit()  # the count must survive the refusal
            if locked is not None:
                log.warning("user locked after repeated wrong passwords", username=user.username)
        raise _BAD_LOGIN
    if not user.active:
        log.warning("sign-in refused", username=form.username, reason="disabled")
        raise _BAD_LOGIN
    await people.clear_failed_sign_ins(conn, user_id=user.id)
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
