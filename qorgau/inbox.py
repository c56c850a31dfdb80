"""``qorgau inbox``: the demo's post office — a local SMTP server and a page to read its mail.

The demo gives its users e-mail addresses here, so every notification the
notifier sends (alarm, escalation, reminder, all-clear) lands somewhere a
newcomer can read it, without an internet mail server: SMTP on localhost
(`aiosmtpd`), each message kept as a file in a Maildir (``STATE/inbox``,
readable by any mail client too), and a page listing them newest first that
shows a message's headers and its plain-text part.

It is a development tool: it listens on 127.0.0.1 only unless told otherwise,
accepts messages up to `MAX_MESSAGE_BYTES`, keeps the newest `KEEP_MESSAGES`,
and never renders a message's HTML (a subject or body carrying markup is shown
as text). A deployment points ``QORGAU_SMTP_URL`` at its real mail server.
"""

from __future__ import annotations

import email
import email.policy
import html
import mailbox
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

__all__ = ["KEEP_MESSAGES", "MAX_MESSAGE_BYTES", "Inbox", "InboxMessage", "inbox_app"]

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 1 << 20
KEEP_MESSAGES = 5_000
LIST_NEWEST = 200
REFRESH_S = 5

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"


@dataclass(frozen=True, slots=True)
class InboxMessage:
    key: str
    received: datetime
    sender: str
    to: str
    subject: str
    text: str


def _received(key: str) -> float:
    # Maildir names begin with the delivery time in seconds ("1733600000.M123P45Q6.host").
    head = key.split(".", 1)[0]
    return float(head) if head.isdigit() else 0.0


class Inbox:
    """The Maildir at ``path``: what the SMTP side stores and the page reads."""

    def __init__(self, path: Path, *, keep: int = KEEP_MESSAGES) -> None:
        self.path = path
        self.keep = keep
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(path, create=True)
        for sub in ("tmp", "new", "cur"):  # also when the folder was there, empty
            (path / sub).mkdir(exist_ok=True)

    def add(self, raw: bytes) -> str:
        """Store one message as received; the oldest beyond `keep` are removed."""
        with self._lock:
            key = self._box.add(mailbox.MaildirMessage(raw))
            keys = self._keys()
            for old in keys[self.keep :]:
                self._box.discard(old)
        return key

    def _keys(self) -> list[str]:
        """Newest first."""
        return sorted(self._box.keys(), key=lambda k: (_received(k), k), reverse=True)

    def __len__(self) -> int:
        with self._lock:
            return len(self._box)

    def newest(self, limit: int = LIST_NEWEST) -> list[InboxMessage]:
        with self._lock:
            keys = self._keys()[:limit]
            found = []
            for key in keys:
                message = self._read(key)
                if message is not None:
                    found.append(message)
            return found

    def get(self, key: str) -> InboxMessage | None:
        with self._lock:
            return self._read(key)

    def _read(self, key: str) -> InboxMessage | None:
        try:
            with self._box.get_file(key) as fh:
                raw = fh.read()
        except (KeyError, OSError):
            return None
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        try:
            when = parsedate_to_datetime(str(msg["Date"]))
        except (TypeError, ValueError):
            when = datetime.fromtimestamp(_received(key), UTC)
        body = msg.get_body(preferencelist=("plain",))
        try:
            text = body.get_content() if body is not None else ""
        except (LookupError, ValueError):
            text = "(this message's text cannot be decoded)"
        return InboxMessage(
            key=key,
            received=when,
            sender=str(msg.get("From", "")),
            to=str(msg.get("To", "")),
            subject=str(msg.get("Subject", "")),
            text=str(text),
        )


class _Handler:
    """aiosmtpd's handler: every accepted message goes into the inbox."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        try:
            key = self.inbox.add(raw)
        except OSError as exc:  # a full disk: temporary, the sender keeps it and retries
            log.error("mail not stored", error=str(exc))
            return "451 Requested action aborted: local error in processing"
        log.info("mail received", key=key, to=list(envelope.rcpt_tos), size=len(raw))
        return "250 Message accepted for delivery"


def _page(title: str, body: str, *, refresh: bool = False) -> HTMLResponse:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font: 16px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #111; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; }}
td.when {{ white-space: nowrap; font-variant-numeric: tabular-nums; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 1rem; }}
.muted {{ color: #666; }}
</style></head><body>{body}</body></html>"""
    return HTMLResponse(doc, headers={"Content-Security-Policy": _CSP})


def inbox_app(inbox: Inbox) -> Starlette:
    """The page: ``/`` lists the newest messages, ``/m/{key}`` shows one."""

    async def listing(_request: Request) -> Response:
        messages = inbox.newest()
        total = len(inbox)
        rows = "".join(
            f'<tr><td class="when">{m.received.astimezone():%Y-%m-%d %H:%M:%S}</td>'
            f"<td>{html.escape(m.to)}</td>"
            f'<td><a href="m/{html.escape(m.key, quote=True)}">'
            f"{html.escape(m.subject) or '(no subject)'}</a></td></tr>"
            for m in messages
        )
        shown = f"the newest {len(messages)} of {total}" if total > len(messages) else str(total)
        body = (
            "<h1>Qorgau demo inbox</h1>"
            f'<p class="muted">Every e-mail the notifier sent: {shown} message(s); '
            f"this page reloads every {REFRESH_S} s. Stored in {html.escape(str(inbox.path))}.</p>"
            + (
                f"<table><tr><th>received</th><th>to</th><th>subject</th></tr>{rows}</table>"
                if rows
                else "<p>No notifications yet. They come when an alarm is raised.</p>"
            )
        )
        return _page("Qorgau demo inbox", body, refresh=True)

    async def show(request: Request) -> Response:
        message = inbox.get(request.path_params["key"])
        if message is None:
            return Response("no such message", status_code=404, media_type="text/plain")
        body = (
            '<p><a href="../">← inbox</a></p>'
            f"<h1>{html.escape(message.subject) or '(no subject)'}</h1>"
            f"<p><b>From</b> {html.escape(message.sender)}<br><b>To</b> {html.escape(message.to)}"
            f"<br><b>Date</b> {message.received.astimezone():%Y-%m-%d %H:%M:%S %Z}</p>"
            f"<pre>{html.escape(message.text)}</pre>"
        )
        return _page(message.subject or "message", body)

    return Starlette(routes=[Route("/", listing), Route("/m/{key}", show)])


def serve_inbox(path: Path, *, host: str, smtp_port: int, http_port: int) -> None:
    """Run the SMTP side in its own thread and the page in this one, until interrupted."""
    import uvicorn
    from aiosmtpd.controller import Controller

    inbox = Inbox(path)
    smtp = Controller(
        _Handler(inbox), hostname=host, port=smtp_port, data_size_limit=MAX_MESSAGE_BYTES
    )
    smtp.start()
    log.info("inbox listening", smtp=f"{host}:{smtp_port}", page=f"http://{host}:{http_port}/")
    try:
        uvicorn.run(
            inbox_app(inbox), host=host, port=http_port, log_level="warning", access_log=False
        )
    finally:
        smtp.stop()
