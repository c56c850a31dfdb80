"""The admins' delivery log over the API: filters, redaction, attempts, who may read it.

Deliveries are made the way the notifier makes them: a real webhook through
`alerts.delivery.Deliverer` to a local receiver (refused once, then accepted),
and rows written with `storage.deliveries` for channels that need a far end
this test does not run (a dead push subscription, an apprise URL).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.channels import WebhookChannel
from alerts.delivery import Deliverer, DeliveryStatus
from alerts.notification import Notification, Recipient, Target
from core.access import Role
from core.backoff import Backoff
from core.settings import Settings
from storage.deliveries import AttemptRecord, create_delivery, finish_attempt
from tests.alerts.conftest import http_receiver, make_notification
from tests.asgi import serve
from tests.people import bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "/api/v1/deliveries"
SECRETS = ("T0K3N-IN-PATH", "Q-S3CRET", "BOT-T0KEN-SECRET", "SUBSCRIPTION-CAPABILITY")
FIELDS = {
    "id",
    "change_id",
    "alert_key",
    "recipient",
    "channel",
    "address",
    "status",
    "attempts",
    "latency_ms",
    "http_status",
    "last_error",
    "created_at",
    "next_attempt_at",
    "sent_at",
}


@dataclass(frozen=True)
class Logged:
    """The deliveries of one made-up alert: their ids by channel, and the alert's key."""

    alert_key: str
    webhook: int
    webpush: int
    apprise: int
    email: int
    webhook_url: str


async def _noop_sleep(_: float) -> None:
    return None


async def _logged_by_hand(
    pool: AsyncConnectionPool[Any],
    n: Notification,
    target: Target,
    attempts: list[tuple[AttemptRecord, str]],
) -> int:
    """A delivery written as the deliverer writes it: created, then each attempt finished."""
    now = datetime.now(UTC)
    async with pool.connection() as conn:
        row = await create_delivery(
            conn,
            change_id=n.change_id,
            alert_key=n.alert_key,
            recipient="user:77",
            recipient_name="Aigerim",
            language="kk",
            channel=target.channel,
            address=target.address,
            target_secret=target.secret,
            p256dh=target.p256dh,
            auth=target.auth,
            subscription_id=None,
            notification=n.payload(),
            now=now,
            claimed_by="test",
            claimed_until=now + timedelta(minutes=1),
        )
        assert row is not None
        for attempt, status in attempts:
            assert await finish_attempt(
                conn,
                delivery_id=row.id,
                claimed_by="test",
                attempt=attempt,
                status=status,
                claimed_until=now + timedelta(minutes=1),
            )
    return row.id


@pytest.fixture(scope="module")
async def logged(database_url: str) -> AsyncIterator[Logged]:
    """Four deliveries of one alert, one per channel, in the order webhook, push, apprise, e-mail."""
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(database_url, min_size=1, open=False)
    await pool.open(wait=True)
    n = make_notification()
    assert n.alert_key is not None
    webhook = WebhookChannel(default_secret="webhook-secret-for-tests-0123456789")
    deliverer = Deliverer(
        pool, {"webhook": webhook}, backoff=Backoff(rng=random.Random(1)), sleep=_noop_sleep
    )
    try:
        async with http_receiver([503, 200]) as receiver:
            url = f"{receiver.url}/hooks/T0K3N-IN-PATH?token=Q-S3CRET"
            outcome = await deliverer.deliver(
                n, Recipient("user:77", "Aigerim", "kk"), Target("webhook", url)
            )
        assert outcome.status is DeliveryStatus.SENT and outcome.attempts == 2
        at = datetime.now(UTC)
        push = await _logged_by_hand(
            pool,
            n,
            Target(
                "webpush",
                "https://fcm.googleapis.com/fcm/send/SUBSCRIPTION-CAPABILITY",
                p256dh="BPUBLICKEY-OF-THE-BROWSER",
                auth="AUTH-SECRET-16-BYTES",
            ),
            [(AttemptRecord(1, at, "gone", 12.5, 410, "status 410: gone"), "gone")],
        )
        apprise_url = "tgram://BOT-T0KEN-SECRET/-1001234567"
        apprise = await _logged_by_hand(
            pool,
            n,
            Target("apprise", apprise_url),
            [
                (
                    AttemptRecord(1, at, "retry", 40.0, None, f"cannot reach {apprise_url}"),
                    "retrying",
                ),
                (AttemptRecord(2, at, "rejected", 35.0, None, "bad chat id"), "rejected"),
            ],
        )
        email = await _logged_by_hand(
            pool,
            n,
            Target("email", "inspector@example.kz"),
            [(AttemptRecord(1, at, "sent", 81.0), "sent")],
        )
        yield Logged(n.alert_key, outcome.delivery_id, push, apprise, email, url)
    finally:
        await webhook.close()
        await pool.close()


@pytest.fixture
async def app(
    database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=database_url, state_dir=tmp_path
    )
    async with serve(settings) as c:
        yield c, settings


def _admin(database_url: str, settings: Settings) -> dict[str, str]:
    return bearer(settings, ensure_user(database_url, "t-deliveries-admin", Role.ADMIN))


