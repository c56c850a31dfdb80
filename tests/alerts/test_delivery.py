"""The deliverer against the real database and real HTTP receivers.

Retries with growing backoff, permanent refusals, pruning dead push
subscriptions, idempotency (sequential and concurrent), the attempt log, and
resuming after a crash. The injected ``sleep`` records delays instead of
waiting; the injected ``clock`` lets a "later" process see leases run out.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg_pool import AsyncConnectionPool

from alerts.channels import (
    Channel,
    WebhookChannel,
    WebPushChannel,
    generate_vapid_key,
    verify_signature,
)
from alerts.channels.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from alerts.delivery import Deliverer, DeliveryStatus
from alerts.notification import Recipient, Target
from alerts.texts import render
from core.backoff import Backoff
from storage.deliveries import get_delivery_by_id, list_deliveries, list_delivery_attempts
from tests.alerts.conftest import http_receiver, make_notification

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRET = "webhook-secret-for-tests-0123456789"
RU = Recipient("user:11", "Иван Петров", "ru")


class Sleeps:
    """An injected ``sleep``: records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def _deliverer(
    pool: AsyncConnectionPool[Any],
    channels: dict[str, Channel],
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], datetime] | None = None,
    max_attempts: int = 5,
) -> Deliverer:
    return Deliverer(
        pool,
        channels,
        max_attempts=max_attempts,
        backoff=Backoff(rng=random.Random(42)),
        sleep=sleep or Sleeps(),
        clock=clock or (lambda: datetime.now(UTC)),
    )


async def _attempts(pool: AsyncConnectionPool[Any], delivery_id: int) -> list[Any]:
    async with pool.connection() as conn:
        return await list_delivery_attempts(conn, delivery_id=delivery_id)


async def _row(pool: AsyncConnectionPool[Any], delivery_id: int) -> Any:
    async with pool.connection() as conn:
        return await get_delivery_by_id(conn, delivery_id=delivery_id)


async def test_retries_with_growing_backoff_then_sent(pool: AsyncConnectionPool[Any]) -> None:
    sleeps = Sleeps()
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook}, sleep=sleeps)
    n = make_notification()
    async with http_receiver([503, 503, 200]) as receiver:
        target = Target("webhook", receiver.url + "/hook")
        outcome = await deliverer.deliver(n, RU, target)
    await webhook.close()

    assert outcome.status is DeliveryStatus.SENT and outcome.attempts == 3
    assert not outcome.duplicate
    assert outcome.latency_ms is not None and outcome.latency_ms > 0
    assert outcome.end_to_end_ms is not None and outcome.end_to_end_ms >= outcome.latency_ms
    assert len(sleeps.delays) == 2 and 0.8 <= sleeps.delays[0] <= 1.2
    assert sleeps.delays[1] > sleeps.delays[0]  # exponential: ~1 s, then ~2 s

    # The receiver saw three signed copies of one delivery.
    assert len(receiver.requests) == 3
    assert len({r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests}) == 1
    assert all(orjson.loads(r.body)["change_id"] == n.change_id for r in receiver.requests)

    attempts = await _attempts(pool, outcome.delivery_id)
    assert [(a.attempt, a.status, a.http_status) for a in attempts] == [
        (1, "retry", 503),
        (2, "retry", 503),
        (3, "sent", 200),
    ]
    assert all(a.latency_ms > 0 for a in attempts)
    assert attempts[0].error == "status 503" and attempts[2].error is None
    row = await _row(pool, outcome.delivery_id)
    assert row.status == "sent" and row.attempts == 3 and row.sent_at is not None
    assert row.claimed_by is None and row.latency_ms == outcome.latency_ms
    assert row.alert_key == n.alert_key and row.recipient == "user:11"
    assert row.notification == n.payload()


async def test_retry_after_is_honoured_and_attempts_run_out(
    pool: AsyncConnectionPool[Any],
) -> None:
    sleeps = Sleeps()
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook}, sleep=sleeps, max_attempts=3)
    async with http_receiver([429], headers={"Retry-After": "7"}) as receiver:
        outcome = await deliverer.deliver(
            make_notification(), RU, Target("webhook", receiver.url + "/h")
        )
    await webhook.close()
    assert outcome.status is DeliveryStatus.FAILED and outcome.attempts == 3
    assert sleeps.delays == [7.0, 7.0]  # the far end asked for more than the backoff
    assert len(receiver.requests) == 3
    assert [a.status for a in await _attempts(pool, outcome.delivery_id)] == ["retry"] * 3


