"""A worker's SOS through the API of the running stack: published as the API's own MQTT
identity, bridged, stored, a critical alert opened and people told — once per report id."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from core.access import Role
from core.settings import Settings
from qorgau.launcher import Stack
from tests.alerts.conftest import free_port
from tests.asgi import serve
from tests.people import bearer, ensure_user

ENTERPRISE = "E006"


def _counts(dsn: str, report_id: str, worker: str) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        reports = conn.execute(
            "SELECT count(*) FROM reports WHERE report_id = %s", (report_id,)
        ).fetchone()
        alerts = conn.execute(
            "SELECT count(*), min(severity), min(kind) FROM alerts WHERE sensor_id = %s",
            (f"worker:{worker}",),
        ).fetchone()
        changes = conn.execute(
            "SELECT count(DISTINCT d.change_id), count(*) FROM deliveries d"
            " JOIN alert_keys k ON k.alert_key = d.alert_key"
            " JOIN alerts a ON a.id = k.alert_id WHERE a.sensor_id = %s",
            (f"worker:{worker}",),
        ).fetchone()
    assert reports and alerts and changes
    return {
        "reports": reports[0],
        "alerts": alerts[0],
        "severity": alerts[1],
        "kind": alerts[2],
        "changes": changes[0],
        "deliveries": changes[1],
    }


async def test_an_sos_posted_to_the_api_is_a_critical_alert_within_2_s_once(
    stack: Stack,
) -> None:
    dsn = stack.settings.database_url
    assert dsn is not None
    tag = uuid.uuid4().hex[:6]
    worker = ensure_user(dsn, f"t-sos-w{tag}", Role.WORKER, [], ENTERPRISE)
    # Someone to tell: the enterprise's safety officer, by e-mail.
    ensure_user(
        dsn, f"t-sos-o{tag}", Role.SAFETY_OFFICER, [], ENTERPRISE, email=f"o{tag}@example.kz"
    )
    report_id = str(uuid.uuid4())
    body = {
        "report_id": report_id,
        "kind": "sos",
        "ts": datetime.now(UTC).isoformat(),
        "text": "trapped",
        "lat": 43.25,
        "lon": 76.9,
        "accuracy_m": 8,
    }
    headers = bearer(stack.settings, worker)

    # The broker out of the API's reach: 503, keep it, send again.
    away: Settings = stack.settings_for("api").model_copy(
        update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}"}
    )
    async with serve(away, headers) as client:
        r = await client.post("/api/v1/reports", json=body)
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "5"
    assert _counts(dsn, report_id, worker.username)["reports"] == 0

    async with serve(stack.settings_for("api"), headers) as client:
        deadline = time.monotonic() + 15
        while not (await client.get("/api/v1/ready")).json()["checks"]["mqtt"]["ok"]:
            assert time.monotonic() < deadline, "the API's MQTT session did not come up"
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        r = await client.post("/api/v1/reports", json=body)
        assert r.status_code == 202, r.text
        assert r.json() == {"report_id": report_id, "status": "sent"}
        acked = time.monotonic() - t0
        # The app lost the answer and sends it again at once: published again.
        again = await client.post("/api/v1/reports", json=body)
        assert again.status_code == 202, again.text
        while _counts(dsn, report_id, worker.username)["alerts"] == 0:
            assert time.monotonic() - t0 < 10, stack.settings.state_dir
            await asyncio.sleep(0.02)
        took = time.monotonic() - t0
        # Once stored, a third try is answered from storage.
        third = await client.post("/api/v1/reports", json=body)
        assert third.json() == {"report_id": report_id, "status": "stored"}
        stored = (await client.get(f"/api/v1/reports/{report_id}")).json()
    print(f"SOS: broker's PUBACK after {acked * 1e3:.0f} ms, critical alert in {took * 1e3:.0f} ms")
    assert took < 2.0, f"{took:.2f} s from the POST to the alert"
    assert (stored["kind"], stored["worker_id"], stored["enterprise_id"]) == (
        "sos",
        worker.username,
        ENTERPRISE,
    )
    assert (stored["lat"], stored["lon"], stored["accuracy_m"], stored["text"]) == (
        43.25,
        76.9,
        8.0,
        "trapped",
    )

    # The notifier tells people of the one alert's one change; wait until it has, and a
    # little longer for a second alert or change that must not come.
    deadline = time.monotonic() + 20
    while _counts(dsn, report_id, worker.username)["deliveries"] == 0:
        assert time.monotonic() < deadline, "nobody was told of the SOS"
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)
    counts = _counts(dsn, report_id, worker.username)
    assert counts["reports"] == 1
    assert (counts["alerts"], counts["severity"], counts["kind"]) == (1, "critical", "sos")
    assert counts["changes"] == 1, counts  # one change told: the open
    with psycopg.connect(dsn) as conn:
        opens = conn.execute(
            "SELECT count(*) FROM alert_history h JOIN alerts a ON a.id = h.alert_id"
            " WHERE a.sensor_id = %s AND h.action = 'open'",
            (f"worker:{worker.username}",),
        ).fetchone()
        officer_told = conn.execute(
            "SELECT count(*) FROM deliveries WHERE address = %s", (f"o{tag}@example.kz",)
        ).fetchone()
    assert opens == (1,)
    assert officer_told == (1,)
