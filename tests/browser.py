"""Pages in a real browser: Debian's Chromium driven by Playwright, and the API served by
uvicorn on a free port in a thread of its own (the browser needs a real socket).

Playwright's own browser download cannot be reached here, so it is pointed at the
system's ``chromium`` (``QORGAU_CHROMIUM`` to choose another); without one the page
tests are skipped with the reason (``.ci/run`` installs it). Screenshots go to
``QORGAU_ARTIFACTS`` (default ``.artifacts/``), kept by CI as test artefacts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from api import create_app
from core.settings import Settings
from tests.people import PASSWORD

__all__ = ["PASSWORD", "CuttableLink", "artifact", "chromium", "serve_api"]


def _executable() -> str | None:
    return os.environ.get("QORGAU_CHROMIUM") or shutil.which("chromium")


def artifact(name: str) -> Path:
    folder = Path(os.environ.get("QORGAU_ARTIFACTS", ".artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (a Playwright ``Browser``)."""
    exe = _executable()
    if exe is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=exe,
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve_api(settings: Settings) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn on a free port, in a thread; its URL."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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
