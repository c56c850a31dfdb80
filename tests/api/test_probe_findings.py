"""What a black-box probe of the API found (issue 10, part 5), each asked again.

Every answer here is a documented 4xx or a 200 with finite numbers, never a 500;
the lockout says nothing about which user names exist; a token signed with the
key earlier versions published is worth nothing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest

from core.access import Role
from core.settings import Settings
from tests.asgi import serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Published as the development key in the source of earlier versions.
OLD_PUBLISHED_KEY = "qorgau-development-secret-do-not-use-in-production"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The demo's settings: development, nothing configured, its own state directory."""
    return Settings(_env_file=None, database_url=database_url, state_dir=tmp_path)  # type: ignore[call-arg]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as c:
        yield c


async def test_a_token_signed_with_the_old_published_key_is_refused(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    admin = ensure_user(database_url, "t-probe-admin", Role.ADMIN)
    now = int(time.time())
    claims = {
        "iss": "qorgau",
        "sub": str(admin.id),
        "ver": admin.token_version,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
    }
    forged = jwt.encode(claims, OLD_PUBLISHED_KEY, algorithm="HS256")
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    assert r.json()["detail"].startswith("invalid token")
    # The stack's own key, from its state directory, is what signs.
    assert (await client.get("/api/v1/users/me", headers=bearer(settings, admin))).is_success
    assert settings.jwt_secret.get_secret_value() == (settings.state_dir / "jwt-secret").read_text()
