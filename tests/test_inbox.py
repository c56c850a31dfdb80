"""`qorgau inbox`, the demo's post office, over real sockets: the notifier's own e-mail
channel sends to its SMTP side, the page lists and shows what arrived; as a stranger
would try it: markup in a subject, a made-up or climbing message key, an oversized
message, and arbitrary bytes as a message."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.channels.base import SendStatus
from alerts.channels.email import EmailChannel
from alerts.notification import Recipient, Target
from qorgau.inbox import MAX_MESSAGE_BYTES, Inbox
from tests.alerts.conftest import make_notification


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, str]]:
    """``qorgau inbox`` as the demo starts it: a process of its own; (maildir, smtp, page)."""
    folder = tmp_path_factory.mktemp("inbox") / "mail"
    smtp, page = _free_port(), _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qorgau",
            "inbox",
            "--dir",
            str(folder),
            "--smtp-port",
            str(smtp),
            "--http-port",
            str(page),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, "qorgau inbox exited"
            try:
                httpx.get(f"http://127.0.0.1:{page}/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the inbox page never answered"
                time.sleep(0.1)
        yield folder, smtp, f"http://127.0.0.1:{page}"
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_notification_sent_by_the_email_channel_is_listed_and_readable(
    inbox: tuple[Path, int, str],
) -> None:
    _folder, smtp, page = inbox
    channel = EmailChannel.from_url(f"smtp://127.0.0.1:{smtp}", sender="Qorgau <q@qorgau.example>")
    hostile = "<script>alert(1)</script> CO 150 mg/m3"
    result = await channel.send(
        make_notification(message=hostile, sensor_id="E001-S01", value=150.0),
        Recipient(key="user:1", name="Officer <b>E001</b>", language="ru"),
        Target("email", "officer.e001@qorgau.example"),
    )
    await channel.close()
    assert result.status == SendStatus.SENT, result.detail
    async with httpx.AsyncClient(base_url=page, timeout=5) as client:
        listing = await client.get("/")
        key = listing.text.split('href="m/', 1)[1].split('"', 1)[0]
        shown = await client.get(f"/m/{key}")
    assert listing.status_code == 200
    assert "officer.e001@qorgau.example" in listing.text
    assert "<b>E001</b>" not in listing.text and "&lt;b&gt;E001&lt;/b&gt;" in listing.text
    assert "script-src" not in listing.headers["content-security-policy"]  # no script at all
    assert shown.status_code == 200
    assert "150" in shown.text and "E001-S01" in shown.text
    assert "<script>" not in shown.text and "&lt;script&gt;" in shown.text


@pytest.mark.parametrize(
    "key", ["nope", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "1.M1P1Q1.x%00", "new"]
)
def test_unknown_or_climbing_keys_are_404(inbox: tuple[Path, int, str], key: str) -> None:
    r = httpx.get(f"{inbox[2]}/m/{key}", timeout=5)
    assert r.status_code == 404
    assert "root:" not in r.text


@pytest.mark.parametrize("greeting", ["ehlo", "helo"])
def test_an_oversized_message_is_refused_and_not_stored(
    inbox: tuple[Path, int, str], greeting: str
) -> None:
    folder, smtp, _page = inbox
    before = len(Inbox(folder))
    body = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * (MAX_MESSAGE_BYTES // 100 + 10)
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        getattr(client, greeting)()  # HELO: no SIZE announced, refused while it streams in
        # Refused when announced (ESMTP SIZE) or when the data passes the limit.
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            client.sendmail("a@qorgau.example", ["b@qorgau.example"], body)
        assert refused.value.smtp_code == 552
    assert len(Inbox(folder)) == before


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=2000))
def test_any_bytes_as_a_message_never_break_the_page(
    inbox: tuple[Path, int, str], raw: bytes
) -> None:
    folder, smtp, page = inbox
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
        # SMTP's own framing: a lone "." line ends the data, CR/LF normalised.
        client.sendmail("a@qorgau.example", ["b@qorgau.example"], raw)
    listing = httpx.get(f"{page}/", timeout=5)
    assert listing.status_code == 200
    for key in Inbox(folder).newest(limit=3):
        assert httpx.get(f"{page}/m/{key.key}", timeout=5).status_code == 200
