"""Sign-in: the OAuth2 password flow, a refresh token for a new pair of tokens, and a
worker's first sign-in with the one-time activation code their safety officer gave them.

Wrong passwords are counted per user name as typed, whether or not anyone has it, and
a name is locked alike either way (`storage.people.record_failed_sign_in`): the answers
(401, then 429 with the same ``Retry-After``), and the work behind them (a lock check,
a user lookup, one Argon2 check, one count), are the same for a name that exists and
one that does not, so neither the lockout nor its timing tells which names exist.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated

import structlog
from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import UNREADABLE_BODY, ConnDep, SessionDep, SettingsDep, SignerDep, invalid
from api.schemas import ActivationRequest, RefreshRequest, TokenPublic
from api.security import MAX_PASSWORD_LENGTH, InvalidToken, hash_password, verify_password
from core.activation import code_hash, code_key, normalise_code
from storage import accounts, people

__all__ = ["router"]

router = APIRouter(prefix="/login", tags=["login"])

# Password guessing: this many wrong passwords in a row lock the user name for LOCK_FOR;
# a name's count is forgotten FORGET_AFTER its last wrong password (unless it is locked).
MAX_FAILED_SIGN_INS = 10
LOCK_FOR = timedelta(minutes=15)
FORGET_AFTER = timedelta(days=1)
MAX_USERNAME_LENGTH = 64  # as the users table allows
# Code guessing (60-bit codes, so already hopeless): wrong codes from one client address
# lock it alike. Higher than for a name: a plant's phones may share one address.
MAX_FAILED_ACTIVATIONS = 20
log = structlog.get_logger("qorgau.api.login")

_BAD_LOGIN = HTTPException(
    status.HTTP_401_UNAUTHORIZED,
    "wrong user name or password",
    headers={"WWW-Authenticate": "Bearer"},
)


class SignInForm(OAuth2PasswordRequestForm):
    """The OAuth2 password form, with bounds: no name is longer than a user name may be,
    and no password longer than `MAX_PASSWORD_LENGTH` is worth an Argon2 check."""

    def __init__(
        self,
        *,
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        username: Annotated[
            str, Form(min_length=1, max_length=MAX_USERNAME_LENGTH, description="User name.")
        ],
        password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH, description="Password.")],
        scope: Annotated[str, Form(max_length=1000)] = "",
        client_id: Annotated[str | None, Form(max_length=200)] = None,
        client_secret: Annotated[str | None, Form(max_length=200)] = None,
    ) -> None:
        super().__init__(
            grant_type=grant_type,
            username=username,
            password=password,
            scope=scope,
            client_id=client_id,
            client_secret=client_secret,
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
    responses={
        **UNREADABLE_BODY,
        status.HTTP_401_UNAUTHORIZED: {"description": "Wrong user name or password."},
        status.HTTP_429_TOO_MANY_REQUESTS: {
            "description": "Too many wrong passwords for this user name: locked for a while "
            "(Retry-After, in seconds)."
        },
    },
)
async def login_access_token(
    conn: ConnDep, signer: SignerDep, form: Annotated[SignInForm, Depends()]
) -> TokenPublic:
    """A short-lived access token and a refresh token for a user name and password."""
    locked = await people.sign_in_lock(conn, username=form.username)
    if locked is not None:
        log.warning("sign-in refused", username=form.username, reason="locked")
        raise _locked(locked)
    user = await people.find_user(conn, username=form.username)
    # Argon2 takes tens of milliseconds of CPU: off the event loop.
    ok, new_hash = await asyncio.to_thread(
        verify_password, form.password, user.password_hash if user else None
    )
    if user is None or not ok:
        log.warning("sign-in refused", username=form.username, reason="bad credentials")
        locked = await people.record_failed_sign_in(
            conn,
            username=form.username,
            limit=MAX_FAILED_SIGN_INS,
            lock_for=LOCK_FOR,
            forget_after=FORGET_AFTER,
        )
        await conn.commit()  # the count must survive the refusal
        if locked is not None:
            log.warning("user name locked after repeated wrong passwords", username=form.username)
        raise _BAD_LOGIN
    if not user.active:
        log.warning("sign-in refused", username=form.username, reason="disabled")
        raise _BAD_LOGIN
    await people.clear_failed_sign_ins(conn, username=user.username)
    if new_hash is not None:
        await people.upgrade_password_hash(conn, user_id=user.id, password_hash=new_hash)
    log.info("signed in", username=user.username, role=user.role)
    return TokenPublic.from_pair(signer.issue(user_id=user.id, token_version=user.token_version))


@router.post(
    "/refresh",
    summary="A new pair of tokens for a refresh token",
    responses={
        **UNREADABLE_BODY,
        status.HTTP_401_UNAUTHORIZED: {"description": "The refresh token is not valid (any more)."},
    },
)
async def refresh_token(conn: ConnDep, signer: SignerDep, body: RefreshRequest) -> TokenPublic:
    try:
        claims = signer.decode(body.refresh_token, expect="refresh")
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from exc
    user = await people.get_user(conn, user_id=claims.user_id, session=claims.session)
    if user is None or not user.active or user.token_version != claims.token_version:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "this session has ended; sign in again")
    pair = signer.issue(user_id=user.id, token_version=user.token_version, session=claims.session)
    return TokenPublic.from_pair(pair)


@router.post(
    "/sign-out",
    summary="End this session",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={status.HTTP_401_UNAUTHORIZED: {"description": "Not signed in (any more)."}},
)
async def sign_out(conn: ConnDep, signer: SignerDep, session: SessionDep) -> Response:
    """Ends the session the access token belongs to: its access and refresh tokens are
    refused from now on. The person's other sessions (another phone, the wall) go on;
    a browser that was told about alerts should also delete its push subscription."""
    user, claims = session
    if claims.session is not None:
        expires = datetime.now(UTC) + timedelta(seconds=signer.refresh_seconds)
        await people.end_session(conn, user_id=user.id, session=claims.session, expires_at=expires)
        await conn.commit()
    log.info("signed out", username=user.username)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _locked_activation(until: datetime) -> HTTPException:
    wait_s = max(1, int((until - datetime.now(UTC)).total_seconds()))
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        f"too many wrong activation codes from here; try again in {(wait_s + 59) // 60} min",
        headers={"Retry-After": str(wait_s)},
    )


@router.post(
    "/activate",
    summary="Activate a worker's account with a one-time code",
    responses={
        **UNREADABLE_BODY,
        status.HTTP_401_UNAUTHORIZED: {
            "description": "No live code like this: wrong, used already, or expired."
        },
        status.HTTP_429_TOO_MANY_REQUESTS: {
            "description": "Too many wrong codes from this address: locked for a while "
            "(Retry-After, in seconds)."
        },
    },
)
async def activate(
    request: Request,
    conn: ConnDep,
    signer: SignerDep,
    settings: SettingsDep,
    body: ActivationRequest,
) -> TokenPublic:
    """Sets the password of the worker the code was issued to, uses the code up, and signs
    them in (the same tokens as `/login/access-token`). A code works once, for 14 days."""
    client = request.client.host if request.client else "unknown"
    locked = await people.activation_lock(conn, client=client)
    if locked is not None:
        log.warning("activation refused", client=client, reason="locked")
        raise _locked_activation(locked)
    code = normalise_code(body.code)
    if code is None:
        raise invalid(
            ("body", "code"),
            "an activation code is 12 letters and digits, e.g. 7K2M-9QXD-H4TA",
            body.code,
        )
    try:  # checked (and hashed: Argon2, off the event loop) before the code is used up
        password_hash = await asyncio.to_thread(hash_password, body.password)
    except ValueError as exc:
        raise invalid(("body", "password"), str(exc)) from exc
    outcome, user = await accounts.activate(
        conn,
        hashed_code=code_hash(code, code_key(settings.jwt_secret.get_secret_value())),
        password_hash=password_hash,
    )
    if user is None:
        log.warning("activation refused", client=client, reason=outcome.value)
        await people.record_failed_activation(
            conn,
            client=client,
            limit=MAX_FAILED_ACTIVATIONS,
            lock_for=LOCK_FOR,
            forget_after=FORGET_AFTER,
        )
        await conn.commit()  # the count, and an expired code used up, survive the refusal
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this code has expired: ask your safety officer for a new one"
            if outcome is accounts.Activation.EXPIRED
            else "no such activation code (wrong, or used already)",
        )
    await people.clear_failed_activations(conn, client=client)
    await conn.commit()
    log.info("account activated", username=user.username, enterprise=user.enterprise_id)
    return TokenPublic.from_pair(signer.issue(user_id=user.id, token_version=user.token_version))
