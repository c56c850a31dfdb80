"""`qorgau bench --app`: the people's app on a throttled phone, as Lighthouse would time it.

A fresh database (as `qorgau bench --wall`), a safety officer with a few alarms, the API
served in a thread, and headless Chromium at 360×740 emulating a mid-range phone on a
slow mobile network (Lighthouse's mobile profile: 150 ms round trips, 1.6 Mbit/s down,
750 kbit/s up, the CPU slowed 4×). Measured, each run in a fresh browser context:

* **cold**: nothing cached — from navigation to the sign-in form shown and the main
  thread quiet (no long task for 500 ms: "interactive"), the bytes transferred (the
  page weight of the app's shell) and the requests;
* **warm**: the same again with the service worker installed (the shell from its cache);
* **signed in**: from the click on *Sign in* to the officer's alarms listed.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg

from alerts.lifecycle import apply_machine_events
from api.security import hash_password
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.settings import Settings
from qorgau.bench import bench_settings
from qorgau.bench_wall import scratch_database
from qorgau.browser import chromium, serve_api
from storage import people

__all__ = ["AppBenchResult", "measure_app", "run_app_bench"]

PHONE = {"width": 360, "height": 740}
# Lighthouse's "slow 4G" mobile profile (its default for mobile runs).
LATENCY_MS = 150.0
DOWN_BYTES_S = 1.6e6 / 8
UP_BYTES_S = 750e3 / 8
CPU_SLOWDOWN = 4.0
QUIET_MS = 500.0
_PASSWORD = "bench-app-password-0123"

# Long tasks, watched from before the app's own scripts run.
_WATCH_JS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longTasks.push(e.startTime + e.duration);
}).observe({ type: "longtask", buffered: true });
"""


@dataclass(frozen=True, slots=True)
class LoadResult:
    name: str
    form_shown_ms: float  # navigation start -> the sign-in form visible
    interactive_ms: float  # ... and no long task for QUIET_MS after it
    transferred_bytes: int  # over the network (the service worker's cache costs none)
    requests: int


@dataclass(frozen=True, slots=True)
class AppBenchResult:
    chromium: str
    profile: str
    loads: list[LoadResult]
    sign_in_to_alarms_ms: float
    alarms: int
    shell_bytes: dict[str, int]  # the app's files as served (uncompressed)


def _officer_with_alarms(dsn: str, alarms: int) -> str:
    """A safety officer of E001 and ``alarms`` open alarms at E001; their user name."""
    username = "bench.app.officer"
    with psycopg.connect(dsn) as conn:
        people.create_user(
            conn,
            username=username,
            role=Role.SAFETY_OFFICER,
            password_hash=hash_password(_PASSWORD),
            enterprise_id="E001",
        )
        sensors = [
            (r[0], r[1])
            for r in conn.execute("SELECT id, hazard FROM sensors WHERE enterprise_id = 'E001'")
        ]
    now = datetime.now(UTC)
    events = [
        AlertEvent(
            action=AlertAction.OPEN,
            key=f"{sensor}|threshold|bench-{i}",
            kind=AlertKind.THRESHOLD,
            severity=Severity.CRITICAL if i % 3 == 0 else Severity.WARNING,
            enterprise_id="E001",
            sensor_id=sensor,
            hazard=hazard,
            ts=now - timedelta(minutes=i),
            value=10.0 + i,
            message="bench",
            limit=10.0,
        )
        for i, (sensor, hazard) in enumerate(sensors[:alarms])
    ]

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            await apply_machine_events(conn, events)

    import asyncio

    asyncio.run(go())
    return username


def _throttle(context: Any, page: Any) -> Any:
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": LATENCY_MS,
            "downloadThroughput": DOWN_BYTES_S,
            "uploadThroughput": UP_BYTES_S,
        },
    )
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": CPU_SLOWDOWN})
    return cdp


