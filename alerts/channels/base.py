"""The one interface every delivery channel speaks, and what a send attempt returns.

A channel turns (notification, recipient, target) into one attempt on its
transport and says how it went; it never raises for a delivery failure (the
`alerts.delivery.Deliverer` decides about retries, the log and pruning).

>>> classify_http(201), classify_http(503), classify_http(429), classify_http(400)
(<SendStatus.SENT: 'sent'>, <SendStatus.RETRY: 'retry'>, <SendStatus.RETRY: 'retry'>, <SendStatus.REJECTED: 'rejected'>)
>>> classify_http(410), classify_http(410, gone_on_404_410=True)
(<SendStatus.REJECTED: 'rejected'>, <SendStatus.GONE: 'gone'>)
>>> parse_retry_after("120"), parse_retry_after("soon")
(120.0, None)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from alerts.notification import Notification, Recipient, Target
from alerts.texts import render

__all__ = [
    "Channel",
    "SendResult",
    "SendStatus",
    "app_payload",
    "classify_http",
    "parse_retry_after",
    "short_error",
]


class SendStatus(StrEnum):
    """How one attempt went."""

    SENT = "sent"  # accepted by the far end
    RETRY = "retry"  # temporary: connection refused, timeout, 408/425/429, 5xx
    REJECTED = "rejected"  # permanent: other 4xx, a bad address, a refused recipient
    GONE = "gone"  # Web Push 404/410: the subscription is dead and must be pruned


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one attempt; ``retry_after`` (seconds) when the far end asked for a pause."""

    status: SendStatus
    detail: str = ""
    http_status: int | None = None
    retry_after: float | None = None


@runtime_checkable
class Channel(Protocol):
    """A delivery transport: Web Push, e-mail, webhook, MQTT, apprise."""

    name: str

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        """Make one attempt; return how it went, never raise for a delivery failure."""
        ...

    async def close(self) -> None:
        """Release connections and threads."""
        ...


def classify_http(status: int, *, gone_on_404_410: bool = False) -> SendStatus:
    """What an HTTP status means for delivery (redirects are not followed: a bad address)."""
    if 200 <= status < 300:
        return SendStatus.SENT
    if gone_on_404_410 and status in (404, 410):
        return SendStatus.GONE
    if status in (408, 425, 429) or status >= 500:
        return SendStatus.RETRY
    return SendStatus.REJECTED


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def app_payload(notification: Notification, recipient: Recipient) -> dict[str, Any]:
    """`Notification.payload` plus the title and body a person sees, in their language.

    What Web Push, MQTT (the worker's app) and webhooks carry.
    """
    rendered = render(notification, recipient.language)
    return {
        **notification.payload(),
        "language": recipient.language,
        "title": rendered.subject,
        "body": rendered.short,
    }


def short_error(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line for the delivery log."""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"
