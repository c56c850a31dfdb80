"""An inspector's phone told of a critical reading, the whole way, on the running stack.

Headless Chromium cannot reach a browser push service, so the path is split where the
push service would be, and every piece is real: the reading is published over MQTT; the
notifier sends the Web Push (encrypted for a subscription made from this test's keys) to
a local push service, which the test decrypts with the subscription's private key; that
payload is handed to the app's service worker through the DevTools protocol, as a push
service would deliver it; the notification is shown, a tap opens the sensor's alarms, and
the inspector acknowledges and resolves the alarm from the page."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import http_ece
import orjson
import psycopg

from core.access import Role
from edge.publisher import reading_topic
from qorgau.launcher import Stack
from tests.alerts.conftest import subscription_keys
from tests.browser import (
    PASSWORD,
    chromium,
    deliver_push,
    screenshots,
    serve_api,
    shown_notifications,
    tap_notification,
)
from tests.e2e.devices import publisher, register_sensor
from tests.people import ensure_user

PHONE = {"width": 360, "height": 740}


class _PushService(BaseHTTPRequestHandler):
    """A push service that takes every message (201) and keeps it with when it came."""

    received: ClassVar[list[tuple[float, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((time.monotonic(), self.path, body))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


def test_a_critical_reading_becomes_a_notification_that_opens_the_alarm(stack: Stack) -> None:
    dsn = stack.settings.database_url
    assert dsn is not None
    tag = uuid.uuid4().hex[:6]
    inspector = ensure_user(dsn, f"t-push-{tag}", Role.LABOUR_INSPECTOR, ["KZ-79"], tags=["duty"])
    # A sensor of its own: an alarm left open on a shared one would keep other tests'
    # readings from opening theirs.
    sensor = register_sensor(stack, "E005", "co")
    key, p256dh, auth, auth_b64 = subscription_keys()
    service = ThreadingHTTPServer(("127.0.0.1", 0), _PushService)
    threading.Thread(target=service.serve_forever, daemon=True).start()
    path = f"/push/{tag}"
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)"
                " VALUES (%s, %s, %s, %s)",
                (inspector.id, f"http://127.0.0.1:{service.server_port}{path}", p256dh, auth_b64),
            )
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        pub = publisher(stack, "E005")
        published = time.monotonic()
        pub.publish(
            reading_topic("E005", sensor),
            orjson.dumps({"ts": ts, "hazard": "co", "value": 150.0, "unit": "mg/m3", "seq": 1}),
        )
        assert pub.wait_acked(timeout_s=10)
        pub.close()
        deadline = time.monotonic() + 30
        while not [r for r in _PushService.received if r[1] == path]:
            assert time.monotonic() < deadline, "no push reached the push service"
            time.sleep(0.02)
        (at, _path, body) = next(r for r in _PushService.received if r[1] == path)
    finally:
        service.shutdown()
        with psycopg.connect(dsn) as conn:  # later tests' alarms must not push to it
            conn.execute("DELETE FROM push_subscriptions WHERE user_id = %s", (inspector.id,))
    took = at - published
    payload = orjson.loads(
        http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
    )
    assert (payload["sensor_id"], payload["severity"]) == (sensor, "critical")
    assert took < 2.0, f"{took:.2f} s from the broker's PUBACK to the push service"

    with serve_api(stack.settings_for("api")) as base, chromium() as browser:
        context = browser.new_context(viewport=PHONE, base_url=base)  # type: ignore[attr-defined]
        context.grant_permissions(["notifications"], origin=base)
        page = context.new_page()
        page.goto("/app/")
        page.fill("#username", inspector.username)
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_selector("#main:not([hidden])")
        assert page.evaluate("() => navigator.serviceWorker.ready.then(r => !!r.active)")
        worker = deliver_push(context, page, base, payload)
        shown = shown_notifications(worker, page, within_s=5)
        assert [n["title"] for n in shown] == [payload["title"]]
        tap_notification(worker)
        # The tap opens that alarm (the one of this sensor that began at the reading's time).
        page.wait_for_selector("#ack")
        assert sensor in page.inner_text("dl.facts")
        assert "Одно показание за этот период: 150 mg/m3" in page.inner_text("#view")
        page.click("#ack")
        page.wait_for_function("() => !document.getElementById('ack')")
        page.select_option("#reason", "drill")
        page.click("#resolve")
        page.wait_for_selector("#resolve", state="detached")
        screenshots(page, "app-inspector-resolved", full_page=True)
        context.close()
    with psycopg.connect(dsn) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT h.action FROM alert_history h JOIN alerts a ON a.id = h.alert_id"
                " WHERE a.sensor_id = %s AND h.actor_id = %s ORDER BY h.id",
                (sensor, inspector.id),
            )
        ]
    assert actions[-2:] == ["acknowledge", "resolve"], actions
    print(f"broker PUBACK to the inspector's push service: {took:.2f} s")