async def test_the_log_of_one_alert_newest_first_and_redacted(
    app: tuple[httpx.AsyncClient, Settings], database_url: str, logged: Logged
) -> None:
    client, settings = app
    headers = _admin(database_url, settings)
    r = await client.get(URL, params={"alert_key": logged.alert_key}, headers=headers)
    assert r.status_code == 200, r.text
    rows = r.json()
    assert [d["id"] for d in rows] == [logged.email, logged.apprise, logged.webpush, logged.webhook]
    assert all(set(d) == FIELDS for d in rows)
    by_channel = {d["channel"]: d for d in rows}
    # URLs keep their scheme and host; tokens in the path, query or apprise "host" do not show.
    host = logged.webhook_url.split("/")[2]
    assert by_channel["webhook"]["address"] == f"http://{host}"
    assert by_channel["webpush"]["address"] == "https://fcm.googleapis.com/…"
    assert by_channel["apprise"]["address"] == "tgram://…"
    assert by_channel["email"]["address"] == "inspector@example.kz"
    for secret in (*SECRETS, "BPUBLICKEY", "AUTH-SECRET", "webhook-secret"):
        assert secret not in r.text, secret
    # Nor does the notification itself: the log says where and how, not what.
    assert "Carbon monoxide" not in r.text

    webhook = by_channel["webhook"]
    assert (webhook["status"], webhook["attempts"], webhook["http_status"]) == ("sent", 2, 200)
    assert webhook["latency_ms"] > 0 and webhook["sent_at"] is not None
    assert webhook["last_error"] is None
    push = by_channel["webpush"]
    assert (push["status"], push["http_status"], push["latency_ms"]) == ("gone", 410, None)
    assert by_channel["apprise"]["status"] == "rejected"
    assert by_channel["email"]["latency_ms"] == 81.0


async def test_filters_and_pages(
    app: tuple[httpx.AsyncClient, Settings], database_url: str, logged: Logged
) -> None:
    client, settings = app
    headers = _admin(database_url, settings)

    async def ids(**params: Any) -> list[int]:
        r = await client.get(URL, params={"alert_key": logged.alert_key, **params}, headers=headers)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()]

    assert await ids(channel="webhook") == [logged.webhook]
    assert await ids(channel="webpush") == [logged.webpush]
    assert await ids(status="sent") == [logged.email, logged.webhook]
    assert await ids(status="sent", channel="email") == [logged.email]
    assert await ids(status="failed") == []
    assert await ids(channel="sms") == []
    assert await ids(limit=2) == [logged.email, logged.apprise]
    assert await ids(limit=2, offset=2) == [logged.webpush, logged.webhook]
    assert await ids(alert_key=f"no-such-alert-{uuid.uuid4().hex}") == []
    # Without a filter: every delivery, ours among the newest.
    r = await client.get(URL, params={"limit": 500}, headers=headers)
    assert {logged.webhook, logged.email} <= {d["id"] for d in r.json()}
    for bad in ({"status": "lost"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        r = await client.get(URL, params=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)


async def test_one_delivery_with_its_attempts(
    app: tuple[httpx.AsyncClient, Settings], database_url: str, logged: Logged
) -> None:
    client, settings = app
    headers = _admin(database_url, settings)
    r = await client.get(f"{URL}/{logged.webhook}", headers=headers)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert set(detail) == {"delivery", "attempts"}
    assert detail["delivery"]["id"] == logged.webhook
    assert detail["delivery"]["address"] == "http://" + logged.webhook_url.split("/")[2]
    attempts = detail["attempts"]
    assert [(a["attempt"], a["status"], a["http_status"]) for a in attempts] == [
        (1, "retry", 503),
        (2, "sent", 200),
    ]
    assert all(a["latency_ms"] > 0 for a in attempts)
    assert attempts[0]["error"] and attempts[1]["error"] is None
    assert set(attempts[0]) == {"attempt", "at", "status", "latency_ms", "http_status", "error"}

    # An error that repeats the address does not give the token away either.
    r = await client.get(f"{URL}/{logged.apprise}", headers=headers)
    assert r.status_code == 200, r.text
    detail = r.json()
    assert [a["status"] for a in detail["attempts"]] == ["retry", "rejected"]
    assert detail["attempts"][0]["error"] == "cannot reach tgram://…"
    assert detail["delivery"]["last_error"] == "bad chat id"
    r = await client.get(f"{URL}/{logged.webpush}", headers=headers)
    for secret in (*SECRETS, "BPUBLICKEY", "AUTH-SECRET", "Carbon monoxide"):
        assert secret not in r.text, secret

    assert (await client.get(f"{URL}/999999999", headers=headers)).status_code == 404
    assert (await client.get(f"{URL}/{2**63}", headers=headers)).status_code == 422


async def test_only_admins_read_the_log(
    app: tuple[httpx.AsyncClient, Settings], database_url: str, logged: Logged
) -> None:
    client, settings = app
    for username, role, regions, enterprise in (
        ("t-deliveries-national", Role.CONTROL_ROOM, [], None),
        ("t-deliveries-inspector", Role.LABOUR_INSPECTOR, ["KZ-35"], None),
        ("t-deliveries-officer", Role.SAFETY_OFFICER, [], "E001"),
        ("t-deliveries-worker", Role.WORKER, [], "E001"),
    ):
        headers = bearer(settings, ensure_user(database_url, username, role, regions, enterprise))
        for url in (URL, f"{URL}/{logged.webhook}", f"{URL}/999999999"):
            r = await client.get(url, headers=headers)
            assert r.status_code == 403, (username, url, r.text)
            assert "T0K3N" not in r.text
    for url in (URL, f"{URL}/{logged.webhook}"):
        r = await client.get(url)
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
