"""Web Push subscriptions over the API: the VAPID key, subscribing, listing, unsubscribing.

A subscription is the caller's own: nobody lists or deletes another person's.
Keys are real P-256 key pairs made here, as a browser makes them, and the last
test proves the stored subscription works: a push sent with the API's own VAPID
key to it opens with the browser's private key.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import http_ece
import httpx
import orjson
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from alerts.channels import WebPushChannel, generate_vapid_key, public_key_b64url
from alerts.channels.webpush import DEV_VAPID_KEY_FILE, b64url, resolve_vapid_key
from alerts.notification import Recipient, Target
from api import create_app
from core.access import Role
from core.errors import ConfigError
from core.settings import Settings
from storage.people import UserRow
from tests.alerts.conftest import http_receiver, make_notification, subscription_keys
from tests.asgi import serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "/api/v1/push/subscriptions"


def _browser() -> tuple[ec.EllipticCurvePrivateKey, dict[str, str]]:
    """What a browser makes when it subscribes: a P-256 key pair and a 16-byte auth secret."""
    private, p256dh, _, auth = subscription_keys()
    return private, {"p256dh": p256dh, "auth": auth}


def _subscription(endpoint: str | None = None, **keys: str) -> dict[str, Any]:
    """A ``PushSubscription.toJSON()`` with fresh keys (``keys`` override them)."""
    _, fresh = _browser()
    return {
        "endpoint": endpoint or f"https://fcm.googleapis.com/fcm/send/{uuid.uuid4().hex}",
        "expirationTime": None,
        "keys": {**fresh, **keys},
    }


def _settings(database_url: str, state_dir: Path, **overrides: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, state_dir=state_dir, **overrides
    )


@pytest.fixture
async def app(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = _settings(database_url, tmp_path)
    async with serve(settings) as c:
        yield c, settings


@pytest.fixture(autouse=True)
def _forget_subscriptions(database_url: str) -> Iterator[None]:
    """Each test's subscriptions go with it: later tests (the notifier's) must not push to them."""
    yield
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "DELETE FROM push_subscriptions WHERE user_id IN"
            " (SELECT id FROM users WHERE username LIKE 't-push-%%')"
        )


def _user(database_url: str, name: str, role: Role = Role.SAFETY_OFFICER) -> UserRow:
    if role in (Role.SAFETY_OFFICER, Role.WORKER):
        return ensure_user(database_url, name, role, [], "E001")
    if role is Role.ADMIN:
        return ensure_user(database_url, name, role)
    return ensure_user(database_url, name, role, ["KZ-35"])


def _stored(database_url: str, endpoint: str) -> tuple[int, str, str, str | None] | None:
    """(user id, p256dh, auth, user agent) of the row at ``endpoint``, as the database has it."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT user_id, p256dh, auth, user_agent FROM push_subscriptions WHERE endpoint = %s",
            (endpoint,),
        ).fetchone()
    return None if row is None else (row[0], row[1], row[2], row[3])


# --- the VAPID key ------------------------------------------------------------------------


async def test_vapid_public_key_is_the_one_of_the_resolved_private_key(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    headers = bearer(settings, _user(database_url, "t-push-key-worker", Role.WORKER))
    r = await client.get("/api/v1/push/vapid-public-key", headers=headers)
    assert r.status_code == 200, r.text
    key = r.json()["public_key"]
    # Development without a configured key: the local stack's own, made once in its state dir.
    private = resolve_vapid_key(None, settings.state_dir, environment="development")
    assert (settings.state_dir / DEV_VAPID_KEY_FILE).read_text() == private
    assert key == public_key_b64url(private)
    point = base64.urlsafe_b64decode(key + "=")
    assert len(point) == 65 and point[0] == 0x04  # what pushManager.subscribe takes
    assert (await client.get("/api/v1/push/vapid-public-key")).status_code == 401


async def test_a_configured_vapid_key_wins_and_a_bad_one_stops_the_start(
    database_url: str, tmp_path: Path
) -> None:
    pem, public = generate_vapid_key()
    app = create_app(_settings(database_url, tmp_path, vapid_private_key=pem))
    assert app.state.vapid_public_key == public
    assert not (tmp_path / DEV_VAPID_KEY_FILE).exists()  # nothing made when one is set

    with pytest.raises(ConfigError, match="QORGAU_VAPID_PRIVATE_KEY"):
        create_app(_settings(database_url, tmp_path, vapid_private_key="not-a-key"))
    secrets = {"jwt_secret": "j" * 40, "webhook_secret": "w" * 40}
    production = _settings(
        database_url, tmp_path, environment="production", vapid_private_key=pem, **secrets
    )
    assert create_app(production).state.vapid_public_key == public
    # Settings refuse production without a key; the resolver refuses it on its own too.
    with pytest.raises(ConfigError, match="QORGAU_VAPID_PRIVATE_KEY is not set"):
        resolve_vapid_key(None, tmp_path, environment="production")


async def test_the_development_key_is_made_once_and_shared(tmp_path: Path) -> None:
    state = tmp_path / "state"  # not there yet: made on first use
    # Processes of one stack starting together (threads here) end up with one key.
    keys = await asyncio.gather(
        *(
            asyncio.to_thread(resolve_vapid_key, None, state, environment="development")
            for _ in range(8)
        )
    )
    assert len(set(keys)) == 1
    path = state / DEV_VAPID_KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in state.iterdir()] == [DEV_VAPID_KEY_FILE]  # no temporary left
    assert resolve_vapid_key(None, state, environment="development") == keys[0]
    # A configured key is used as given, the file is not consulted.
    pem, _ = generate_vapid_key()
    assert resolve_vapid_key(pem, state, environment="development") == pem
    # A damaged file is an error naming it, not a silently new key.
    path.write_text("garbage")
    with pytest.raises(ConfigError, match=re.escape(DEV_VAPID_KEY_FILE)):
        resolve_vapid_key(None, state, environment="development")
    # So is a key on another curve.
    p384 = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ConfigError, match=r"QORGAU_VAPID_PRIVATE_KEY.*P-256"):
        resolve_vapid_key(p384.decode(), state, environment="development")


