"""Passwords and tokens.

Passwords are hashed with Argon2id (``pwdlib``'s recommended parameters); a
hash made with older parameters is upgraded at the next successful sign-in.
Tokens are JWTs signed with HS256 by ``QORGAU_JWT_SECRET``: a short-lived
*access* token for every request and a longer *refresh* token that buys a new
pair. Both carry the user's ``token_version``, so changing a password or
disabling a user ends every session at once, and a session id (``sid``): a
sign-in starts a session, a refresh continues it, and signing out ends that
session alone (the other devices of the same person stay signed in).

>>> s = TokenSigner("x" * 32, access_minutes=15, refresh_hours=12)
>>> pair = s.issue(user_id=7, token_version=0)
>>> s.decode(pair.access_token, expect="access").user_id
7
>>> again = s.issue(user_id=7, token_version=0, session=s.decode(pair.refresh_token, expect="refresh").session)
>>> s.decode(again.access_token, expect="access").session == s.decode(pair.access_token, expect="access").session
True
>>> s.decode(pair.access_token, expect="refresh")
Traceback (most recent call last):
...
api.security.InvalidToken: not a refresh token
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt
from pwdlib import PasswordHash

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "InvalidToken",
    "TokenClaims",
    "TokenPair",
    "TokenSigner",
    "hash_password",
    "verify_password",
]

_HASHER = PasswordHash.recommended()
# Verified against when the user does not exist, so a wrong name costs the same time
# as a wrong password and names cannot be probed by timing.
_dummy_hash: str | None = None
_ALGORITHM = "HS256"
_ISSUER = "qorgau"
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # a passphrase fits; a megabyte to hash on every try does not

TokenKind = Literal["access", "refresh"]


class InvalidToken(Exception):
    """A token that is expired, forged, malformed or of the wrong kind."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password may have at most {MAX_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """``(ok, new_hash)``: ``new_hash`` is set when the stored hash should be upgraded.

    With ``password_hash`` None (no such user) it still spends the time of a check.
    """
    global _dummy_hash
    if _dummy_hash is None:  # made on the first check of any name, so no first one is slower
        _dummy_hash = _HASHER.hash(secrets.token_hex(16))
    if password_hash is None:
        _HASHER.verify(password, _dummy_hash)
        return False, None
    try:
        return _HASHER.verify_and_update(password, password_hash)
    except Exception:  # an unreadable stored hash is a failed sign-in, not a crash
        return False, None


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int  # seconds the access token lives


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    token_version: int
    kind: TokenKind
    expires_at: float
    session: str | None = None  # None: a token made before sessions had ids


class TokenSigner:
    def __init__(self, secret: str, *, access_minutes: float, refresh_hours: float) -> None:
        self._secret = secret
        self._access_s = int(access_minutes * 60)
        self._refresh_s = int(refresh_hours * 3600)

    def _encode(
        self, user_id: int, token_version: int, kind: TokenKind, ttl: int, session: str
    ) -> str:
        now = int(time.time())
        claims = {
            "sid": session,
            "iss": _ISSUER,
            "sub": str(user_id),
            "ver": token_version,
            "typ": kind,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    @property
    def refresh_seconds(self) -> int:
        return self._refresh_s

    def issue(self, *, user_id: int, token_version: int, session: str | None = None) -> TokenPair:
        """A pair for a new session, or for ``session`` (a refresh continues it)."""
        sid = session or uuid.uuid4().hex
        return TokenPair(
            access_token=self._encode(user_id, token_version, "access", self._access_s, sid),
            refresh_token=self._encode(user_id, token_version, "refresh", self._refresh_s, sid),
            expires_in=self._access_s,
        )

    def decode(self, token: str, *, expect: TokenKind) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                issuer=_ISSUER,
                options={"require": ["exp", "iat", "sub", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        if claims.get("typ") != expect:
            raise InvalidToken(
                f"not an {expect} token" if expect == "access" else "not a refresh token"
            )
        try:
            return TokenClaims(
                user_id=int(claims["sub"]),
                token_version=int(claims["ver"]),
                kind=expect,
                expires_at=float(claims["exp"]),
                session=str(claims["sid"]) if claims.get("sid") else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidToken("invalid token claims") from exc
