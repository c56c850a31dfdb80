"""Apprise: any service apprise knows by URL — Telegram (``tgram://``), ntfy
(``ntfy://``), SMS gateways, Slack, ``json://host:port/path``...

Title and body are in the recipient's language: the subject and the full
plain text of `alerts.texts.render`. Apprise reports success or failure but
not why, so every failure is a `SendStatus.RETRY` (the deliverer gives up
after its attempts); a URL apprise cannot parse is `SendStatus.REJECTED`.
Apprise URLs carry tokens: they never reach a log line from here.
"""

from __future__ import annotations

import apprise

from alerts.channels.base import SendResult, SendStatus, short_error
from alerts.notification import Notification, Recipient, Target
from alerts.texts import render

__all__ = ["AppriseChannel"]


class AppriseChannel:
    """One `apprise.Apprise` per send (a target is one URL), notified with ``async_notify``.

    Parameters
    ----------
    timeout
        Seconds apprise may spend on one notification.
    asset
        Apprise branding (application id, icons); Qorgau's by default.
    """

    name = "apprise"

    def __init__(self, *, timeout: float = 30.0, asset: apprise.AppriseAsset | None = None) -> None:
        self._timeout = timeout
        self._asset = asset or apprise.AppriseAsset(
            app_id="Qorgau", app_desc="Qorgau occupational-safety alerts"
        )

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        rendered = render(notification, recipient.language)
        service = apprise.Apprise(asset=self._asset)
        if not service.add(target.address):
            return SendResult(SendStatus.REJECTED, "apprise cannot use this URL")
        kind = apprise.NotifyType.FAILURE if notification.critical else apprise.NotifyType.WARNING
        if notification.action == "clear":
            kind = apprise.NotifyType.SUCCESS
        try:
            result = await service.async_notify(
                body=rendered.text,
                title=rendered.subject,
                notify_type=kind,
                body_format=apprise.NotifyFormat.TEXT,
                timeout=self._timeout,
            )
        except Exception as exc:  # a plugin's bug must not look like a crash of the deliverer
            return SendResult(SendStatus.RETRY, short_error(exc))
        with result:
            if result:
                return SendResult(SendStatus.SENT)
            return SendResult(SendStatus.RETRY, f"apprise: {result.status.name.lower()}")

    async def close(self) -> None:
        """Nothing to release: each send has its own Apprise object."""
