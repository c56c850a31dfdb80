"""The delivery log keeps where a message went, never how to send another.

A Telegram bot token lives in the apprise URL (``tgram://TOKEN/chat``) and comes back
in errors (``…/bot<TOKEN>/sendMessage``); a webhook's token in its path. Whatever the
channel answers or raises, neither the stored attempts, nor the delivery row, nor the
log lines hold it: `alerts.delivery` passes them through `core.redaction`, the same
redactor the API's delivery log uses.
"""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from psycopg_pool import AsyncConnectionPool

from alerts.channels.base import SendResult, SendStatus
from alerts.delivery import Deliverer, DeliveryStatus
from alerts.notification import Notification, Recipient, Target
from api.schemas import DeliveryPublic
from storage.deliveries import get_delivery_by_id, list_delivery_attempts
from tests.alerts.conftest import make_notification

pytestmark = pytest.mark.asyncio(loop_scope="session")

BOT_TOKEN = "7413265809:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
CHAT = "-1001234567890"
TELEGRAM = f"tgram://{BOT_TOKEN}/{CHAT}"
WEBHOOK = "https://hooks.example.kz/services/T0K3N-0F-THE-H00K?sig=S1GNATURE"
SECRETS = (BOT_TOKEN, *BOT_TOKEN.split(":"), CHAT, "T0K3N-0F-THE-H00K", "S1GNATURE")
RU = Recipient("user:11", "Иван Петров", "ru")


class Echoing:
    """A channel whose far end repeats the URL, as HTTP clients' errors do."""

    name = "apprise"

    async def send(self, n: Notification, r: Recipient, target: Target) -> SendResult:
        return SendResult(
            SendStatus.RETRY,
            f"HTTPError 502 for url https://api.telegram.org/bot{BOT_TOKEN}/sendMessage"
            f" (target {target.address})",
        )

    async def close(self) -> None:
        pass


class Raising:
    """A channel with a bug whose exception names the address."""

    name = "webhook"

    async def send(self, n: Notification, r: Recipient, target: Target) -> SendResult:
        raise RuntimeError(f"cannot post to {target.address}")

    async def close(self) -> None:
        pass


async def _no_wait(seconds: float) -> None:
    pass


@pytest.mark.parametrize(
    ("channel", "address", "shown"),
    [(Echoing(), TELEGRAM, "tgram://…"), (Raising(), WEBHOOK, "https://hooks.example.kz")],
)
async def test_no_secret_of_the_address_is_kept_or_logged(
    pool: AsyncConnectionPool[Any], channel: Any, address: str, shown: str
) -> None:
    deliverer = Deliverer(pool, {channel.name: channel}, max_attempts=2, sleep=_no_wait)
    with structlog.testing.capture_logs() as logs:
        outcome = await deliverer.deliver(make_notification(), RU, Target(channel.name, address))
    assert outcome.status is DeliveryStatus.FAILED and outcome.attempts == 2
    async with pool.connection() as conn:
        row = await get_delivery_by_id(conn, delivery_id=outcome.delivery_id)
        attempts = await list_delivery_attempts(conn, delivery_id=outcome.delivery_id)
    assert row is not None and row.address == address  # kept to send, never shown
    kept = repr([a.error for a in attempts]) + repr(row.last_error) + outcome.detail
    logged = repr(logs)
    for secret in SECRETS:
        assert secret not in kept, secret
        assert secret not in logged, secret
    assert all(a.error for a in attempts)  # the errors themselves are still there
    assert {e["address"] for e in logs if "address" in e} == {shown}
    # The API shows the same address, by the same redactor.
    assert DeliveryPublic.from_row(row).address == shown
