"""The API against the running stack: readiness is green and live readings show up."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson

from core.access import Role
from edge.publisher import reading_topic
from qorgau.launcher import Stack
from tests.asgi import serve
from tests.e2e.devices import publisher
from tests.people import bearer, ensure_user


async def test_ready_is_200_with_every_dependency_up_and_shows_live_readings(
    stack: Stack,
) -> None:
    assert stack.settings.database_url is not None
    officer = ensure_user(
        stack.settings.database_url, "t-officer-e001", Role.SAFETY_OFFICER, [], "E001"
    )
    sensor = "E001-S01"  # a seeded CO sensor
    marker_seq = int(uuid.uuid4().int % 10**9)
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def publish() -> None:
        pub = publisher(stack, "E001")
        pub.publish(
            reading_topic("E001", sensor),
            orjson.dumps(
                {"ts": ts, "hazard": "co", "value": 10.0, "unit": "ppm", "seq": marker_seq}
            ),
        )
        assert pub.wait_acked(timeout_s=10)
        pub.close()

    async with serve(stack.settings_for("api"), bearer(stack.settings, officer)) as client:
        r = await client.get("/api/v1/ready")
        assert r.status_code == 200, r.text
        assert all(c["ok"] for c in r.json()["checks"].values())
        await asyncio.to_thread(publish)
        deadline = time.monotonic() + 30
        values: list[float] = []
        while time.monotonic() < deadline and not values:
            body = (await client.get(f"/api/v1/sensors/{sensor}/readings")).json()
            values = [p["value"] for p in body["points"] if p["ts"].startswith(ts[:19])]
            await asyncio.sleep(0.2)
        assert values and abs(values[0] - 11.456) < 0.01  # 10 ppm CO = 11.46 mg/m3
        assert body["unit"] == "mg/m3"
