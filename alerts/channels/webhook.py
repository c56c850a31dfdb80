"""Webhooks: the notification as signed JSON POSTed to a URL.

The body is ``orjson`` of `alerts.channels.base.app_payload` plus the
recipient's key. Two headers let the receiver trust it:
``X-Qorgau-Timestamp`` (unix seconds) and ``X-Qorgau-Signature:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body bytes>">`` keyed by the
target's secret (or the channel's default). Receivers check both with
`verify_signature`, which refuses stale timestamps so a captured request
cannot be replayed later. ``X-Qorgau-Idempotency-Key`` is the same for every
retry of one delivery, so a receiver can drop a repeat we sent because its
first answer never reached us.

>>> body = b'{"purpose":"alert"}'
>>> sig = sign("s3cret", 1772352000, body)
>>> sig
'sha256=ee096880c53e4d482c20a1085922a3601115326eb6f638254c27bef18bdcd4ba'
>>> verify_signature("s3cret", "1772352000", body, sig, now=1772352100)
True
>>> verify_signature("s3cret", "1772352000", body + b" ", sig, now=1772352100)
False
>>> verify_signature("s3cret", "1772352000", body, sig, now=1772352000 + 301)
False
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import httpx
import orjson

from alerts.channels.base import (
    SendResult,
    SendStatus,
    app_payload,
    classify_http,
    parse_retry_after,
    short_error,
)
from alerts.notification import Notification, Recipient, Target

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookChannel",
    "delivery_key",
    "sign",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Qorgau-Timestamp"
SIGNATURE_HEADER = "X-Qorgau-Signature"
IDEMPOTENCY_HEADER = "X-Qorgau-Idempotency-Key"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Qorgau-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes,
    signature: str,
    *,
    max_age_s: float = 300,
    now: float | None = None,
) -> bool:
    """Whether ``signature`` is ours for ``body`` and ``timestamp`` is within ``max_age_s`` of now.

    Constant-time; a malformed timestamp or signature is simply not valid.
    """
    try:
        sent_at = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > max_age_s:
        return False
    expected = sign(secret, sent_at, body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def delivery_key(notification: Notification, recipient: Recipient, target: Target) -> str:
    """A stable id of one delivery (the same on every retry), for receivers to de-duplicate."""
    raw = "\x1f".join((notification.change_id, recipient.key, target.channel, target.address))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


class WebhookChannel:
    """POST signed JSON with one shared `httpx.AsyncClient` (redirects are not followed).

    Parameters
    ----------
    default_secret
        HMAC key for targets without a secret of their own.
    timeout
        Seconds for connecting and for the whole answer.
    clock
        Unix time for the timestamp header (tests fix it).
    """

    name = "webhook"

    def __init__(
        self,
        *,
        default_secret: str,
        timeout: float = 10.0,
        user_agent: str = "Qorgau-Webhook/1",
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not default_secret:
            raise ValueError("WebhookChannel needs a default secret")
        self._default_secret = default_secret
        self._clock = clock
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        if not target.address.lower().startswith(("https://", "http://")):
            return SendResult(SendStatus.REJECTED, "webhook URL must be http(s)")
        body = orjson.dumps({**app_payload(notification, recipient), "recipient": recipient.key})
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(target.secret or self._default_secret, timestamp, body),
            IDEMPOTENCY_HEADER: delivery_key(notification, recipient, target),
        }
        try:
            response = await self._client.post(target.address, content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return SendResult(SendStatus.REJECTED, short_error(exc))
        except httpx.HTTPError as exc:  # connect, read, timeouts, protocol errors
            return SendResult(SendStatus.RETRY, short_error(exc))
        status = classify_http(response.status_code)
        detail = "" if status is SendStatus.SENT else response.text[:300]
        return SendResult(
            status,
            detail,
            http_status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
