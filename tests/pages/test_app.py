"""The people's app in a real Chromium at phone and desktop sizes, against a real API and
database: a safety officer signs in, sees their enterprise only, acknowledges and resolves
an alarm; an inspector enables push (the page's subscribe code with an injected
subscription: no push service is reachable from here) and the service worker shows a push
delivered through the DevTools protocol; the shell loads offline; signing out ends the
session and the subscription."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg

from alerts.channels.base import app_payload
from alerts.notification import Recipient
from core.access import Role
from core.alarms import Severity
from tests.alerts.conftest import make_notification, subscription_keys
from tests.browser import (
    PASSWORD,
    artifact,
    chromium,
    deliver_push,
    screenshots,
    serve_api,
    shown_notifications,
    tap_notification,
)
from tests.pages.test_wall import _alert_id, _apply, _open, _settings
from tests.people import ensure_user

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}


def _context(browser: Any, base: str, viewport: dict[str, int]) -> Any:
    context = browser.new_context(viewport=viewport, base_url=base)
    context.grant_permissions(["notifications"], origin=base)
    return context


def _sign_in(page: Any, username: str) -> None:
    page.goto("/app/")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#login-button")
    page.wait_for_selector("#main:not([hidden])")


def _go(page: Any, view: str) -> None:
    """Open ``view`` (a hash) in the signed-in app and wait until it has been drawn."""
    before = page.evaluate("() => window.qorgauApp.renders")
    page.evaluate("(h) => { location.hash = h; }", view)
    page.wait_for_function(f"() => window.qorgauApp.renders > {before}")


def test_an_officer_sees_their_enterprise_and_acts_on_phone_and_desktop(
    pages_database_url: str,
) -> None:
    url = pages_database_url
    officer = ensure_user(url, "t-app-officer", Role.SAFETY_OFFICER, [], "E001")
    _apply(
        url,
        _open("E001", "E001-S01", "co", 150.0, 100.0),
        _open("E002", "E002-S01", "h2s", 30.0, 10.0),  # another enterprise's
    )
    mine, theirs = _alert_id(url, "E001-S01"), _alert_id(url, "E002-S01")
    with serve_api(_settings(url)) as base, chromium() as browser:
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = _context(browser, base, viewport)
            page = context.new_page()
            _sign_in(page, officer.username)
            page.wait_for_selector(f"a[href='#/alerts/{mine}']")
            assert page.locator(f"a[href='#/alerts/{theirs}']").count() == 0
            assert "E002" not in page.inner_text("#view")
            page.screenshot(path=str(artifact(f"app-alerts-{name}.png")))
            # Nothing wider than the screen: no sideways scrolling on a phone.
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: {width}px wide"
            context.close()

        context = _context(browser, base, PHONE)
        page = context.new_page()
        _sign_in(page, officer.username)
        page.click(f"a[href='#/alerts/{mine}']")
        page.wait_for_selector("#ack")
        assert "GOST 12.1.005-88 (test)" in page.inner_text("dl.facts")
        assert "150 mg/m3" in page.inner_text("dl.facts")
        page.click("#ack")
        page.wait_for_function("() => !document.getElementById('ack')")
        assert officer.username in page.inner_text("#alert-status")
        page.fill("#comment", "fans on <script>window.pwned=1</script>")
        page.select_option("#reason", "real_incident")
        page.click("#resolve")
        page.wait_for_selector("#resolve", state="detached")
        history = page.inner_text("ol.history")
        screenshots(page, "app-alert-resolved", full_page=True)
        # Someone else's alarm, enterprise or sensor by its id: the API says 404, and so
        # does the page, with nothing of theirs on it.
        for view in (f"#/alerts/{theirs}", "#/enterprises/E002", "#/sensors/E002-S01"):
            _go(page, view)
            assert page.locator("#view .error").count() == 1, view
            assert "Kulsary" not in page.inner_text("#view"), view  # E002's name
        # The enterprise: each sensor's exposure this shift and over 15 min, against limits.
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO exposures (sensor_id, ts, enterprise_id, hazard, twa, stel, ceiling)"
                " VALUES ('E001-S01', now(), 'E001', 'co', 25.0, 30.0, 31.0)"
                " ON CONFLICT DO NOTHING"
            )
        _go(page, "#/enterprises/E001")
        line = page.locator("#view ul.plain li", has_text="E001-S01").inner_text()
        assert "за смену 25 mg/m3 / 20 mg/m3" in line and "за 15 мин 30 mg/m3 / 20 mg/m3" in line
        assert (
            page.locator("#view ul.plain li", has_text="E001-S01")
            .locator(".exposure .warn")
            .count()
            == 2
        )
        _go(page, "#/enterprises")
        assert page.locator("#view a[href^='#/enterprises/']").count() == 1
        assert page.evaluate("() => window.pwned") is None
        context.close()
    assert "<script>" in history  # shown as text
    with psycopg.connect(url) as conn:
        actions = [
            r[0]
            for r in conn.execute(
                "SELECT action FROM alert_history WHERE alert_id = %s ORDER BY id", (mine,)
            )
        ]
        status = conn.execute("SELECT status FROM alerts WHERE id = %s", (theirs,)).fetchone()
    assert "acknowledge" in actions and "resolve" in actions
    assert status == ("open",)  # untouched


def test_an_inspector_enables_push_and_the_worker_shows_an_alarm(pages_database_url: str) -> None:
    url = pages_database_url
    inspector = ensure_user(url, "t-app-inspector", Role.LABOUR_INSPECTOR, ["KZ-35"])
    _private, p256dh, _auth, auth_b64 = subscription_keys()
    endpoint = f"http://127.0.0.1:9/push/{inspector.username}"
    with serve_api(_settings(url)) as base, chromium() as browser:
        context = _context(browser, base, PHONE)
        page = context.new_page()
        _sign_in(page, inspector.username)
        assert page.evaluate("() => navigator.serviceWorker.ready.then(r => !!r.active)")
        # The page's own subscribe code, with what the browser would have handed it.
        page.evaluate(
            """([endpoint, p256dh, auth]) => {
                window.qorgauApp.subscribe = async (options) => {
                  window.qorgauApp.subscribedWith = options.applicationServerKey.length;
                  return { endpoint, unsubscribe: async () => true,
                           toJSON: () => ({ endpoint, keys: { p256dh, auth } }) };
                };
            }""",
            [endpoint, p256dh, auth_b64],
        )
        page.goto("/app/#/settings")
        page.click("#push-on")
        page.wait_for_selector("#push-test")
        assert page.evaluate("() => window.qorgauApp.subscribedWith") == 65  # a P-256 key
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT endpoint, p256dh FROM push_subscriptions WHERE user_id = %s",
                (inspector.id,),
            ).fetchone()
        assert row == (endpoint, p256dh)
        screenshots(page, "app-push-on")
        # The test button goes through the server to the push service; this one (port 9)
        # answers nothing, and the page says so instead of pretending.
        page.click("#push-test")
        page.wait_for_function(
            "() => document.getElementById('push-state').textContent.includes('не принял')"
        )

        # What the notifier sends (app_payload), delivered to the service worker by the
        # DevTools protocol as a push service would.
        note = make_notification(
            alert_key="E001-S01|threshold|t", sensor_id="E001-S01", zone_id="E001-Z01",
            value=150.0, limit=100.0, ts=datetime.now(UTC),
        )  # fmt: skip
        payload = app_payload(note, Recipient(key=f"user:{inspector.id}", name="", language="ru"))
        worker = deliver_push(context, page, base, payload)
        (first,) = [n for n in shown_notifications(worker, page) if n["tag"] == note.alert_key]
        assert first["title"] == payload["title"] and first["body"] == payload["body"]
        assert first["sticky"] is True  # critical: stays until someone looks
        assert first["data"]["hash"].startswith("#/alerts?status=all&sensor_id=E001-S01&at=")
        # Tapping it takes the open app to that alarm.
        page.goto("/app/#/settings")
        tap_notification(worker)
        # The app opens that sensor's alarm which began then (here E001-S01's, if one did),
        # else that sensor's alarms.
        page.wait_for_function(
            "() => location.hash.includes('sensor_id=E001-S01') || /^#\\/alerts\\/\\d+$/.test(location.hash)"
        )
        page.wait_for_selector("#filters, dl.facts")
        assert (
            page.evaluate(
                "() => navigator.serviceWorker.ready.then(r => r.getNotifications())"
                ".then(ns => ns.filter(n => n.tag === 'E001-S01|threshold|t').length)"
            )
            == 0
        )  # closed by the tap

        # Signing out: this phone is no longer told, and the session is over.
        access = page.evaluate("() => window.qorgauApp.state.access")
        page.goto("/app/#/settings")
        page.click("#sign-out")
        page.wait_for_selector("#login:not([hidden])")
        context.close()
        r = httpx.get(f"{base}/api/v1/users/me", headers={"Authorization": f"Bearer {access}"})
        assert r.status_code == 401
    with psycopg.connect(url) as conn:
        left = conn.execute(
            "SELECT count(*) FROM push_subscriptions WHERE user_id = %s", (inspector.id,)
        ).fetchone()
    assert left == (0,)


def test_the_shell_opens_offline_and_the_manifest_makes_it_installable(
    pages_database_url: str,
) -> None:
    with serve_api(_settings(pages_database_url)) as base, chromium() as browser:
        manifest = httpx.get(f"{base}/app/manifest.webmanifest").json()
        assert manifest["display"] == "standalone" and manifest["start_url"] == "/app/"
        sizes = {i["sizes"] for i in manifest["icons"] if i["type"] == "image/png"}
        assert {"192x192", "512x512"} <= sizes
        for icon in manifest["icons"]:
            r = httpx.get(base + icon["src"])
            assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
        sw = httpx.get(f"{base}/app/sw.js")
        assert "__VERSION__" not in sw.text and sw.headers["cache-control"] == "no-cache"
        assert httpx.get(f"{base}/app/..%2Fpages.py").status_code == 404
        assert httpx.get(f"{base}/app/index.html").status_code == 404  # the page is /app/

        context = _context(browser, base, PHONE)
        page = context.new_page()
        page.goto("/app/")
        page.wait_for_selector("#login:not([hidden])")
        # Installed: the worker is active and the shell is in its cache.
        assert page.evaluate("() => navigator.serviceWorker.ready.then(r => !!r.active)")
        assert page.evaluate(
            "() => caches.keys().then(k => k.some(n => n.startsWith('qorgau-app-')))"
        )
        page.reload()  # now controlled by the worker
        page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        context.set_offline(True)
        page.reload()
        page.wait_for_selector("#login:not([hidden])")
        assert page.is_visible("#offline")
        assert page.inner_text("#login h1") == "Qorgau"
        screenshots(page, "app-offline")
        context.close()


INTERACTIVE = {"button", "link", "textbox", "combobox", "checkbox", "radio", "menuitem", "tab"}


def _unnamed_controls(page: Any) -> list[str]:
    """Controls the accessibility tree gives no name (what a screen reader would not say)."""
    cdp = page.context.new_cdp_session(page)
    tree = cdp.send("Accessibility.getFullAXTree")["nodes"]
    cdp.detach()
    missing = []
    for node in tree:
        role = node.get("role", {}).get("value")
        if node.get("ignored") or role not in INTERACTIVE:
            continue
        name = (node.get("name") or {}).get("value", "").strip()
        if not name:
            missing.append(f"{role} #{node.get('backendDOMNodeId')}")
    return missing


def test_every_control_has_an_accessible_name_in_every_language(pages_database_url: str) -> None:
    url = pages_database_url
    officer = ensure_user(url, "t-app-a11y", Role.SAFETY_OFFICER, [], "E001")
    _apply(url, _open("E001", "E001-S02", "co", 40.0, 20.0, severity=Severity.WARNING))
    alert = _alert_id(url, "E001-S02")
    with serve_api(_settings(url)) as base, chromium() as browser:
        context = _context(browser, base, PHONE)
        page = context.new_page()
        page.goto("/app/")
        page.wait_for_selector("#login:not([hidden])")
        assert _unnamed_controls(page) == [], "sign-in"
        _sign_in(page, officer.username)
        for lang in ("ru", "kk", "en"):
            page.goto("/app/#/settings")
            page.click(f"#view [data-lang={lang}]")
            for view, ready in (
                ("#/alerts", "#filters"),
                (f"#/alerts/{alert}", "#ack"),
                ("#/enterprises/E001", "#view h2"),
                ("#/sensors/E001-S02", ".ranges"),
                ("#/settings", "#sign-out"),
            ):
                page.goto(f"/app/{view}")
                page.wait_for_selector(ready)
                assert page.evaluate("() => document.documentElement.lang") == lang
                assert _unnamed_controls(page) == [], f"{lang} {view}"
                # Every text the page shows is a text of that language, not a missing key.
                text = page.inner_text("body")
                leftovers = [
                    w for w in text.split() if w.startswith(("hz_", "kind_", "act_", "st_"))
                ]
                assert leftovers == [], f"{lang} {view}: {leftovers}"
        # The check itself sees a control with no name.
        page.evaluate(
            "() => document.getElementById('view').append(document.createElement('button'))"
        )
        assert len(_unnamed_controls(page)) == 1
        context.close()


def test_an_officer_imports_workers_and_a_worker_activates_with_the_code(
    pages_database_url: str,
) -> None:
    url = pages_database_url
    officer = ensure_user(url, "t-app-roster", Role.SAFETY_OFFICER, [], "E001")
    roster = (
        "ФИО;Табельный номер;Участок;Телефон\n"
        "Асанов Ерлан;T-APP-1;E001-Z01;+7 701 234 5678\n"
        "Петрова Анна;T-APP-2;E001-Z99;87012345679\n"  # no such zone: line 3
        "Сейткали Дана;T-APP-3;E001-Z02;+77012345670\n"
    ).encode()
    with serve_api(_settings(url)) as base, chromium() as browser:
        context = _context(browser, base, DESKTOP)
        page = context.new_page()
        _sign_in(page, officer.username)
        page.goto("/app/#/workers")
        page.wait_for_selector("#roster")
        page.set_input_files(
            "#roster", files=[{"name": "roster.csv", "mimeType": "text/csv", "buffer": roster}]
        )
        page.click("#roster-check")
        page.wait_for_selector("table.errors")
        assert page.evaluate("() => window.qorgauApp.lastImport.dry_run") is True
        assert "3" in page.inner_text("table.errors td:first-child")  # the line
        page.click("#roster-import")
        page.wait_for_selector("table.codes")
        result = page.evaluate("() => window.qorgauApp.lastImport")
        assert (result["created"], result["refused"]) == (2, 1)
        screenshots(page, "app-roster-import", full_page=True)
        code = result["codes"][0]["code"]
        context.close()

        phone = _context(browser, base, PHONE)
        page = phone.new_page()
        page.goto(f"/app/#activate={code}")
        page.wait_for_selector("#activate-form")
        assert page.input_value("#activate-code") == code
        page.fill("#activate-password", "a new password 123")
        page.fill("#activate-again", "a new password 12")
        page.click("#activate-form button[type=submit]")
        page.wait_for_selector("#activate-error:not([hidden])")  # the two differ
        page.fill("#activate-again", "a new password 123")
        page.click("#activate-form button[type=submit]")
        page.wait_for_selector("#main:not([hidden])")
        assert "Асанов Ерлан" in page.inner_text("#who")
        assert page.url.endswith("/app/#/")  # the code is not left in the address bar
        phone.close()
        # The new password signs in; the code does not work twice.
        worker = result["codes"][0]["username"]
        r = httpx.post(
            f"{base}/api/v1/login/access-token",
            data={"username": worker, "password": "a new password 123"},
        )
        assert r.status_code == 200, r.text
        again = httpx.post(
            f"{base}/api/v1/login/activate", json={"code": code, "password": "another one 12345"}
        )
        assert again.status_code == 401


def test_a_worker_sees_the_air_of_their_workplace_in_words(pages_database_url: str) -> None:
    """Fresh readings of E001's first zone, one CO sensor past its critical level: the page
    says so in red and in words, the others green, with SOS and the emergency line."""
    url = pages_database_url
    worker = ensure_user(url, "t-app-worker-view", Role.WORKER, [], "E001")
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        zone = conn.execute("SELECT zone_id FROM sensors WHERE id = 'E001-S01'").fetchone()
        assert zone is not None
        conn.execute("UPDATE users SET zone_id = %s WHERE id = %s", (zone[0], worker.id))
        for sensor, hazard, value, unit in (
            ("E001-S01", "co", 150.0, "mg/m3"),  # critical: 100 mg/m3
            ("E001-S02", "co", 4.0, "mg/m3"),
            ("E001-S03", "temperature", 24.0, "degC"),
        ):
            conn.execute(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit) VALUES (%s, %s, 'E001', %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (sensor, now, hazard, value, unit, value, unit),
            )
    with serve_api(_settings(url)) as base, chromium() as browser:
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            context = _context(browser, base, viewport)
            page = context.new_page()
            _sign_in(page, worker.username)
            page.wait_for_selector("section.state")
            assert "red" in page.get_attribute("section.state", "class")
            assert page.locator("ul.sensors li.danger", has_text="150").count() == 1
            assert page.locator("ul.sensors li.ok").count() >= 1
            assert page.locator("a.call[href^='tel:+7']").count() >= 1
            assert page.is_visible("#sos") and page.is_visible("#man-down")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= viewport["width"], f"{name}: {width}px wide"
            page.screenshot(path=str(artifact(f"app-worker-workplace-{name}.png")))
            # SOS asks first: cancelling sends nothing.
            page.click("#sos")
            page.click("#confirm-cancel")
            assert page.evaluate("() => localStorage.getItem('qorgau.app.outbox')") in (None, "[]")
            context.close()


def test_a_new_release_is_offered_and_takes_over_when_the_person_says_so(
    pages_database_url: str, monkeypatch: Any
) -> None:
    """A new release is a new service worker (the API stamps it with a digest of the app's
    files): the open app offers it, keeps running the old one until *Update* is tapped,
    then reloads once under the new one, whose cache replaced the old."""
    import api.pages

    with serve_api(_settings(pages_database_url)) as base, chromium() as browser:
        context = _context(browser, base, PHONE)
        page = context.new_page()
        page.goto("/app/")
        assert page.evaluate("() => navigator.serviceWorker.ready.then(r => !!r.active)")
        old = f"qorgau-app-{api.pages.app_version()}"
        assert page.evaluate("() => caches.keys()") == [old]
        page.reload()
        page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        assert page.is_hidden("#update")

        monkeypatch.setattr(api.pages, "app_version", lambda: "next-release")
        page.evaluate(
            "() => navigator.serviceWorker.getRegistration('/app/').then(r => r.update())"
        )
        page.wait_for_selector("#update:not([hidden])")
        screenshots(page, "app-update-offered")
        # Not switched under the person's fingers: the old worker still controls the page.
        assert page.evaluate("() => caches.keys()").count(old) == 1
        page.wait_for_timeout(500)
        assert page.evaluate("() => window.qorgauApp.state.updating") is False
        with page.expect_navigation():
            page.click("#update-button")
        page.wait_for_function("() => navigator.serviceWorker.controller !== null")
        deadline = time.monotonic() + 10
        while page.evaluate("() => caches.keys()") != ["qorgau-app-next-release"]:
            assert time.monotonic() < deadline, page.evaluate("() => caches.keys()")
            page.wait_for_timeout(100)
        context.close()
