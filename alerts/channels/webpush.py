"""Web Push: an encrypted message to a browser or phone subscription (RFC 8030/8291/8292).

The plaintext is JSON of `alerts.channels.base.app_payload` (the notification
payload plus the title and body in the recipient's language), encrypted for
the subscription's ``p256dh``/``auth`` keys with ``aes128gcm`` by pywebpush's
`WebPusher.encode` (http_ece), and POSTed to the push service with a VAPID
``Authorization: vapid t=<JWT>,k=<public key>`` header, ``TTL`` and
``Urgency`` (``high`` for critical notifications and evacuations). A push
service answering 404 or 410 says the subscription is dead: `SendStatus.GONE`,
and the deliverer prunes it.

The application server key a browser subscribes with is
`public_key_b64url` of the VAPID private key; `generate_vapid_key` makes one,
and `resolve_vapid_key` decides which one a process signs with (the configured
key, or in development the local stack's own, kept in its state directory).

>>> private_pem, public = generate_vapid_key()
>>> private_pem.startswith("-----BEGIN PRIVATE KEY-----"), len(public)
(True, 87)
>>> public_key_b64url(private_pem) == public
True
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid01, Vapid02, VapidException
from pywebpush import WebPusher, WebPushException

from alerts.channels.base import (
    SendResult,
    SendStatus,
    app_payload,
    classify_http,
    parse_retry_after,
    short_error,
)
from alerts.notification import Notification, Recipient, Target
from core.errors import ConfigError
from core.statefiles import local_secret

__all__ = [
    "DEV_VAPID_KEY_FILE",
    "MAX_PLAINTEXT",
    "WebPushChannel",
    "b64url",
    "generate_vapid_key",
    "public_key_b64url",
    "resolve_vapid_key",
]

# A push service takes at most 4096 bytes of body; aes128gcm spends 86 on its
# header (with the 65-byte sender key), 16 on the tag and 1 on the delimiter.
MAX_PLAINTEXT = 4096 - 86 - 16 - 1
_JWT_LIFETIME_S = 12 * 3600  # RFC 8292 allows at most 24 h
_JWT_RENEW_S = 3600  # sign anew when a cached token has less than this left
# In development, the VAPID key of the local stack, shared by its API and its notifier.
DEV_VAPID_KEY_FILE = "vapid-private.pem"


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push writes keys (RFC 8291, RFC 8292).

    >>> b64url(bytes([251, 255]))
    '-_8'
    """
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _load_vapid(private: Any) -> Any:
    """A py_vapid `Vapid02` from a `Vapid01`/`Vapid02`, a PEM, or base64url raw/DER text."""
    if isinstance(private, Vapid01):
        return private
    text = private.decode() if isinstance(private, bytes) else str(private)
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
                raise ConfigError("the VAPID key must be an EC P-256 private key")
            return Vapid02(private_key=key)
        return Vapid02.from_string(private_key=text.strip())
    except (ValueError, TypeError, binascii.Error, VapidException) as exc:
        raise ConfigError(f"cannot read the VAPID private key: {exc}") from exc


