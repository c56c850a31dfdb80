"""Real transports for the delivery tests: a local HTTP receiver, an MQTT broker, a pool.

The HTTP receiver is a small aiohttp server on a free port that records every
request and answers with a scripted list of statuses (the last one repeats).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from psycopg_pool import AsyncConnectionPool

from alerts.channels.webpush import b64url
from alerts.notification import Notification
from core.catalogue import load_catalogue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def make_notification(**overrides: Any) -> Notification:
    """A critical CO threshold alert with a unique change id (tests share the database)."""
    key = f"E001-S07|threshold|{uuid.uuid4().hex}"
    base = Notification(
        change_id=f"{key}|open",
        purpose="alert",
        enterprise_id="E001",
        enterprise_name="Temirtau steel works",
        alert_key=key,
        action="open",
        alert_kind="threshold",
        severity="critical",
        hazard="co",
        sensor_id="E001-S07",
        zone_id="E001-Z02",
        value=250.0,
        unit="mg/m3",
        limit=20.0,
        ts=datetime(2026, 3, 1, 8, 0, tzinfo=UTC),
        message="Carbon monoxide 250 mg/m3 over the threshold 20 mg/m3",
        link="http://127.0.0.1:8000/api/v1/alerts/1",
        created_monotonic=time.monotonic(),
    )
    n = replace(base, **overrides)
    if "hazard_name" not in overrides and n.hazard in _CATALOGUE:  # as the dispatcher fills it
        n = replace(n, hazard_name=_CATALOGUE[n.hazard].name_ru)
    return n


_CATALOGUE = load_catalogue()


@dataclass(slots=True)
class Captured:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class Receiver:
    """Records requests; answers ``statuses`` in turn (the last repeats) after ``delay_s``."""

    url: str = ""
    statuses: list[int] = field(default_factory=lambda: [200])
    delay_s: float = 0.0
    extra_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Captured] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = len(self.requests)
        self.requests.append(Captured(request.method, request.path, dict(request.headers), body))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.statuses[min(index, len(self.statuses) - 1)]
        return web.Response(status=status, text=f"status {status}", headers=self.extra_headers)


@asynccontextmanager
async def http_receiver(
    statuses: list[int] | None = None,
    *,
    delay_s: float = 0.0,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[Receiver]:
    """A real HTTP server on 127.0.0.1; ``receiver.url`` is its base URL (no trailing slash)."""
    receiver = Receiver(statuses=statuses or [200], delay_s=delay_s, extra_headers=headers or {})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    receiver.url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()


class _Mailbox:
    """An aiosmtpd handler: keeps accepted messages; refuses recipients by their local part."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        if address.startswith("busy@"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
async def smtp_server() -> Any:
    """A real SMTP server (aiosmtpd) on a free port: ``(controller, mailbox)``."""
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    await asyncio.to_thread(controller.start)
    try:
        yield controller, mailbox
    finally:
        await asyncio.to_thread(controller.stop)


def subscription_keys() -> tuple[ec.EllipticCurvePrivateKey, str, bytes, str]:
    """What a browser makes when it subscribes: a P-256 key pair and a 16-byte auth secret."""
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = os.urandom(16)
    return private, b64url(public), auth, b64url(auth)


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool[Any]]:
    p: AsyncConnectionPool[Any] = AsyncConnectionPool(
        database_url, min_size=1, max_size=8, open=False
    )
    await p.open(wait=True)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """The local Mosquitto on 127.0.0.1:1883, or one started here on a free port."""
    if _listening("127.0.0.1", 1883):
        yield ("127.0.0.1", 1883)
        return
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if binary is None:
        pytest.skip("no MQTT broker on 127.0.0.1:1883 and no mosquitto to start")
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 5
        while not _listening("127.0.0.1", port):
            if time.monotonic() > deadline:
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
