"""A real browser against a real API, for the page tests and `qorgau bench --wall`.

Playwright's own browser download is not assumed (a closed network cannot reach it):
Playwright drives the system's Chromium (``QORGAU_CHROMIUM`` to choose another), and the
API is served by uvicorn on a free port in a thread of its own, since a browser needs a
real socket.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import uvicorn

from api import create_app
from core.errors import ConfigError
from core.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser

__all__ = ["chromium", "chromium_executable", "serve_api"]

# No sandbox: CI and this machine run as root in a container; no GPU there either.
_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]


def chromium_executable() -> str | None:
    """The Chromium to drive, or None when this machine has none."""
    return os.environ.get("QORGAU_CHROMIUM") or shutil.which("chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (a Playwright ``Browser``); `ConfigError` when there is no
    Chromium or no Playwright, with what to install."""
    exe = chromium_executable()
    if exe is None:
        raise ConfigError(
            "no chromium on this machine: apt-get install chromium (or set QORGAU_CHROMIUM)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ConfigError("playwright is not installed: pip install 'qorgau[dev]'") from exc
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def serve_api(settings: Settings) -> Iterator[str]:
    """``create_app(settings)`` served by uvicorn on a free port, in a thread; its URL."""
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api-in-thread", daemon=True)
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
