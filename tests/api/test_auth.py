"""Signing in: the OAuth2 password flow, refresh, and every way a token stops working."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest

from core.access import Role
from core.settings import Settings
from storage import people
from tests.asgi import serve
from tests.people import PASSWORD, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=database_url, state_dir=tmp_path)  # type: ignore[call-arg]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as c:
        yield c


async def _login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/login/access-token", data={"username": username, "password": password}
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_sign_in_and_see_who_you_are(client: httpx.AsyncClient, database_url: str) -> None:
    ensure_user(database_url, "t-auth-inspector", Role.LABOUR_INSPECTOR, ["KZ-55", "KZ-23"])
    r = await _login(client, "t-auth-inspector", PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    me = await client.get("/api/v1/users/me", headers=_auth(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["role"] == "labour_inspector"
    assert me.json()["regions"] == ["KZ-55", "KZ-23"]
    assert me.json()["scope"] == "regions KZ-23, KZ-55"
    assert "password_hash" not in me.text


async def test_wrong_password_and_unknown_user_look_the_same(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ensure_user(database_url, "t-auth-officer", Role.SAFETY_OFFICER, [], "E002")
    wrong = await _login(client, "t-auth-officer", "not the password")
    unknown = await _login(client, "t-nobody-at-all", PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "wrong user name or password"}


async def test_refresh_gives_a_new_pair_and_is_not_an_access_token(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ensure_user(database_url, "t-auth-control", Role.CONTROL_ROOM, ["KZ-35"])
    pair = (await _login(client, "t-auth-control", PASSWORD)).json()
    # A refresh token does not open data endpoints, and an access token does not refresh.
    r = await client.get("/api/v1/users/me", headers=_auth(pair["refresh_token"]))
    assert r.status_code == 401
    r = await client.post("/api/v1/login/refresh", json={"refresh_token": pair["access_token"]})
    assert r.status_code == 401
    r = await client.post("/api/v1/login/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["access_token"] != pair["access_token"]
    r = await client.get("/api/v1/users/me", headers=_auth(fresh["access_token"]))
    assert r.json()["username"] == "t-auth-control"


async def test_disabling_or_a_new_password_ends_every_session(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ensure_user(database_url, "t-auth-leaver", Role.FIRE_INSPECTOR, ["KZ-35"])
    pair = (await _login(client, "t-auth-leaver", PASSWORD)).json()
    assert (await client.get("/api/v1/users/me", headers=_auth(pair["access_token"]))).is_success

    with psycopg.connect(database_url) as conn:
        people.update_user(conn, username="t-auth-leaver", password_hash="$argon2id$changed")
    r = await client.get("/api/v1/users/me", headers=_auth(pair["access_token"]))
    assert r.status_code == 401
    assert r.json()["detail"] == "this session has ended; sign in again"
    r = await client.post("/api/v1/login/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401

    ensure_user(database_url, "t-auth-disabled", Role.WORKER, [], "E001")
    pair = (await _login(client, "t-auth-disabled", PASSWORD)).json()
    with psycopg.connect(database_url) as conn:
        people.update_user(conn, username="t-auth-disabled", active=False)
    assert (
        await client.get("/api/v1/users/me", headers=_auth(pair["access_token"]))
    ).status_code == 401
    assert (await _login(client, "t-auth-disabled", PASSWORD)).status_code == 401


async def test_signing_out_ends_this_session_only(
    client: httpx.AsyncClient, database_url: str
) -> None:
    ensure_user(database_url, "t-auth-twophones", Role.LABOUR_INSPECTOR, ["KZ-35"])
    phone = (await _login(client, "t-auth-twophones", PASSWORD)).json()
    wall = (await _login(client, "t-auth-twophones", PASSWORD)).json()
    # A refresh continues the phone's session: signing out ends the refreshed pair too.
    refreshed = (
        await client.post("/api/v1/login/refresh", json={"refresh_token": phone["refresh_token"]})
    ).json()
    out = await client.post("/api/v1/login/sign-out", headers=_auth(phone["access_token"]))
    assert out.status_code == 204, out.text
    for token in (phone["access_token"], refreshed["access_token"]):
        r = await client.get("/api/v1/users/me", headers=_auth(token))
        assert (
            r.status_code == 401 and r.json()["detail"] == "this session has ended; sign in again"
        )
    for token in (phone["refresh_token"], refreshed["refresh_token"]):
        r = await client.post("/api/v1/login/refresh", json={"refresh_token": token})
        assert r.status_code == 401
    # The wall's session, the same person's, goes on; signing out twice is refused, not a 500.
    assert (await client.get("/api/v1/users/me", headers=_auth(wall["access_token"]))).is_success
    again = await client.post("/api/v1/login/sign-out", headers=_auth(phone["access_token"]))
    assert again.status_code == 401
    assert (await client.post("/api/v1/login/sign-out")).status_code == 401
    # A refresh token is not a key to sign out with.
    r = await client.post("/api/v1/login/sign-out", headers=_auth(wall["refresh_token"]))
    assert r.status_code == 401


async def test_expired_and_forged_tokens_are_refused(
    client: httpx.AsyncClient, database_url: str, settings: Settings
) -> None:
    secret = settings.jwt_secret.get_secret_value()
    user = ensure_user(database_url, "t-auth-forger", Role.ADMIN)
    now = int(time.time())
    claims = {"iss": "qorgau", "sub": str(user.id), "ver": 0, "typ": "access", "iat": now}
    expired = jwt.encode({**claims, "exp": now - 1}, secret, algorithm="HS256")
    forged = jwt.encode({**claims, "exp": now + 600}, "another-secret-" * 3, algorithm="HS256")
    unsigned = jwt.encode({**claims, "exp": now + 600}, "", algorithm="none")
    for token, why in (
        (expired, "token expired"),
        (forged, "invalid token"),
        (unsigned, "invalid token"),
    ):
        r = await client.get("/api/v1/users/me", headers=_auth(token))
        assert r.status_code == 401, why
        assert r.json()["detail"].startswith(why)
    good = jwt.encode({**claims, "exp": now + 600}, secret, algorithm="HS256")
    assert (await client.get("/api/v1/users/me", headers=_auth(good))).status_code == 200


async def test_repeated_wrong_passwords_lock_the_user_name_for_a_while(
    client: httpx.AsyncClient, database_url: str
) -> None:
    from api.routes.login import MAX_FAILED_SIGN_INS

    ensure_user(database_url, "t-auth-guessed", Role.SAFETY_OFFICER, [], "E003")
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        assert (await _login(client, "t-auth-guessed", "guess")).status_code == 401
    # A right password before the limit resets the count.
    assert (await _login(client, "t-auth-guessed", PASSWORD)).status_code == 200
    for _ in range(MAX_FAILED_SIGN_INS):
        assert (await _login(client, "t-auth-guessed", "guess")).status_code == 401
    r = await _login(client, "t-auth-guessed", PASSWORD)  # even the right one, for now
    assert r.status_code == 429
    assert 14 * 60 < int(r.headers["retry-after"]) <= 15 * 60
    assert "try again in 15 min" in r.json()["detail"]
    # An admin's new password lifts the lock.
    with psycopg.connect(database_url) as conn:
        user = people.get_user_by_username(conn, username="t-auth-guessed")
        assert user is not None
        people.update_user(conn, username="t-auth-guessed", password_hash=user.password_hash)
    assert (await _login(client, "t-auth-guessed", PASSWORD)).status_code == 200