# --- subscriptions ------------------------------------------------------------------------


async def test_subscribe_list_and_subscribe_again(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    user = _user(database_url, "t-push-officer")
    headers = {**bearer(settings, user), "User-Agent": "Mozilla/5.0 (X11; Linux) Firefox/140.0"}
    body = _subscription()
    r = await client.post(URL, json=body, headers=headers)
    assert r.status_code == 201, r.text
    created = r.json()
    # What the client sent, minus the keys: they are never sent back.
    assert set(created) == {"id", "endpoint", "user_agent", "created_at"}
    assert created["endpoint"] == body["endpoint"]
    assert created["user_agent"] == "Mozilla/5.0 (X11; Linux) Firefox/140.0"
    assert body["keys"]["auth"] not in r.text and body["keys"]["p256dh"] not in r.text
    assert _stored(database_url, body["endpoint"]) == (
        user.id,
        body["keys"]["p256dh"],
        body["keys"]["auth"],
        "Mozilla/5.0 (X11; Linux) Firefox/140.0",
    )

    listed = (await client.get(URL, headers=headers)).json()
    assert [s["endpoint"] for s in listed] == [body["endpoint"]]
    assert listed[0] == created

    # The browser renewed its keys (padded base64url this time): same subscription, new keys.
    again = _subscription(body["endpoint"])
    padded = {k: v + "=" * (-len(v) % 4) for k, v in again["keys"].items()}
    r = await client.post(
        URL, json={**again, "keys": padded}, headers={**headers, "User-Agent": "Chrome/138"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["id"] == created["id"]
    assert r.json()["created_at"] == created["created_at"]
    # Stored unpadded, as the push libraries decode it.
    assert _stored(database_url, body["endpoint"]) == (
        user.id,
        again["keys"]["p256dh"],
        again["keys"]["auth"],
        "Chrome/138",
    )
    assert len((await client.get(URL, headers=headers)).json()) == 1

    # A second browser is a second subscription, listed after the first.
    second = _subscription()
    assert (await client.post(URL, json=second, headers=headers)).status_code == 201
    listed = (await client.get(URL, headers=headers)).json()
    assert [s["endpoint"] for s in listed] == [body["endpoint"], second["endpoint"]]


async def test_every_role_may_subscribe_and_nobody_without_a_token(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    for role in Role:
        user = _user(database_url, f"t-push-{role.value}", role)
        r = await client.post(URL, json=_subscription(), headers=bearer(settings, user))
        assert r.status_code == 201, (role, r.text)
    body = _subscription()
    for method, kwargs in (
        ("GET", {}),
        ("POST", {"json": body}),
        ("DELETE", {"params": {"endpoint": body["endpoint"]}}),
    ):
        r = await client.request(method, URL, **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 401, (method, r.text)
    assert _stored(database_url, body["endpoint"]) is None


_AUTH16 = "A" * 22  # 16 bytes of base64url


@pytest.mark.parametrize(
    ("endpoint", "keys", "complaint"),
    [
        ("http://push.example.com/s/1", {}, "https"),
        ("ftp://push.example.com/s/1", {}, "https"),
        ("push.example.com/s/1", {}, "host"),
        ("https:///no-host", {}, "host"),
        ("https://user:pw@push.example.com/s", {}, "user name"),
        ("https://push.example.com:99999/s", {}, "valid URL"),
        ("https://push.example.com/a b", {}, "spaces"),
        ("https://push.example.com/" + "x" * 2048, {}, "2048"),
        (None, {}, "string"),
        ("", {"p256dh": "BAAA"}, "65 bytes"),
        ("", {"p256dh": "not base64!"}, "base64url"),
        ("", {"p256dh": "+" * 87}, "base64url"),  # standard base64 decodes wrongly later
        ("", {"auth": "A" * 20}, "16 bytes"),
        ("", {"auth": None}, "Field required"),
        ("", {"p256dh": None, "auth": None}, "Field required"),
    ],
)
async def test_bad_subscriptions_are_refused_with_a_reason(
    app: tuple[httpx.AsyncClient, Settings],
    database_url: str,
    endpoint: str | None,
    keys: dict[str, str | None],
    complaint: str,
) -> None:
    client, settings = app
    headers = bearer(settings, _user(database_url, "t-push-officer"))
    body = _subscription()
    if endpoint != "":
        body["endpoint"] = endpoint
    merged = {**body["keys"], **keys}
    body["keys"] = {k: v for k, v in merged.items() if v is not None}
    r = await client.post(URL, json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert complaint in r.text, r.text
    if endpoint == "":
        assert _stored(database_url, body["endpoint"]) is None


async def test_keys_must_be_a_real_p256_point(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    headers = bearer(settings, _user(database_url, "t-push-officer"))
    _, good = _browser()
    point = bytearray(base64.urlsafe_b64decode(good["p256dh"] + "="))
    compressed = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), bytes(point)
    ).public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    off_curve = bytearray(point)
    off_curve[-1] ^= 1  # y no longer matches x
    x25519_sized = b"\x04" + os.urandom(32)
    for raw, why in (
        (compressed, "65 bytes"),
        (bytes(off_curve), "not a point on the P-256 curve"),
        (x25519_sized, "65 bytes"),
        (b"\x05" + bytes(point[1:]), "starting 0x04"),
    ):
        r = await client.post(URL, json=_subscription(p256dh=b64url(raw)), headers=headers)
        assert r.status_code == 422, (why, r.text)
        assert why in r.text, r.text


async def test_local_push_services_may_use_plain_http(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    headers = bearer(settings, _user(database_url, "t-push-officer"))
    for endpoint in (
        f"http://127.0.0.1:8090/push/{uuid.uuid4().hex}",
        f"http://localhost/push/{uuid.uuid4().hex}",
        f"http://[::1]:8090/push/{uuid.uuid4().hex}",
    ):
        r = await client.post(URL, json=_subscription(endpoint), headers=headers)
        assert r.status_code == 201, (endpoint, r.text)


async def test_unsubscribe_only_your_own(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    client, settings = app
    alice = _user(database_url, "t-push-alice", Role.LABOUR_INSPECTOR)
    bob = _user(database_url, "t-push-bob", Role.WORKER)
    as_alice, as_bob = bearer(settings, alice), bearer(settings, bob)
    mine, theirs = _subscription(), _subscription()
    assert (await client.post(URL, json=mine, headers=as_alice)).status_code == 201
    assert (await client.post(URL, json=theirs, headers=as_bob)).status_code == 201

    # Alice's list has hers only; Bob's endpoint is not hers to delete: 404, and it stays.
    alice_list = [s["endpoint"] for s in (await client.get(URL, headers=as_alice)).json()]
    assert mine["endpoint"] in alice_list and theirs["endpoint"] not in alice_list
    r = await client.delete(URL, params={"endpoint": theirs["endpoint"]}, headers=as_alice)
    assert r.status_code == 404, r.text
    assert set(r.json()) == {"detail"}
    assert _stored(database_url, theirs["endpoint"]) is not None
    bob_list = [s["endpoint"] for s in (await client.get(URL, headers=as_bob)).json()]
    assert bob_list == [theirs["endpoint"]]

    # Her own: gone (204, no body), and a second time there is nothing to delete.
    r = await client.delete(URL, params={"endpoint": mine["endpoint"]}, headers=as_alice)
    assert r.status_code == 204 and r.content == b""
    assert _stored(database_url, mine["endpoint"]) is None
    assert mine["endpoint"] not in [
        s["endpoint"] for s in (await client.get(URL, headers=as_alice)).json()
    ]
    r = await client.delete(URL, params={"endpoint": mine["endpoint"]}, headers=as_alice)
    assert r.status_code == 404
    assert (await client.delete(URL, headers=as_alice)).status_code == 422  # which one?


async def test_a_subscription_made_here_receives_a_push_it_can_open(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    """The whole path a browser takes: key, subscribe, and a push it decrypts."""
    client, settings = app
    user = _user(database_url, "t-push-e2e", Role.CONTROL_ROOM)
    headers = bearer(settings, user)
    key = (await client.get("/api/v1/push/vapid-public-key", headers=headers)).json()
    private, keys = _browser()
    async with http_receiver([201]) as push_service:
        endpoint = f"{push_service.url}/wpush/v2/{uuid.uuid4().hex}"
        r = await client.post(URL, json=_subscription(endpoint, **keys), headers=headers)
        assert r.status_code == 201, r.text
        stored = _stored(database_url, endpoint)
        assert stored is not None
        vapid = resolve_vapid_key(None, settings.state_dir, environment="development")
        channel = WebPushChannel(vapid_private_key=vapid, subject="mailto:ops@qorgau.kz")
        try:
            notification = make_notification()
            result = await channel.send(
                notification,
                Recipient(f"user:{user.id}", user.username, "ru"),
                Target("webpush", endpoint, p256dh=stored[1], auth=stored[2]),
            )
        finally:
            await channel.close()
    assert result.http_status == 201, result
    (request,) = push_service.requests
    assert f"k={key['public_key']}" in request.headers["Authorization"].replace(" ", "")
    plaintext = http_ece.decrypt(
        request.body,
        private_key=private,
        auth_secret=base64.urlsafe_b64decode(keys["auth"] + "=="),
        version="aes128gcm",
    )
    assert orjson.loads(plaintext)["change_id"] == notification.change_id


async def test_only_known_push_services_and_no_local_ones_outside_development(
    database_url: str, tmp_path: Path
) -> None:
    """The server posts to the endpoint: it must not be pointed into its own network."""
    from alerts.channels import generate_vapid_key

    settings = _settings(
        database_url,
        tmp_path,
        environment="production",
        jwt_secret="j" * 40,
        webhook_secret="w" * 40,
        vapid_private_key=generate_vapid_key()[0],
    )
    async with serve(settings) as c:
        headers = bearer(settings, _user(database_url, "t-push-prod"))
        for endpoint in (
            "https://fcm.googleapis.com/fcm/send/abc",
            "https://updates.push.services.mozilla.com/wpush/v2/abc",
            "https://web.push.apple.com/QGx",
            "https://db5p.notify.windows.com/w/?token=abc",
        ):
            r = await c.post(URL, json=_subscription(endpoint), headers=headers)
            assert r.status_code == 201, (endpoint, r.text)
        for endpoint in (
            "http://127.0.0.1:8090/push/x",  # local: development only
            "https://127.0.0.1/push/x",
            "https://metadata.internal/latest",  # not a push service
            "https://fcm.googleapis.com.evil.example/x",  # only a look-alike
        ):
            r = await c.post(URL, json=_subscription(endpoint), headers=headers)
            assert r.status_code == 422, (endpoint, r.text)


async def test_a_test_notification_goes_through_the_push_service_and_prunes_the_dead(
    app: tuple[httpx.AsyncClient, Settings], database_url: str
) -> None:
    """`POST /push/test`: to each of the caller's browsers, encrypted for it and signed with
    the API's VAPID key, as an alarm would go; a gone subscription is removed; a second
    test within 10 s waits; with no subscription there is nothing to test."""
    client, settings = app
    user = _user(database_url, "t-push-tester", Role.LABOUR_INSPECTOR)
    headers = bearer(settings, user)
    assert (await client.post("/api/v1/push/test", headers=headers)).status_code == 404
    private, keys = _browser()
    async with http_receiver([201]) as live, http_receiver([410]) as dead:
        endpoint = f"{live.url}/push/{uuid.uuid4().hex}"
        gone = f"{dead.url}/push/{uuid.uuid4().hex}"
        for url in (endpoint, gone):
            r = await client.post(URL, json=_subscription(url, **keys), headers=headers)
            assert r.status_code == 201, r.text
        r = await client.post("/api/v1/push/test", headers=headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["sent"] == 1
        assert sorted(x["status"] for x in body["results"]) == ["gone", "sent"]
        assert all(x["push_service"] == "127.0.0.1" for x in body["results"])  # no endpoint
        again = await client.post("/api/v1/push/test", headers=headers)
        assert again.status_code == 429 and int(again.headers["retry-after"]) <= 10
    (request,) = live.requests
    payload = orjson.loads(
        http_ece.decrypt(
            request.body,
            private_key=private,
            auth_secret=base64.urlsafe_b64decode(keys["auth"] + "=="),
            version="aes128gcm",
        )
    )
    assert payload["purpose"] == "test" and payload["title"] == "Qorgau: проверка"
    assert _stored(database_url, gone) is None and _stored(database_url, endpoint) is not None
