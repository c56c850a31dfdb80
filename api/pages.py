"""Pages people look at: the control-room wall, served with everything it needs.

The wall (``/wall``) is a small static app — HTML, one script, one style sheet,
the region outlines — that talks to the same API as everyone else (sign-in,
alerts, the live feed, ``/status``). Nothing comes from the internet at run
time: a control room on a closed network sees the same page. Its alarm sounds
are made here (`tone`), not shipped as recordings: two short WAV files.
"""

from __future__ import annotations

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

__all__ = ["STATIC_URL", "mount_pages", "tone"]

STATIC_URL = "/static"
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

    @router.get(STATIC_URL + "/sounds/{name}.wav")
    async def sound(name: str) -> Response:
        if name not in ("critical", "fire"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such sound")
        return Response(
            _sound(name), media_type="audio/wav", headers={"Cache-Control": "max-age=86400"}
        )

    app.include_router(router)
    app.mount(STATIC_URL, StaticFiles(directory=_static_dir()), name="static")


# The wall loads only its own files and talks only to its own origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " media-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none';"
    " form-action 'self'"
)
