"""Each delivery channel against a real transport: SMTP, HTTP, Web Push, MQTT, apprise.

Nothing is mocked: an aiosmtpd server receives the e-mail, aiohttp servers
play the webhook receiver, the push service and the apprise JSON endpoint,
and a paho client subscribed on a real Mosquitto receives the MQTT message.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import time
from email.message import EmailMessage
from typing import Any

import http_ece
import jwt
import orjson
import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion

from alerts.channels import (
    AppriseChannel,
    EmailChannel,
    MqttChannel,
    SendStatus,
    WebhookChannel,
    WebPushChannel,
    app_notify_topic,
    generate_vapid_key,
    public_key_b64url,
    verify_signature,
)
from alerts.channels.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from alerts.notification import Recipient, Target
from alerts.texts import render
from tests.alerts.conftest import (
    free_port,
    http_receiver,
    make_notification,
    subscription_keys,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- e-mail -------------------------------------------------------------------------------


async def test_email_is_bilingual_multipart_and_escaped(smtp_server: Any) -> None:
    controller, mailbox = smtp_server
    channel = EmailChannel(
        host="127.0.0.1",
        port=controller.port,
        sender="Qorgau <qorgau@example.kz>",
        starttls=False,
        timeout=5,
    )
    n = make_notification(
        enterprise_name='Завод <№1> & "Ко"',
        message="CO <script>alert(1)</script> over 20 mg/m3",
    )
    recipient = Recipient("user:7", "Айгүл Сейітова", "kk")
    result = await channel.send(n, recipient, Target("email", "aigul@example.kz"))
    assert result.status is SendStatus.SENT, result

    assert len(mailbox.envelopes) == 1
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == "qorgau@example.kz"
    assert envelope.rcpt_tos == ["aigul@example.kz"]
    msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    kk, ru = render(n, "kk"), render(n, "ru")
    assert msg["Subject"] == kk.subject  # the recipient's language
    assert msg["Subject"].startswith("Дабыл: Көміртек оксиді")
    assert msg["From"] == "Qorgau <qorgau@example.kz>"
    assert "aigul@example.kz" in msg["To"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].endswith("@example.kz>")
    assert msg.get_content_type() == "multipart/alternative"

    plain_part = msg.get_body(preferencelist=("plain",))
    html_part = msg.get_body(preferencelist=("html",))
    assert plain_part is not None and html_part is not None
    plain, html = plain_part.get_content(), html_part.get_content()
    # Both languages in both parts, Kazakh (the recipient's) first.
    assert plain.index("Қауіпті өндірістік фактор") < plain.index("Опасный производственный фактор")
    assert html.index("Қауіпті өндірістік фактор") < html.index("Опасный производственный фактор")
    assert "250 мг/м³" in plain and "250 мг/м³" in html
    assert kk.subject in plain and ru.subject in plain
    # Data never becomes markup.
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Завод &lt;№1&gt; &amp; &quot;Ко&quot;" in html
    assert "<script>" in plain  # the plain part shows the text as it is


async def test_email_refusals_are_rejected_or_retried(smtp_server: Any) -> None:
    controller, _ = smtp_server
    channel = EmailChannel(host="127.0.0.1", port=controller.port, sender="q@example.kz")
    n, who = make_notification(), Recipient("user:1", "Ivan")
    refused = await channel.send(n, who, Target("email", "nobody@example.kz"))
    assert refused.status is SendStatus.REJECTED and "550" in refused.detail
    busy = await channel.send(n, who, Target("email", "busy@example.kz"))
    assert busy.status is SendStatus.RETRY and "451" in busy.detail
    bad = await channel.send(n, who, Target("email", "not an address"))
    assert bad.status is SendStatus.REJECTED
    down = EmailChannel(host="127.0.0.1", port=free_port(), sender="q@example.kz", timeout=2)
    unreachable = await down.send(n, who, Target("email", "ivan@example.kz"))
    assert unreachable.status is SendStatus.RETRY


# --- webhook ------------------------------------------------------------------------------


async def test_webhook_is_signed_and_verifiable() -> None:
    async with http_receiver([204]) as receiver:
        channel = WebhookChannel(default_secret="default-secret-0123456789abcdef")
        n = make_notification()
        recipient = Recipient("user:3", "Control room", "ru")
        target = Target("webhook", f"{receiver.url}/hooks/qorgau", secret="per-target-secret")
        try:
            result = await channel.send(n, recipient, target)
        finally:
            await channel.close()
    assert result.status is SendStatus.SENT and result.http_status == 204
    (request,) = receiver.requests
    assert request.method == "POST" and request.path == "/hooks/qorgau"
    assert request.headers["Content-Type"] == "application/json"
    ts, sig = request.headers[TIMESTAMP_HEADER], request.headers[SIGNATURE_HEADER]
    assert abs(int(ts) - time.time()) < 60
    assert sig.startswith("sha256=")
    assert verify_signature("per-target-secret", ts, request.body, sig)
    # A tampered body, another key or an old timestamp fail.
    assert not verify_signature("per-target-secret", ts, request.body.replace(b"250", b"25"), sig)
    assert not verify_signature("default-secret-0123456789abcdef", ts, request.body, sig)
    assert not verify_signature("per-target-secret", ts, request.body, sig, now=int(ts) + 301)
    assert not verify_signature("per-target-secret", "yesterday", request.body, sig)
    body = orjson.loads(request.body)
    assert body["change_id"] == n.change_id
    assert body["recipient"] == "user:3"
    assert body["ts"] == "2026-03-01T08:00:00Z"
    assert body["value"] == 250.0 and body["unit"] == "mg/m3"
    assert body["title"] == render(n, "ru").subject
    assert len(request.headers[IDEMPOTENCY_HEADER]) == 32


async def test_webhook_statuses_map_to_results() -> None:
    channel = WebhookChannel(default_secret="s" * 32, timeout=2)
    n, who = make_notification(), Recipient("user:3", "x")
    try:
        cases = [
            (400, SendStatus.REJECTED),
            (404, SendStatus.REJECTED),
            (429, SendStatus.RETRY),
            (503, SendStatus.RETRY),
        ]
        for status, expected in cases:
            async with http_receiver([status], headers={"Retry-After": "7"}) as receiver:
                result = await channel.send(n, who, Target("webhook", receiver.url + "/h"))
            assert (result.status, result.http_status) == (expected, status)
            assert result.retry_after == 7.0
        refused = await channel.send(n, who, Target("webhook", f"http://127.0.0.1:{free_port()}/h"))
        assert refused.status is SendStatus.RETRY and "ConnectError" in refused.detail
        wrong = await channel.send(n, who, Target("webhook", "ftp://example.kz/h"))
        assert wrong.status is SendStatus.REJECTED
    finally:
        await channel.close()


# --- Web Push -----------------------------------------------------------------------------


async def test_webpush_is_encrypted_for_the_subscription_and_vapid_signed() -> None:
    vapid_pem, vapid_public = generate_vapid_key()
    private, p256dh, auth, auth_b64 = subscription_keys()
    async with http_receiver([201]) as push_service:
        channel = WebPushChannel(
            vapid_private_key=vapid_pem, subject="mailto:ops@qorgau.kz", ttl_s=600
        )
        n = make_notification()
        target = Target(
            "webpush", f"{push_service.url}/wpush/v2/abc123", p256dh=p256dh, auth=auth_b64
        )
        try:
            result = await channel.send(n, Recipient("user:9", "Ерлан", "kk"), target)
        finally:
            await channel.close()
    assert result.status is SendStatus.SENT and result.http_status == 201
    (request,) = push_service.requests
    assert request.path == "/wpush/v2/abc123"
    assert request.headers["Content-Encoding"] == "aes128gcm"
    assert request.headers["TTL"] == "600"
    assert request.headers["Urgency"] == "high"  # critical

    # RFC 8292: "vapid t=<JWT>, k=<public key>"; the JWT verifies against k, for this origin.
    scheme, _, params = request.headers["Authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == vapid_public == public_key_b64url(vapid_pem)
    verifier = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), _b64url_decode(fields["k"])
    )
    claims = jwt.decode(fields["t"], key=verifier, algorithms=["ES256"], audience=push_service.url)
    assert claims["sub"] == "mailto:ops@qorgau.kz"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600

    # RFC 8291: only the subscription's private key and auth secret open the body.
    plaintext = http_ece.decrypt(
        request.body, private_key=private, auth_secret=auth, version="aes128gcm"
    )
    payload = orjson.loads(plaintext)
    assert payload["change_id"] == n.change_id
    assert payload["alert_key"] == n.alert_key
    assert payload["severity"] == "critical"
    assert payload["title"] == render(n, "kk").subject
    assert payload["body"] == render(n, "kk").short
    assert payload["language"] == "kk"


async def test_webpush_gone_and_bad_keys() -> None:
    vapid_pem, _ = generate_vapid_key()
    _, p256dh, _, auth_b64 = subscription_keys()
    channel = WebPushChannel(vapid_private_key=vapid_pem, subject="mailto:ops@qorgau.kz")
    n, who = make_notification(severity="warning"), Recipient("user:9", "x")
    try:
        cases = [
            (410, SendStatus.GONE),
            (404, SendStatus.GONE),
            (413, SendStatus.REJECTED),
            (500, SendStatus.RETRY),
        ]
        for status, expected in cases:
            async with http_receiver([status]) as push_service:
                target = Target("webpush", push_service.url + "/s", p256dh=p256dh, auth=auth_b64)
                result = await channel.send(n, who, target)
            assert result.status is expected, (status, result)
            assert push_service.requests[0].headers["Urgency"] == "normal"  # a warning
        bad = await channel.send(
            n, who, Target("webpush", "https://push.example/s", p256dh="AAAA", auth=auth_b64)
        )
        assert bad.status is SendStatus.REJECTED
    finally:
        await channel.close()


# --- MQTT ---------------------------------------------------------------------------------


async def test_mqtt_evacuation_reaches_the_workers_app(mqtt_broker: tuple[str, int]) -> None:
    host, port = mqtt_broker
    topic = app_notify_topic("E001", "W17")
    assert topic == "qorgau/v1/E001/app/W17/notify"
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()
    subscribed = asyncio.Event()

    # The worker's app: subscribes once connected, hands messages to the event loop.
    def on_connect(client: mqtt.Client, *_: Any) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(*_: Any) -> None:
        loop.call_soon_threadsafe(subscribed.set)

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        loop.call_soon_threadsafe(received.put_nowait, bytes(msg.payload))

    app = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-app-{time.monotonic_ns()}")
    app.on_connect = on_connect
    app.on_subscribe = on_subscribe
    app.on_message = on_message
    app.connect(host, port)
    app.loop_start()
    channel = MqttChannel(host=host, port=port, timeout=5)
    n = make_notification(purpose="evacuate", action=None, alert_kind="fire", hazard="smoke")
    try:
        await asyncio.wait_for(subscribed.wait(), 5)
        result = await channel.send(
            n, Recipient("app:E001/W17", "W17", "kk"), Target("mqtt", topic)
        )
        assert result.status is SendStatus.SENT, result
        while True:  # others may share the broker: wait for ours
            payload = orjson.loads(await asyncio.wait_for(received.get(), 5))
            if payload["change_id"] == n.change_id:
                break
    finally:
        await channel.close()
        app.disconnect()
        await asyncio.to_thread(app.loop_stop)
    assert payload["purpose"] == "evacuate"
    assert payload["zone_id"] == "E001-Z02"
    assert payload["body"] == "ЭВАКУАЦИЯ! E001-Z02 аймағынан дереу шығыңыз!"


async def test_mqtt_without_broker_is_a_retry() -> None:
    channel = MqttChannel(host="127.0.0.1", port=free_port(), timeout=0.5)
    n = make_notification()
    try:
        result = await channel.send(n, Recipient("app:E001/W1", "W1"), Target("mqtt", "a/b"))
        assert result.status is SendStatus.RETRY and "not connected" in result.detail
        wildcard = await channel.send(n, Recipient("app:E001/W1", "W1"), Target("mqtt", "a/#"))
        assert wildcard.status is SendStatus.REJECTED
    finally:
        await channel.close()


# --- apprise ------------------------------------------------------------------------------


async def test_apprise_json_url_gets_title_and_body_in_the_recipients_language() -> None:
    channel = AppriseChannel(timeout=5)
    n = make_notification()
    async with http_receiver([200]) as receiver:
        url = receiver.url.replace("http://", "json://") + "/apprise/in"
        result = await channel.send(n, Recipient("user:5", "Ivan", "ru"), Target("apprise", url))
    assert result.status is SendStatus.SENT, result
    (request,) = receiver.requests
    assert request.path == "/apprise/in"
    body = orjson.loads(request.body)
    ru = render(n, "ru")
    assert body["title"] == ru.subject
    assert body["message"] == ru.text
    assert body["type"] == "failure"  # critical

    async with http_receiver([500]) as receiver:
        url = receiver.url.replace("http://", "json://") + "/in"
        failed = await channel.send(n, Recipient("user:5", "Ivan"), Target("apprise", url))
    assert failed.status is SendStatus.RETRY
    unusable = await channel.send(n, Recipient("user:5", "Ivan"), Target("apprise", "nope"))
    assert unusable.status is SendStatus.REJECTED
