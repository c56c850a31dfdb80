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
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from qorgau import browser
from qorgau.browser import serve_api
from tests.people import PASSWORD

__all__ = ["PASSWORD", "CuttableLink", "artifact", "chromium", "screenshots", "serve_api"]

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
