"""Test helpers for people: users of every role and scope, and their bearer tokens.

All test users share one password, hashed once per session (Argon2 is slow on
purpose). Tokens can be had through the real sign-in endpoint, or signed
directly with the app's own secret when a test is about something else.
"""

from __future__ import annotations

import functools

import psycopg

from api.security import TokenSigner, hash_password
from core.access import Role
from core.settings import Settings
from storage import people
from storage.people import UserRow

__all__ = ["PASSWORD", "SCOPED_USERS", "bearer", "ensure_user"]

PASSWORD = "correct horse battery staple"

# One user per role and kind of scope, over the seeded reference data:
# KZ-35 holds E001; KZ-55 holds E003 and E008; KZ-23 holds E002.
SCOPED_USERS: dict[str, tuple[Role, list[str], str | None]] = {
    "t-admin": (Role.ADMIN, [], None),
    "t-labour-kz35": (Role.LABOUR_INSPECTOR, ["KZ-35"], None),
    "t-labour-kz55-kz23": (Role.LABOUR_INSPECTOR, ["KZ-55", "KZ-23"], None),
    "t-fire-kz55": (Role.FIRE_INSPECTOR, ["KZ-55"], None),
    "t-officer-e001": (Role.SAFETY_OFFICER, [], "E001"),
    "t-officer-e008": (Role.SAFETY_OFFICER, [], "E008"),
    "t-control-kz35": (Role.CONTROL_ROOM, ["KZ-35"], None),
    "t-control-national": (Role.CONTROL_ROOM, [], None),
    "t-worker-e003": (Role.WORKER, [], "E003"),
}


@functools.cache
def _password_hash() -> str:
    return hash_password(PASSWORD)


def ensure_user(
    dsn: str,
    username: str,
    role: Role,
    regions: list[str] | None = None,
    enterprise_id: str | None = None,
    **extra: object,
) -> UserRow:
    """The user ``username``, created with `PASSWORD` if missing."""
    with psycopg.connect(dsn) as conn:
        found = people.get_user_by_username(conn, username=username)
        if found is not None:
            return found
        return people.create_user(
            conn,
            username=username,
            role=role,
            password_hash=_password_hash(),
            regions=regions or [],
            enterprise_id=enterprise_id,
            **extra,  # type: ignore[arg-type]
        )


def bearer(settings: Settings, user: UserRow) -> dict[str, str]:
    """An ``Authorization`` header for ``user``, signed with the settings' secret."""
    signer = TokenSigner(
        settings.jwt_secret.get_secret_value(),
        access_minutes=settings.access_token_minutes,
        refresh_hours=settings.refresh_token_hours,
    )
    pair = signer.issue(user_id=user.id, token_version=user.token_version)
    return {"Authorization": f"Bearer {pair.access_token}"}
