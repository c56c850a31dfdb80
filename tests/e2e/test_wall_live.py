"""From a sensor to the control room's wall: a critical reading published over MQTT shows
on a regional wall in a real Chromium within 2 s, with its alarm sound; another region's
never does."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from core.access import Role
from edge.publisher import reading_topic
from qorgau.launcher import Stack
from tests.browser import PASSWORD, artifact, chromium, serve_api
from tests.e2e.devices import publisher
from tests.people import ensure_user


def _publish(stack: Stack, enterprise: str, sensor: str, hazard: str, value: float) -> None:
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    pub = publisher(stack, enterprise)
    pub.publish(
        reading_topic(enterprise, sensor),
        orjson.dumps({"ts": ts, "hazard": hazard, "value": value, "unit": "mg/m3", "seq": 1}),
    )
    assert pub.wait_acked(timeout_s=10)
    pub.close()


def test_a_critical_reading_over_mqtt_rings_on_the_regional_wall(stack: Stack) -> None:
    assert stack.settings.database_url is not None
    room = ensure_user(stack.settings.database_url, "t-wall-live", Role.CONTROL_ROOM, ["KZ-35"])
    with serve_api(stack.settings_for("api")) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
        page.goto(f"{base}/wall")
        page.fill("#username", room.username)
        page.fill("#password", PASSWORD)
        page.click("#login-button")  # the click that arms the sound
        page.wait_for_function("() => window.qorgauWall.state.feedReady === true", timeout=10000)

        _publish(stack, "E002", "E002-S02", "h2s", 90.0)  # KZ-23: not this wall's
        published = time.monotonic()
        _publish(stack, "E001", "E001-S14", "co", 150.0)  # KZ-35: this wall's
        row = page.locator("#rows tr.critical", has_text="E001-S14")
        row.wait_for(timeout=10000)
        took = time.monotonic() - published
        page.wait_for_function("() => window.qorgauWall.soundPlays >= 1", timeout=3000)
        assert not page.evaluate("document.getElementById('snd-critical').paused")
        # The other region's alarm was stored before this one: had it been sent, it is here.
        assert page.evaluate(
            "[...window.qorgauWall.state.alerts.values()].every(a => a.region_id === 'KZ-35')"
        )
        assert page.locator("#rows tr", has_text="E002-S02").count() == 0
        # The pipeline is alive: a worker beats, readings are fresh — no stale banner.
        page.wait_for_selector("#banner", state="hidden", timeout=10000)
        page.screenshot(path=artifact("wall-live-1920x1080.png"))
        row.locator("[data-ack]").click()
        page.locator("#rows tr.acknowledged", has_text="E001-S14").wait_for(timeout=5000)
    print(f"broker PUBACK to the wall: {took:.2f} s")
    assert took < 2.0, f"{took:.2f} s from the broker PUBACK to the wall"
