"""Pages people look at: the control-room wall and the people's app, served with
everything they need.

The wall (``/wall``) is a small static app — HTML, one script, one style sheet,
the region outlines — that talks to the same API as everyone else (sign-in,
alerts, the live feed, ``/status``). Nothing comes from the internet at run
time: a control room on a closed network sees the same page. Its alarm sounds
are made here (`tone`), not shipped as recordings: two short WAV files.

The people's app (``/app/``) is an installable web app for inspectors, safety
officers and workers: its files under ``/app/`` (the service worker must live
there to control the app), the service worker stamped with a digest of the
app's files so that a new release is a new worker (`app_version`).
"""

from __future__ import annotations

import hashlib
import io
import math
import wave
from array import array
from functools import cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, status
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["APP_URL", "STATIC_URL", "app_version", "mount_pages", "tone"]

STATIC_URL = "/static"
APP_URL = "/app/"
_APP_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".webmanifest": "application/manifest+json",
}
_RATE = 16000  # samples per second: plenty for an alarm tone, small files


def _static_dir() -> Path:
    return Path(str(resources.files("api").joinpath("static")))


def tone(parts: list[tuple[float, float]], *, volume: float = 0.6) -> bytes:
    """A mono 16-bit WAV of ``(frequency Hz, seconds)`` parts (0 Hz: silence), each faded
    in and out over 5 ms so that it does not click.

    >>> data = tone([(880.0, 0.1), (0.0, 0.05)])
    >>> data[:4], data[8:12], len(data) - 44 == 2 * round(0.15 * _RATE)
    (b'RIFF', b'WAVE', True)
    """
    samples = array("h")
    fade = int(0.005 * _RATE)
    for freq, seconds in parts:
        n = round(seconds * _RATE)
        for i in range(n):
            if freq <= 0:
                samples.append(0)
                continue
            env = min(1.0, i / fade, (n - 1 - i) / fade) if fade else 1.0
            v = volume * env * math.sin(2 * math.pi * freq * i / _RATE)
            samples.append(int(32767 * v))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(_RATE)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


@cache
def _sound(name: str) -> bytes:
    if name == "critical":  # two tones, high-low, like a hospital's urgent call
        return tone([(988.0, 0.25), (0.0, 0.05), (740.0, 0.25), (0.0, 0.45)])
    # fire: three fast rising beeps, unmistakably different
    beeps: list[tuple[float, float]] = []
    for f in (1200.0, 1400.0, 1600.0):
        beeps += [(f, 0.12), (0.0, 0.06)]
    return tone([*beeps, (0.0, 0.4)])


def _app_dir() -> Path:
    return _static_dir() / "app"


@cache
def app_version() -> str:
    """A digest of the app's files: changes with every release that changes the app.

    >>> len(app_version())
    12
    """
    digest = hashlib.sha256()
    for path in sorted(_app_dir().iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


@cache
def _app_files() -> frozenset[str]:
    return frozenset(p.name for p in _app_dir().iterdir() if p.suffix in _APP_TYPES)


def mount_pages(app: FastAPI) -> None:
    """The wall at ``/wall``, its files under `STATIC_URL`, and ``/`` leading to it."""
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    async def root() -> RedirectResponse:
        return RedirectResponse("/wall", status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @router.get("/wall")
    async def wall() -> FileResponse:
        return FileResponse(
            _static_dir() / "wall" / "index.html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": _CSP},
        )

    @router.get("/app", include_in_schema=False)
    async def app_root() -> RedirectResponse:
        return RedirectResponse(APP_URL, status_code=status.HTTP_308_PERMANENT_REDIRECT)

    @router.get(APP_URL)
    async def app_page() -> FileResponse:
        return FileResponse(
            _app_dir() / "index.html",
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": _APP_CSP},
        )

    @router.get(APP_URL + "sw.js")
    async def app_worker() -> Response:
        # Never cached by the browser's HTTP cache: an update check must see a new release.
        body = (_app_dir() / "sw.js").read_text().replace("__VERSION__", app_version())
        return Response(
            body,
            media_type=_APP_TYPES[".js"],
            headers={"Cache-Control": "no-cache", "Content-Security-Policy": _APP_CSP},
        )

    @router.get(APP_URL + "{name}")
    async def app_file(name: str) -> FileResponse:
        if name not in _app_files() or name == "sw.js":
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such file")
        return FileResponse(
            _app_dir() / name,
            media_type=_APP_TYPES[Path(name).suffix],
            headers={"Cache-Control": "no-cache"},
        )

    @router.get(STATIC_URL + "/sounds/{name}.wav")
    async def sound(name: str) -> Response:
        if name not in ("critical", "fire"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sound")
        return Response(
            _sound(name), media_type="audio/wav", headers={"Cache-Control": "max-age=86400"}
        )

    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=_static_dir()), name="static")


# The app: its own files, its own origin; its service worker and manifest from there too.
_APP_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " media-src 'self'; connect-src 'self'; worker-src 'self'; manifest-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

# The wall loads only its own files and talks only to its own origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
    " form-action 'self'"
)
