"""Delivery channels behind one interface: Web Push, e-mail, webhook, MQTT, apprise.

Each channel makes one attempt per `Channel.send` and returns a `SendResult`
(sent, retry, rejected, gone); retries, the delivery log and idempotency
belong to `alerts.delivery.Deliverer`.
"""

from __future__ import annotations

from alerts.channels.apprise import AppriseChannel
from alerts.channels.base import Channel, SendResult, SendStatus, app_payload
from alerts.channels.email import EmailChannel
from alerts.channels.mqtt import MqttChannel, app_notify_topic
from alerts.channels.webhook import WebhookChannel, verify_signature
from alerts.channels.webpush import WebPushChannel, generate_vapid_key, public_key_b64url

__all__ = [
    "AppriseChannel",
    "Channel",
    "EmailChannel",
    "MqttChannel",
    "SendResult",
    "SendStatus",
    "WebPushChannel",
    "WebhookChannel",
    "app_notify_topic",
    "app_payload",
    "generate_vapid_key",
    "public_key_b64url",
    "verify_signature",
]