def generate_vapid_key() -> tuple[str, str]:
    """A new VAPID key pair: (private key as PKCS#8 PEM, public key as base64url X9.62 point)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return pem, public_key_b64url(pem)


def resolve_vapid_key(configured: str | None, state_dir: Path, *, environment: str) -> str:
    """The VAPID private key this process signs with (PEM, or base64url as configured).

    ``configured`` (``QORGAU_VAPID_PRIVATE_KEY``) wins and must be an EC P-256
    private key. Without it, development uses ``state_dir / DEV_VAPID_KEY_FILE``,
    creating it (mode 0600) on first use with `core.statefiles.local_secret`, so the
    API and the notifier of one local stack hand out and sign with the same key; any
    other environment refuses.
    Raises `ConfigError`.

    >>> import tempfile
    >>> state = tempfile.TemporaryDirectory()
    >>> first = resolve_vapid_key(None, Path(state.name), environment="development")
    >>> first.startswith("-----BEGIN PRIVATE KEY-----")
    True
    >>> resolve_vapid_key(None, Path(state.name), environment="development") == first
    True
    >>> oct((Path(state.name) / DEV_VAPID_KEY_FILE).stat().st_mode & 0o777)
    '0o600'
    >>> resolve_vapid_key(first, Path("/nonexistent"), environment="production") == first
    True
    >>> resolve_vapid_key("k", Path(state.name), environment="development")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.errors.ConfigError: QORGAU_VAPID_PRIVATE_KEY is not a usable VAPID key: ...
    >>> resolve_vapid_key(None, Path(state.name), environment="production")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    core.errors.ConfigError: QORGAU_VAPID_PRIVATE_KEY is not set: ...
    >>> state.cleanup()
    """
    if configured is not None and configured.strip():
        _check_p256(configured, "QORGAU_VAPID_PRIVATE_KEY")
        return configured
    if environment != "development":
        raise ConfigError(
            "QORGAU_VAPID_PRIVATE_KEY is not set: Web Push needs a VAPID key outside"
            " development (make one with py_vapid or `openssl ecparam -name prime256v1"
            " -genkey | openssl pkcs8 -topk8 -nocrypt`)"
        )
    pem = local_secret(state_dir, DEV_VAPID_KEY_FILE, make=lambda: generate_vapid_key()[0])
    return _check_p256(pem, str(state_dir / DEV_VAPID_KEY_FILE))


def _check_p256(private: str, source: str) -> str:
    """``private`` itself if it is an EC P-256 private key; else `ConfigError` naming ``source``."""
    try:
        key = _load_vapid(private).private_key
    except ConfigError as exc:
        raise ConfigError(f"{source} is not a usable VAPID key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"{source} is not a usable VAPID key: it must be an EC P-256 key")
    return private


def public_key_b64url(private: Any) -> str:
    """The application server key browsers subscribe with (``applicationServerKey``).

    ``private`` is a py_vapid ``Vapid`` object, a PEM, or base64url raw/DER text.
    """
    vapid = _load_vapid(private)
    point = cast(ec.EllipticCurvePublicKey, vapid.public_key).public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(point)


def _fit(payload: dict[str, Any]) -> bytes:
    """JSON of ``payload`` within `MAX_PLAINTEXT`: digest items, then the message, give way first."""
    data = orjson.dumps(payload)
    if len(data) <= MAX_PLAINTEXT:
        return data
    slim = {**payload, "items": [], "items_count": len(payload.get("items") or ())}
    data = orjson.dumps(slim)
    if len(data) <= MAX_PLAINTEXT:
        return data
    slim["message"] = ""
    data = orjson.dumps(slim)
    if len(data) <= MAX_PLAINTEXT:
        return data
    # Only absurdly long names get here: keep what the app needs to show and link.
    keep = ("v", "change_id", "purpose", "enterprise_id", "alert_key", "severity", "ts", "language")
    core = {k: payload.get(k) for k in keep}
    core["title"] = str(payload.get("title", ""))[:200]
    core["body"] = str(payload.get("body", ""))[:1000]
    return orjson.dumps(core)


class WebPushChannel:
    """VAPID-signed, aes128gcm-encrypted Web Push over one shared `httpx.AsyncClient`.

    Parameters
    ----------
    vapid_private_key
        A py_vapid ``Vapid`` object, a PEM, or base64url raw (32 bytes) or DER text.
    subject
        The VAPID ``sub`` claim push services contact us by: ``mailto:...`` or ``https://...``.
    ttl_s
        How long a push service keeps a message for an offline device.
    timeout
        Seconds for connecting and for the whole answer.
    """

    name = "webpush"

    def __init__(
        self,
        *,
        vapid_private_key: Any,
        subject: str,
        ttl_s: int = 3600,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._vapid = _load_vapid(vapid_private_key)
        self._subject = subject
        self._ttl_s = ttl_s
        self._tokens: dict[str, tuple[str, float]] = {}  # audience -> (Authorization, expires)
        try:  # a bad subject would fail every send: refuse it at start
            self._authorization("https://push.example.com")
        except VapidException as exc:
            raise ConfigError(f"VAPID subject {subject!r}: {exc}") from exc
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False
        )

    @property
    def application_server_key(self) -> str:
        """The public key (base64url) for ``PushManager.subscribe``."""
        return public_key_b64url(self._vapid)

    def _authorization(self, audience: str) -> str:
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and cached[1] - now > _JWT_RENEW_S:
            return cached[0]
        expires = int(now) + _JWT_LIFETIME_S
        claims = {"aud": audience, "exp": expires, "sub": self._subject}
        header = str(self._vapid.sign(claims)["Authorization"])
        self._tokens[audience] = (header, float(expires))
        return header

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        return await self.send_payload(
            app_payload(notification, recipient), target, urgent=notification.critical
        )

    async def send_payload(
        self, payload: dict[str, Any], target: Target, *, urgent: bool = False
    ) -> SendResult:
        """One push of ``payload`` (JSON, fitted to the size push services take) to
        ``target``'s subscription — what `send` does with a notification's payload, and
        the API's test notification with its own."""
        endpoint = target.address
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            return SendResult(SendStatus.REJECTED, "push endpoint must be an http(s) URL")
        if not target.p256dh or not target.auth:
            return SendResult(SendStatus.REJECTED, "subscription has no p256dh/auth keys")
        subscription = {
            "endpoint": endpoint,
            "keys": {"p256dh": target.p256dh, "auth": target.auth},
        }
        try:
            body = WebPusher(subscription).encode(_fit(payload), "aes128gcm")["body"]
        except (WebPushException, ValueError, TypeError, binascii.Error) as exc:
            # Keys that do not decode to a P-256 point and a secret: this subscription
            # can never work, but it may be a client bug, so it is reported, not pruned.
            return SendResult(SendStatus.REJECTED, f"bad subscription keys: {short_error(exc)}")
        headers = {
            "Authorization": self._authorization(f"{parts.scheme}://{parts.netloc}"),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(self._ttl_s),
            "Urgency": "high" if urgent else "normal",
        }
        try:
            response = await self._client.post(endpoint, content=bytes(body), headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return SendResult(SendStatus.REJECTED, short_error(exc))
        except httpx.HTTPError as exc:
            return SendResult(SendStatus.RETRY, short_error(exc))
        status = classify_http(response.status_code, gone_on_404_410=True)
        return SendResult(
            status,
            "" if status is SendStatus.SENT else response.text[:300],
            http_status=response.status_code,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    async def close(self) -> None:
        if self._own_client:
            await self._client.aclose()