async def test_a_permanent_refusal_is_rejected_after_one_attempt(
    pool: AsyncConnectionPool[Any],
) -> None:
    sleeps = Sleeps()
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook}, sleep=sleeps)
    async with http_receiver([400]) as receiver:
        outcome = await deliverer.deliver(
            make_notification(), RU, Target("webhook", receiver.url + "/h")
        )
    await webhook.close()
    assert outcome.status is DeliveryStatus.REJECTED and outcome.attempts == 1
    assert outcome.http_status == 400 and outcome.detail == "status 400"
    assert sleeps.delays == [] and len(receiver.requests) == 1
    (attempt,) = await _attempts(pool, outcome.delivery_id)
    assert (attempt.status, attempt.http_status, attempt.error) == ("rejected", 400, "status 400")


async def test_an_unknown_channel_is_rejected(pool: AsyncConnectionPool[Any]) -> None:
    outcome = await _deliverer(pool, {}).deliver(
        make_notification(), RU, Target("pigeon", "loft 3")
    )
    assert outcome.status is DeliveryStatus.REJECTED
    assert "no channel 'pigeon'" in outcome.detail


async def test_delivering_twice_sends_once(pool: AsyncConnectionPool[Any]) -> None:
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook})
    n = make_notification()
    async with http_receiver([200]) as receiver:
        target = Target("webhook", receiver.url + "/h")
        first = await deliverer.deliver(n, RU, target)
        again = await deliverer.deliver(n, RU, target)
        # A new process (another deliverer) is no different.
        other = await _deliverer(pool, {"webhook": webhook}).deliver(n, RU, target)
        # The same change to another address is another delivery.
        elsewhere = await deliverer.deliver(n, RU, Target("webhook", receiver.url + "/h2"))
    await webhook.close()
    assert first.status is DeliveryStatus.SENT and not first.duplicate
    for repeat in (again, other):
        assert repeat.duplicate and repeat.delivery_id == first.delivery_id
        assert repeat.status is DeliveryStatus.SENT and repeat.attempts == 1
    assert elsewhere.delivery_id != first.delivery_id and not elsewhere.duplicate
    assert [r.path for r in receiver.requests] == ["/h", "/h2"]


async def test_given_up_deliveries_are_not_retried_by_a_second_call(
    pool: AsyncConnectionPool[Any],
) -> None:
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook})
    n = make_notification()
    async with http_receiver([400, 200]) as receiver:
        target = Target("webhook", receiver.url + "/h")
        first = await deliverer.deliver(n, RU, target)
        again = await deliverer.deliver(n, RU, target)
    await webhook.close()
    assert first.status is again.status is DeliveryStatus.REJECTED
    assert again.duplicate and len(receiver.requests) == 1


async def test_concurrent_deliveries_of_one_key_send_once(pool: AsyncConnectionPool[Any]) -> None:
    webhook = WebhookChannel(default_secret=SECRET)
    # Two dispatchers (two deliverers on one database) and the same deliverer twice.
    a, b = _deliverer(pool, {"webhook": webhook}), _deliverer(pool, {"webhook": webhook})
    n = make_notification()
    async with http_receiver([200], delay_s=0.2) as receiver:
        target = Target("webhook", receiver.url + "/h")
        outcomes = await asyncio.gather(
            a.deliver(n, RU, target), b.deliver(n, RU, target), a.deliver(n, RU, target)
        )
    await webhook.close()
    assert len(receiver.requests) == 1
    assert len({o.delivery_id for o in outcomes}) == 1
    senders = [o for o in outcomes if not o.duplicate]
    assert len(senders) == 1 and senders[0].status is DeliveryStatus.SENT
    for o in outcomes:
        if o.duplicate:  # saw the delivery in flight (or already done), sent nothing
            assert o.status in (DeliveryStatus.PENDING, DeliveryStatus.SENT)
    assert len(await _attempts(pool, senders[0].delivery_id)) == 1


class _Crash(Exception):
    """The process died while waiting to retry."""


