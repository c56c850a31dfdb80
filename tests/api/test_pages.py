"""The wall's page and files as a stranger asks for them: nothing outside api/static, no
CDN in /docs, the page's own Content-Security-Policy."""

from __future__ import annotations

import re

import pytest

from core.settings import Settings
from tests.asgi import serve


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(_env_file=None, database_url=database_url)  # type: ignore[call-arg]


async def test_the_wall_and_its_files_are_served_with_nothing_else(settings: Settings) -> None:
    async with serve(settings) as client:
        r = await client.get("/wall")
        assert r.status_code == 200 and "<title>Qorgau" in r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert (await client.get("/")).headers["location"] == "/wall"
        js = await client.get("/static/wall/wall.js")
        assert js.status_code == 200 and "EventSource" in js.text
        wav = await client.get("/static/sounds/critical.wav")
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        assert wav.headers["content-type"] == "audio/wav"
        assert (await client.get("/static/sounds/fire.wav")).content != wav.content
        for path in (
            "/static/sounds/siren.wav",
            "/static/sounds/..%2f..%2fpages.py.wav",
            "/static/../pages.py",
            "/static/%2e%2e/pages.py",
            "/static/wall/%2e%2e/%2e%2e/main.py",
            "/static/wall/..%2f..%2fmain.py",
        ):
            r = await client.get(path)
            assert r.status_code == 404, path
            assert "import" not in r.text, path


async def test_docs_load_nothing_from_the_internet(settings: Settings) -> None:
    async with serve(settings) as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert re.findall(r"""(?:src|href)=["']https?://""", html) == [], page
            for asset in re.findall(r"""(?:src|href)=["'](/[^"']+)["']""", html):
                assert (await client.get(asset)).status_code == 200, asset
