"""E-mail: a bilingual multipart/alternative message (plain text and HTML) over SMTP.

The subject is in the recipient's language; the body carries both languages,
the recipient's first (`alerts.texts.render_email`). Each message gets a
``Message-ID`` derived from the delivery, so a retry after a lost ``250``
reply is recognisable as the same message. One SMTP connection per message:
alert mail is rare, and a fresh connection never inherits a broken one.

SMTP replies map to delivery statuses: 4xx and connection trouble are
`SendStatus.RETRY`, 5xx (a refused recipient, a refused sender, a failed
login) `SendStatus.REJECTED`.
"""

from __future__ import annotations

import hashlib
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

import aiosmtplib

from alerts.channels.base import SendResult, SendStatus, short_error
from alerts.notification import Notification, Recipient, Target
from alerts.texts import render_email
from core.errors import ConfigError

__all__ = ["EmailChannel", "build_message"]


def _valid_address(address: str) -> bool:
    if any(c in address for c in "\r\n<>,;") or address.count("@") != 1:
        return False
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        return False
    return True


def build_message(
    notification: Notification, recipient: Recipient, target: Target, *, sender: str
) -> EmailMessage:
    """The e-mail for one delivery: headers, plain-text part, HTML part."""
    rendered = render_email(notification, recipient.language)
    digest = hashlib.sha256(
        "\x1f".join((notification.change_id, recipient.key, target.address)).encode()
    ).hexdigest()[:32]
    domain = sender.rpartition("@")[2].strip(" >") or "qorgau.local"
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender
    msg["To"] = Address(display_name=recipient.name, addr_spec=target.address)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{digest}@{domain}>"
    msg["Content-Language"] = "ru, kk" if recipient.language == "ru" else "kk, ru"
    # Keeps vacation responders and mailing-list software from answering an alarm.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Qorgau-Change-Id"] = notification.change_id
    if notification.critical:
        msg["Importance"] = "high"
        msg["X-Priority"] = "1"
    # base64 keeps Cyrillic intact through relays without 8BITMIME.
    msg.set_content(rendered.text, charset="utf-8", cte="base64")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="base64")
    return msg


class EmailChannel:
    """SMTP delivery with aiosmtplib.

    Parameters
    ----------
    host, port
        The SMTP server (a relay or the provider's submission port).
    username, password
        Login, when the server wants one.
    use_tls
        Implicit TLS from the first byte (SMTPS, usually port 465).
    starttls
        Upgrade a plain connection with STARTTLS: True demands it, False never
        does, None upgrades when the server offers it.
    sender
        The ``From`` header, e.g. ``"Qorgau <qorgau@example.kz>"``.
    timeout
        Seconds per SMTP operation.
    """

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        starttls: bool | None = None,
        sender: str,
        timeout: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._use_tls = use_tls
        self._starttls = starttls
        self._sender = sender
        self._timeout = timeout

    @classmethod
    def from_url(
        cls, url: str, *, sender: str, starttls: bool | None = None, timeout: float = 10.0
    ) -> EmailChannel:
        """From ``smtp://user:password@host:port`` (``smtps://`` for implicit TLS).

        >>> ch = EmailChannel.from_url("smtps://bot:p%40ss@mail.example.kz", sender="q@example.kz")
        >>> ch._host, ch._port, ch._username, ch._password, ch._use_tls
        ('mail.example.kz', 465, 'bot', 'p@ss', True)
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(f"SMTP URL must be smtp://host[:port] or smtps://..., got {url!r}")
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=implicit,
            starttls=False if implicit else starttls,
            sender=sender,
            timeout=timeout,
        )

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        if not _valid_address(target.address):
            return SendResult(SendStatus.REJECTED, "not an e-mail address")
        message = build_message(notification, recipient, target, sender=self._sender)
        try:
            await aiosmtplib.send(
                message,
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                start_tls=self._starttls,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            temporary = bool(codes) and all(400 <= c < 500 for c in codes)
            status = SendStatus.RETRY if temporary else SendStatus.REJECTED
            return SendResult(status, short_error(exc))
        except aiosmtplib.SMTPResponseException as exc:
            status = SendStatus.RETRY if 400 <= exc.code < 500 else SendStatus.REJECTED
            return SendResult(status, short_error(exc))
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # connection refused or dropped, timeouts, TLS trouble: try again later
            return SendResult(SendStatus.RETRY, short_error(exc))
        return SendResult(SendStatus.SENT)

    async def close(self) -> None:
        """Nothing to release: every message has its own connection."""
