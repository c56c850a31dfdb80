"""The control-room wall and /docs in a real Chromium, against a real API and database.

Alerts are put in the database as the worker would (`apply_machine_events`); the live
path from an MQTT reading to the wall is `tests/e2e/test_wall_live.py`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from alerts.lifecycle import apply_machine_events
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.settings import Settings
from storage import components
from tests.browser import PASSWORD, CuttableLink, artifact, chromium, serve_api
from tests.people import ensure_user

FULL_HD = {"width": 1920, "height": 1080}
COMMENT = "ventilation restarted, levels normal <img src=x onerror=window.pwned=1>"


def _settings(url: str) -> Settings:
    return Settings(_env_file=None, database_url=url)  # type: ignore[call-arg]


def _open(
    enterprise: str,
    sensor: str,
    hazard: str,
    value: float,
    limit: float,
    kind: AlertKind = AlertKind.THRESHOLD,
    severity: Severity = Severity.CRITICAL,
    ago_s: float = 60.0,
) -> AlertEvent:
    ts = datetime.now(UTC) - timedelta(seconds=ago_s)
    return AlertEvent(
        action=AlertAction.OPEN,
        key=f"{sensor}|{kind.value}|{ts.isoformat()}",
        kind=kind,
        severity=severity,
        enterprise_id=enterprise,
        sensor_id=sensor,
        hazard=hazard,
        ts=ts,
        value=value,
        message=f"{hazard} {value} above {limit}",
        limit=limit,
        details={"source": "GOST 12.1.005-88 (test)"},
    )


def _in_thread(job: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``job`` to the end on an event loop of its own (Playwright's sync API holds
    this thread's)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(job())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def _apply(url: str, *events: AlertEvent) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            await apply_machine_events(conn, list(events))

    _in_thread(go)


def _live(url: str) -> None:
    """A fresh reading in every enterprise and a ready worker: nothing is stale."""
    now = datetime.now(UTC)

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit) SELECT s.id, %s, s.enterprise_id, s.hazard, 1, 'x', 1,"
                " 'x' FROM sensors s ON CONFLICT DO NOTHING",
                (now,),
            )
            await components.beat(conn, name="worker-t", kind="worker", ready=True, started_at=now)

    _in_thread(go)


def _sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/wall")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#wall:not([hidden])")
    page.wait_for_function("() => window.qorgauWall.state.feedReady === true")


def test_docs_render_with_no_internet(pages_database_url: str) -> None:
    outside: list[str] = []
    with serve_api(_settings(pages_database_url)) as base, chromium() as browser:
        context = browser.new_context(viewport=FULL_HD)  # type: ignore[attr-defined]

        def only_here(route: Any) -> None:
            host = urlsplit(route.request.url).hostname
            if host == "127.0.0.1":
                route.continue_()
            else:  # what a closed network does to a CDN
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_here)
        page = context.new_page()
        page.goto(f"{base}/docs")
        page.wait_for_selector(".opblock", timeout=15000)
        operations = page.locator(".opblock").count()
        page.screenshot(path=artifact("docs-1920x1080.png"))
        context.close()
    assert outside == []
    assert operations >= 20  # every operation of the API is listed


def test_the_wall_shows_its_region_rings_and_acts(pages_database_url: str) -> None:
    url = pages_database_url
    room = ensure_user(url, "t-wall-kz35", Role.CONTROL_ROOM, ["KZ-35"], full_name="Karaganda room")
    _live(url)
    # E001 is in KZ-35 (in scope), E002 in KZ-23 (not).
    mine = _open("E001", "E001-S14", "co", 150.0, 20.0)
    warn = _open("E001", "E001-S16", "h2s", 12.0, 10.0, severity=Severity.WARNING, ago_s=600)
    theirs = _open("E002", "E002-S02", "h2s", 90.0, 10.0)
    _apply(url, warn, theirs)
    with serve_api(_settings(url)) as base, chromium() as browser:
        link = CuttableLink(base.removeprefix("http://"))
        page = browser.new_page(viewport=FULL_HD)  # type: ignore[attr-defined]
        _sign_in(page, link.url, room.username)
        page.wait_for_selector("#rows tr")
        assert not page.locator("#banner").is_visible()  # live readings, a ready worker
        # Nothing critical yet: quiet.
        assert page.evaluate("document.getElementById('snd-critical').paused")
        _apply(url, mine)  # a critical alarm comes in while the wall is open
        t0 = time.monotonic()
        row = page.locator("#rows tr.critical", has_text="E001-S14")
        row.wait_for(timeout=2000)
        arrived = time.monotonic() - t0
        page.wait_for_function("() => window.qorgauWall.soundPlays >= 1", timeout=3000)
        assert not page.evaluate("document.getElementById('snd-critical').paused")
        # Critical first, then the older warning; the other region's never.
        texts = page.locator("#rows tr").all_inner_texts()
        assert "E001-S14" in texts[0] and "E001-S16" in texts[1]
        assert not any("E002" in t for t in texts)
        assert page.evaluate(
            "[...window.qorgauWall.state.alerts.values()].every(a => a.region_id === 'KZ-35')"
        )
        assert "150" in texts[0] and "mg/m3" in texts[0] and "20" in texts[0]
        # Its rows lay themselves out as grids (rows off the screen are skipped), yet to
        # assistive technology the queue is still a table with a header row.
        assert page.get_by_role("columnheader").count() == 10
        assert page.get_by_role("row").count() == 1 + len(texts)
        assert page.get_by_role("cell").count() == 10 * len(texts)
        page.screenshot(path=artifact("wall-1920x1080.png"))

        # Acknowledge from the row: the sound stops, the row says who.
        row.locator("[data-ack]").click()
        page.locator("#rows tr.acknowledged", has_text="E001-S14").wait_for(timeout=3000)
        page.wait_for_function("() => document.getElementById('snd-critical').paused")
        assert room.username in page.locator("#rows tr", has_text="E001-S14").inner_text()

        # Comment and resolve with a reason from the detail panel.
        page.locator("#rows tr", has_text="E001-S14").click()
        page.wait_for_selector("#detail-resolve")
        page.fill("#detail-comment", COMMENT)
        page.select_option("#detail-reason", "real_incident")
        page.click("#detail-resolve")
        page.locator("#rows tr", has_text="E001-S14").wait_for(state="detached", timeout=3000)
        # The comment (markup in it) is shown in the history as text, never run.
        page.locator("#detail-history li", has_text=COMMENT).wait_for(timeout=3000)
        assert page.evaluate("() => window.pwned") is None

        # The stale banner: the link to the server cut.
        link.cut()
        page.locator("#banner", has_text="Нет связи с сервером").wait_for(timeout=8000)
        banner = page.inner_text("#banner")
        page.screenshot(path=artifact("wall-stale-1920x1080.png"))
        # Meanwhile someone resolves the warning elsewhere; back online the wall catches up.
        token = _token(base, room.username)
        alert_id = _alert_id(url, "E001-S16")
        r = httpx.post(
            f"{base}/api/v1/alerts/{alert_id}/resolve",
            json={"reason": "false_alarm"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200, r.text
        link.restore()
        page.locator("#rows tr", has_text="E001-S16").wait_for(state="detached", timeout=15000)
        page.wait_for_selector("#banner", state="hidden", timeout=10000)

        # The alert's history has both people's actions.
        detail = httpx.get(
            f"{base}/api/v1/alerts/{_alert_id(url, 'E001-S14')}",
            headers={"Authorization": f"Bearer {token}"},
        ).json()
    assert arrived < 2.0
    assert "Нет связи с сервером с " in banner  # the user's language (ru), with the time
    actions = [(h["action"], h["actor"]) for h in detail["history"]]
    assert ("acknowledge", room.username) in actions
    assert ("resolve", room.username) in actions
    assert ("comment", room.username) not in actions  # the comment went with the resolution
    resolved = next(h for h in detail["history"] if h["action"] == "resolve")
    assert resolved["reason"] == "real_incident"
    assert resolved["comment"] == COMMENT


def _token(base: str, username: str) -> str:
    r = httpx.post(
        f"{base}/api/v1/login/access-token", data={"username": username, "password": PASSWORD}
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def _alert_id(url: str, sensor: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT id FROM alerts WHERE sensor_id = %s ORDER BY id DESC LIMIT 1", (sensor,)
        ).fetchone()
    assert row is not None
    return int(row[0])
