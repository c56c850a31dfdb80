"""From a sensor to people's phones through the running stack: a critical CO reading over
MQTT reaches the safety officer's browser as Web Push (decrypted here with the
subscription's private key) and the workers' app as an evacuation notice."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import http_ece
import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from core.access import Role
from edge.publisher import reading_topic
from qorgau.launcher import Stack
from tests.alerts.conftest import http_receiver, subscription_keys
from tests.e2e.devices import publisher
from tests.people import ensure_user


async def test_critical_gas_reaches_the_officers_browser_and_the_workers_app(
    stack: Stack,
) -> None:
    s = stack.settings
    assert s.database_url is not None
    tag = uuid.uuid4().hex[:6]
    worker = ensure_user(s.database_url, f"t-e2e-w{tag}", Role.WORKER, [], "E005")
    officer = ensure_user(s.database_url, f"t-e2e-o{tag}", Role.SAFETY_OFFICER, [], "E005")
    key, p256dh, auth, auth_b64 = subscription_keys()
    notices: list[dict[str, Any]] = []
    subscribed = asyncio.Event()
    loop = asyncio.get_running_loop()
    phone = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"phone-{tag}")
    phone.username_pw_set(*stack.app_credentials(worker.username, "E005"))
    phone.on_connect = lambda c, *_: c.subscribe(
        f"qorgau/v1/E005/app/{worker.username}/notify", qos=1
    )
    phone.on_subscribe = lambda *_: loop.call_soon_threadsafe(subscribed.set)
    phone.on_message = lambda _c, _u, m: notices.append(orjson.loads(m.payload))
    phone.connect(s.mqtt_host, s.mqtt_port)
    phone.loop_start()
    try:
        async with http_receiver([201]) as push_service:
            with psycopg.connect(s.database_url) as conn:
                conn.execute(
                    "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth)"
                    " VALUES (%s, %s, %s, %s)",
                    (officer.id, f"{push_service.url}/push/{tag}", p256dh, auth_b64),
                )
            async with asyncio.timeout(5):
                await subscribed.wait()

            ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            reading = {"ts": ts, "hazard": "co", "value": 150.0, "unit": "mg/m3", "seq": 1}
            published = time.monotonic()

            def publish() -> None:
                pub = publisher(stack, "E005")
                pub.publish(reading_topic("E005", "E005-S18"), orjson.dumps(reading))
                assert pub.wait_acked(timeout_s=10)
                pub.close()

            await asyncio.to_thread(publish)
            async with asyncio.timeout(30):
                while not (push_service.requests and notices):  # noqa: ASYNC110 - threads append
                    await asyncio.sleep(0.05)
            took = time.monotonic() - published
    finally:
        phone.loop_stop()
        phone.disconnect()

    (request,) = [r for r in push_service.requests if r.path == f"/push/{tag}"]
    payload = orjson.loads(
        http_ece.decrypt(request.body, private_key=key, auth_secret=auth, version="aes128gcm")
    )
    assert (payload["enterprise_id"], payload["sensor_id"], payload["severity"]) == (
        "E005",
        "E005-S18",
        "critical",
    )
    assert (payload["alert_kind"], payload["value"], payload["unit"]) == (
        "threshold",
        150.0,
        "mg/m3",
    )
    (notice,) = notices
    assert (notice["purpose"], notice["sensor_id"]) == ("evacuate", "E005-S18")
    assert took < 10, f"{took:.1f} s from the reading to the phones"
