"""The worker's app against the running stack, in a real Chromium on a phone: SOS pressed
on the page is a critical `sos` alert in the database and on the regional wall within 2 s;
pressed with the network cut, it waits in the outbox ("not sent yet", the emergency
number to call), and arrives once when the network is back; an evacuation notice pushed
to the phone takes the whole screen, with sound."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from alerts.channels.base import app_payload
from alerts.notification import Recipient
from core.access import Role
from qorgau.launcher import Stack
from tests.alerts.conftest import make_notification
from tests.browser import PASSWORD, chromium, deliver_push, screenshots, serve_api
from tests.people import ensure_user

PHONE = {"width": 360, "height": 740}


def _sign_in(page: Any, base: str, username: str, ready: str) -> None:
    page.goto(f"{base}{'/wall' if ready == '#wall' else '/app/'}")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector(f"{ready}:not([hidden])")


def _sos_alerts(dsn: str, worker: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        return [
            (int(r[0]), str(r[1]), str(r[2]))
            for r in conn.execute(
                "SELECT id, severity, status FROM alerts WHERE kind = 'sos' AND sensor_id = %s",
                (f"worker:{worker}",),
            )
        ]


def _reports(dsn: str, worker: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM reports WHERE worker_id = %s", (worker,)
        ).fetchone()
    return int(row[0]) if row else 0


def _sos_openings(dsn: str, worker: str) -> int:
    """How often the worker's SOS alarm was raised (opened, or opened again after being
    resolved: one alarm per worker and kind, its history counts the raisings)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM alert_history h JOIN alerts a ON a.id = h.alert_id"
            " WHERE a.kind = 'sos' AND a.sensor_id = %s AND h.action IN ('open', 'reopen')",
            (f"worker:{worker}",),
        ).fetchone()
    return int(row[0]) if row else 0


_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def _go_report(page: Any) -> None:
    page.evaluate("() => { location.hash = '#/report'; }")
    page.wait_for_selector("#report-form")
    page.fill("#report-text", "oil on the stairs")
    page.set_input_files(
        "#report-photo", files=[{"name": "stairs.png", "mimeType": "image/png", "buffer": _PNG}]
    )
    page.click("#report-form button[type=submit]")
    page.wait_for_selector("#sos")  # back on the workplace


def _press_sos(page: Any) -> None:
    page.click("#sos")
    page.click("#confirm-send")


def test_sos_from_the_app_reaches_the_wall_and_survives_a_cut(stack: Stack) -> None:
    dsn = stack.settings.database_url
    assert dsn is not None
    worker = ensure_user(dsn, "t-app-live-worker", Role.WORKER, [], "E001")
    room = ensure_user(dsn, "t-app-live-room", Role.CONTROL_ROOM, ["KZ-35"])
    with serve_api(stack.settings_for("api")) as base, chromium() as browser:
        wall = browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
        _sign_in(wall, base, room.username, "#wall")
        wall.wait_for_function("() => window.qorgauWall.state.feedReady === true")

        context = browser.new_context(viewport=PHONE)  # type: ignore[attr-defined]
        context.grant_permissions(["notifications"], origin=base)  # a worker who turned them on
        phone = context.new_page()
        _sign_in(phone, base, worker.username, "#main")
        phone.wait_for_selector("#sos")
        screenshots(phone, "app-worker")

        pressed = time.monotonic()
        _press_sos(phone)
        stored = None
        while not _sos_alerts(dsn, worker.username):
            assert time.monotonic() - pressed < 10, "no sos alert in 10 s"
            time.sleep(0.02)
        stored = time.monotonic() - pressed
        wall.locator("#rows tr.critical", has_text=worker.username).wait_for(timeout=10000)
        on_wall = time.monotonic() - pressed
        ((first, severity, _status),) = _sos_alerts(dsn, worker.username)
        assert severity == "critical"
        assert stored < 2.0 and on_wall < 2.0, (stored, on_wall)
        # The wall's operator acknowledges and resolves it: the next SOS opens a new alarm.
        with psycopg.connect(dsn) as conn:
            conn.execute(
                "UPDATE alerts SET status = 'resolved', state = 'cleared', resolved_at = now(),"
                " resolution = 'drill' WHERE id = %s",
                (first,),
            )

        # The network is cut: the SOS waits, says so, and offers the emergency line.
        context.set_offline(True)
        _press_sos(phone)
        phone.wait_for_selector("#outbox:not([hidden])")
        assert phone.locator("#outbox a[href^='tel:']").count() == 1
        screenshots(phone, "app-worker-sos-offline")
        time.sleep(1.5)  # a retry or two fail meanwhile
        assert _reports(dsn, worker.username) == 1
        context.set_offline(False)
        phone.wait_for_selector("#outbox", state="hidden", timeout=15000)
        deadline = time.monotonic() + 10
        while _sos_openings(dsn, worker.username) < 2:
            assert time.monotonic() < deadline, (
                "the queued SOS never raised the alarm",
                _reports(dsn, worker.username),
                _sos_alerts(dsn, worker.username),
            )
            time.sleep(0.05)
        time.sleep(1.0)  # had it been sent twice, the second would be here by now
        assert _reports(dsn, worker.username) == 2
        assert _sos_openings(dsn, worker.username) == 2

        # A hazard report with a photo: the report, then its photo once the report is stored.
        _go_report(phone)
        with psycopg.connect(dsn) as conn:
            deadline = time.monotonic() + 20
            while True:
                row = conn.execute(
                    "SELECT r.kind, r.text, p.content_type, p.data FROM reports r"
                    " JOIN report_photos p ON p.report_id = r.report_id WHERE r.worker_id = %s",
                    (worker.username,),
                ).fetchone()
                if row is not None:
                    break
                assert time.monotonic() < deadline, "the report's photo never arrived"
                time.sleep(0.2)
        assert row == ("hazard_observation", "oil on the stairs", "image/png", _PNG)

        # An evacuation notice pushed to this phone takes the whole screen, with sound.
        note = make_notification(
            purpose="evacuate", alert_key="E001-S01|threshold|t-evac", sensor_id="E001-S01",
            zone_id="E001-Z01", value=150.0, limit=100.0, ts=datetime.now(UTC),
        )  # fmt: skip
        payload = app_payload(note, Recipient(key="app:E001/w", name="", language="ru"))
        deliver_push(context, phone, base, payload)
        phone.wait_for_selector("#evacuate", timeout=5000)
        assert "E001-Z01" in phone.inner_text("#evacuate")
        phone.wait_for_function("() => window.qorgauApp.evacuationSound === 'playing'")
        screenshots(phone, "app-worker-evacuate")
        phone.click("#evacuate-ok")
        phone.wait_for_selector("#evacuate", state="detached")
        context.close()
    print(f"SOS tap to the database {stored:.2f} s, to the wall {on_wall:.2f} s")
