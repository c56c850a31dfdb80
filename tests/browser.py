"""Pages in a real browser: Debian's Chromium driven by Playwright, and the API served by
uvicorn on a free port in a thread of its own (`qorgau.browser`, which the wall's bench
shares).

Playwright's own browser download cannot be reached here, so it is pointed at the
system's ``chromium`` (``QORGAU_CHROMIUM`` to choose another); without one the page
tests are skipped with the reason (``.ci/run`` installs it). Screenshots go to
``QORGAU_ARTIFACTS`` (default ``.artifacts/``), kept by CI as test artefacts.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from qorgau import browser
from qorgau.browser import serve_api
from tests.people import PASSWORD

__all__ = [
    "PASSWORD",
    "CuttableLink",
    "artifact",
    "chromium",
    "deliver_push",
    "screenshots",
    "serve_api",
    "shown_notifications",
    "tap_notification",
]

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


def artifact(name: str) -> Path:
    folder = Path(os.environ.get("QORGAU_ARTIFACTS", ".artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def screenshots(page: object, name: str, *, full_page: bool = False) -> None:
    """``name-phone.png`` and ``name-desktop.png``: the page as it is now at 360×740 and at
    1280×800; the page is left at the size it had."""
    size = page.viewport_size  # type: ignore[attr-defined]
    for label, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(viewport)  # type: ignore[attr-defined]
        page.wait_for_timeout(100)  # type: ignore[attr-defined]
        page.screenshot(path=str(artifact(f"{name}-{label}.png")), full_page=full_page)  # type: ignore[attr-defined]
    if size:
        page.set_viewport_size(size)  # type: ignore[attr-defined]


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (a Playwright ``Browser``); the test is skipped without one."""
    if browser.chromium_executable() is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with browser.chromium() as b:
        yield b


def deliver_push(context: Any, page: Any, origin: str, payload: dict[str, Any]) -> Any:
    """Hand ``payload`` (JSON) to the app's service worker as a push service would, through
    the DevTools protocol (no push service is reachable from here); the worker (a
    Playwright ``Worker``, to look inside it)."""
    cdp = context.new_cdp_session(page)
    found: list[str] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda e: found.extend(
            r["registrationId"] for r in e["registrations"] if r["scopeURL"].endswith("/app/")
        ),
    )
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 10
    while not found:
        assert time.monotonic() < deadline, "no service worker registration for /app/"
        page.wait_for_timeout(50)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": found[0], "data": json.dumps(payload)},
    )
    (worker,) = [w for w in context.service_workers if w.url.endswith("/app/sw.js")]
    return worker


def shown_notifications(worker: Any, page: Any, *, within_s: float = 10.0) -> list[dict[str, Any]]:
    """The notifications the service worker shows, once it shows any (``within_s`` at most)."""
    deadline = time.monotonic() + within_s
    while True:
        shown: list[dict[str, Any]] = worker.evaluate(
            """() => self.registration.getNotifications().then(ns => ns.map(n =>
                 ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                   sticky: n.requireInteraction})))"""
        )
        if shown:
            return shown
        assert time.monotonic() < deadline, "the service worker showed no notification"
        page.wait_for_timeout(50)


def tap_notification(worker: Any) -> None:
    """A tap on the first notification shown: the DevTools protocol cannot tap one, so its
    click is dispatched inside the service worker, on the notification it showed."""
    worker.evaluate(
        """() => self.registration.getNotifications().then(([n]) =>
             self.dispatchEvent(new NotificationEvent("notificationclick", {notification: n})))"""
    )


class CuttableLink:
    """A TCP proxy in front of ``target`` ("host:port") whose link the test can cut: every
    open connection dropped and new ones refused until `restore` — the network between a
    control room and the server failing, as the page sees it."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._open -= {src, dst}

    def cut(self) -> None:
        self._cut = True
        with self._lock:
            for s in list(self._open):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()