async def test_resume_pending_finishes_what_a_dead_process_left(
    pool: AsyncConnectionPool[Any],
) -> None:
    async def die(_seconds: float) -> None:
        raise _Crash

    webhook = WebhookChannel(default_secret=SECRET)
    n = make_notification()
    secret = "this-receivers-own-secret"
    async with http_receiver([503, 200]) as receiver:
        target = Target("webhook", receiver.url + "/h", secret=secret)
        with pytest.raises(_Crash):
            await _deliverer(pool, {"webhook": webhook}, sleep=die).deliver(n, RU, target)
        async with pool.connection() as conn:
            (row,) = await list_deliveries(conn, alert_key=n.alert_key)
        assert (row.status, row.attempts) == ("retrying", 1)

        # Right now the dead process's lease still holds: nothing is taken over.
        now_outcomes = await _deliverer(pool, {"webhook": webhook}).resume_pending()
        assert row.id not in {o.delivery_id for o in now_outcomes}

        # Later, a fresh process finds it due with the lease run out, and finishes it.
        later = datetime.now(UTC) + timedelta(minutes=10)
        restarted = _deliverer(pool, {"webhook": webhook}, clock=lambda: later)
        outcomes = {o.delivery_id: o for o in await restarted.resume_pending()}
    await webhook.close()

    resumed = outcomes[row.id]
    assert resumed.status is DeliveryStatus.SENT and resumed.attempts == 2
    assert len(receiver.requests) == 2
    # Rebuilt from the row: the same notification, signed with the target's own secret.
    last = receiver.requests[1]
    body = orjson.loads(last.body)
    assert body["change_id"] == n.change_id and body["title"] == render(n, "ru").subject
    assert verify_signature(
        secret, last.headers[TIMESTAMP_HEADER], last.body, last.headers[SIGNATURE_HEADER]
    )
    attempts = await _attempts(pool, row.id)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "retry"), (2, "sent")]
    # Done is done: neither resuming nor delivering again sends it a third time.
    assert row.id not in {o.delivery_id for o in await restarted.resume_pending()}
    again = await restarted.deliver(n, RU, target)
    assert again.duplicate and again.status is DeliveryStatus.SENT


async def test_a_gone_push_subscription_is_pruned(pool: AsyncConnectionPool[Any]) -> None:
    vapid_pem, _ = generate_vapid_key()
    browser_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = (
        base64.urlsafe_b64encode(
            browser_key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )
        .rstrip(b"=")
        .decode()
    )
    auth = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
    push = WebPushChannel(vapid_private_key=vapid_pem, subject="mailto:ops@qorgau.kz")
    async with http_receiver([410]) as push_service:
        endpoint = f"{push_service.url}/wpush/{uuid.uuid4().hex}"
        async with pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO users (username, role, password_hash) VALUES (%s, 'admin', 'x')"
                " RETURNING id",
                (f"push-{uuid.uuid4().hex[:12]}",),
            )
            (user_id,) = await cur.fetchone() or (None,)
            cur = await conn.execute(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)"
                " VALUES (%s, %s, %s, %s) RETURNING id",
                (user_id, endpoint, p256dh, auth),
            )
            (subscription_id,) = await cur.fetchone() or (None,)
        target = Target(
            "webpush", endpoint, p256dh=p256dh, auth=auth, subscription_id=subscription_id
        )
        outcome = await _deliverer(pool, {"webpush": push}).deliver(
            make_notification(), Recipient(f"user:{user_id}", "Admin", "kk"), target
        )
    await push.close()
    assert outcome.status is DeliveryStatus.GONE and outcome.attempts == 1
    assert len(push_service.requests) == 1
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM push_subscriptions WHERE id = %s", (subscription_id,)
        )
        assert await cur.fetchone() == (0,)
    (attempt,) = await _attempts(pool, outcome.delivery_id)
    assert (attempt.status, attempt.http_status) == ("gone", 410)


async def test_the_delivery_log_lists_by_alert_channel_and_status(
    pool: AsyncConnectionPool[Any],
) -> None:
    webhook = WebhookChannel(default_secret=SECRET)
    deliverer = _deliverer(pool, {"webhook": webhook})
    n = make_notification()
    async with http_receiver([200]) as ok, http_receiver([400]) as refusing:
        sent = await deliverer.deliver(n, RU, Target("webhook", ok.url + "/h"))
        refused = await deliverer.deliver(n, RU, Target("webhook", refusing.url + "/h"))
    await webhook.close()
    async with pool.connection() as conn:
        for_alert = await list_deliveries(conn, alert_key=n.alert_key)
        only_rejected = await list_deliveries(conn, alert_key=n.alert_key, status="rejected")
        other_channel = await list_deliveries(conn, alert_key=n.alert_key, channel="email")
        paged = await list_deliveries(conn, alert_key=n.alert_key, limit=1, offset=1)
    assert [r.id for r in for_alert] == [refused.delivery_id, sent.delivery_id]  # newest first
    assert [r.id for r in only_rejected] == [refused.delivery_id]
    assert other_channel == []
    assert [r.id for r in paged] == [sent.delivery_id]
    assert for_alert[1].status == "sent" and for_alert[1].latency_ms is not None
    assert not hasattr(for_alert[0], "target_secret")  # the admin log shows no secrets