def _load(name: str, context: Any, base: str) -> LoadResult:
    page = context.new_page()
    page.add_init_script(_WATCH_JS)
    cdp = _throttle(context, page)
    transferred: list[int] = []
    cdp.on("Network.loadingFinished", lambda e: transferred.append(int(e["encodedDataLength"])))
    page.goto(f"{base}/app/", wait_until="commit")
    page.wait_for_selector("#login:not([hidden])", timeout=120_000)
    shown = float(page.evaluate("() => performance.now()"))
    # Interactive: the main thread has had no long task for QUIET_MS.
    while True:
        page.wait_for_timeout(QUIET_MS)
        now = float(page.evaluate("() => performance.now()"))
        last = float(page.evaluate("() => Math.max(0, ...window.__longTasks)"))
        if now - max(last, shown) >= QUIET_MS:
            break
    interactive = max(shown, last)
    page.close()
    return LoadResult(name, shown, interactive, sum(transferred), len(transferred))


def measure_app(settings: Settings, *, alarms: int = 10) -> AppBenchResult:
    assert settings.database_url is not None
    username = _officer_with_alarms(settings.database_url, alarms)
    from api.pages import APP_URL

    with serve_api(settings) as base, chromium() as browser:
        import httpx

        shell = {
            name: len(httpx.get(f"{base}{APP_URL}{name}").content)
            for name in ("", "app.js", "i18n.js", "app.css", "manifest.webmanifest", "sw.js")
        }
        context = browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
        loads = [_load("cold", context, base)]
        # The service worker has installed by now (or will, once the page settles).
        warm = context.new_page()
        warm.goto(f"{base}/app/")
        warm.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
        warm.close()
        loads.append(_load("warm (service worker)", context, base))
        page = context.new_page()
        _throttle(context, page)
        page.goto(f"{base}/app/")
        page.wait_for_selector("#login:not([hidden])", timeout=120_000)
        page.fill("#username", username)
        page.fill("#password", _PASSWORD)
        started = time.perf_counter()
        page.click("#login-button")
        page.wait_for_selector("ul.alerts li", timeout=120_000)
        signed_in_ms = (time.perf_counter() - started) * 1000
        listed = page.locator("ul.alerts li").count()
        context.close()
        return AppBenchResult(
            chromium=browser.version,
            profile=(
                f"360×740, {LATENCY_MS:.0f} ms RTT, {DOWN_BYTES_S * 8 / 1e6:.1f} Mbit/s down,"
                f" {UP_BYTES_S * 8 / 1e3:.0f} kbit/s up, CPU {CPU_SLOWDOWN:.0f}× slower"
            ),
            loads=loads,
            sign_in_to_alarms_ms=signed_in_ms,
            alarms=listed,
            shell_bytes=shell,
        )


def run_app_bench(settings: Settings, args: argparse.Namespace) -> AppBenchResult:
    settings = bench_settings(settings, "bench-app", workers=None)
    with scratch_database(settings) as dsn:
        result = measure_app(settings.model_copy(update={"database_url": dsn}))
    if args.json:
        print(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2).decode())
        return result
    print(f"the people's app, headless Chromium {result.chromium}: {result.profile}")
    for load in result.loads:
        print(
            f"  {load.name:<22} sign-in form shown {load.form_shown_ms:,.0f} ms,"
            f" interactive {load.interactive_ms:,.0f} ms;"
            f" {load.transferred_bytes / 1024:,.1f} KiB over the network in {load.requests} requests"
        )
    print(f"  sign-in click → {result.alarms} alarms listed: {result.sign_in_to_alarms_ms:,.0f} ms")
    total = sum(result.shell_bytes.values())
    print(
        f"  the shell as served: {total / 1024:,.1f} KiB ("
        + ", ".join(f"{k or 'index'} {v / 1024:,.1f}" for k, v in result.shell_bytes.items())
        + ")"
    )
    return result
