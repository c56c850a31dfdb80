"""`qorgau bench --wall N`: the control room's wall in a real Chromium with N alarms open.

A fresh database (an embedded PostgreSQL, or a throwaway database on the server of
``QORGAU_DATABASE_URL``) is migrated and seeded; N alarms are opened in the scope of a
national control room through the real lifecycle (`alerts.lifecycle`): spread over every
enterprise's zones and sensors (the seed's sensors and, for large N, more of the same
kinds in the same zones), a mix of kinds and severities as detection raises them, limits
and sources from the limits catalogue, ages from seconds to a day, a fifth acknowledged
and some critical ones escalated. The API is served in a thread, and the wall is opened
at 1920×1080 in headless Chromium and signed into by a click.

What the page does is watched from inside it by a script the bench adds before the
wall's own (no change to the wall): every frame the wall renders (its script time, the
style and layout after it, and the frame until painted), the age ticker, long tasks, and
when each change the bench makes is on screen. Measured:

* **first render**: from the click on *Sign in* to the frame that painted all N rows;
* **per update**: changes made through the real lifecycle (a third new alarms opened by
  the machine, a third acknowledged by another operator, a third resolved — by that
  operator, or a warning cleared by the machine) at a steady rate and then in a burst as
  fast as they commit; per render the script and frame time, from each commit to its row
  painted, and the long tasks (main thread busy over 50 ms);
* **memory**: the JS heap after a garbage collection, and the DOM's node count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import shutil
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from alerts.lifecycle import Actor, Resolution, acknowledge, apply_machine_events, resolve
from api.security import hash_password
from core.access import Role, Scope
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import load_catalogue
from core.limits import Limits, load_limits
from core.reference import load_reference
from core.settings import Settings
from core.types import Sensor
from qorgau.bench import bench_settings
from qorgau.browser import chromium, serve_api
from qorgau.launcher import embedded_postgres
from storage import alerting, people
from storage.migrate import migrate
from storage.reference import add_sensors, seed_reference

if TYPE_CHECKING:
    from playwright.sync_api import Page, ViewportSize

__all__ = [
    "PhaseResult",
    "Spread",
    "WallBenchResult",
    "measure_wall",
    "run_wall_bench",
    "scratch_database",
]

VIEWPORT: ViewportSize = {"width": 1920, "height": 1080}
# Playwright waits by polling every frame unless told otherwise: a page drawing every frame
# for the bench's sake would be measured busier than it is.
_POLL_MS = 50
# Kinds as detection raises them on a busy day, by weight; a kind a sensor cannot have
# (a limit its hazard has no rule for) goes to the next sensor that can.
_KIND_WEIGHTS = {
    AlertKind.THRESHOLD: 28,
    AlertKind.STEL: 12,
    AlertKind.TWA: 10,
    AlertKind.CEILING: 3,
    AlertKind.ANOMALY: 15,
    AlertKind.SENSOR_FAULT: 10,
    AlertKind.STALE: 15,
    AlertKind.FIRE: 4,
    AlertKind.SOS: 3,
}
_MICROCLIMATE = {"temperature", "humidity"}
_FIRE_HAZARDS = {"temperature", "smoke"}
_CRITICAL_SHARE = 0.3  # of the limit alarms whose rule has both levels
_ACKNOWLEDGED_SHARE = 0.2
_SENSORS_PER_ALERT = 0.7  # sensors in alarm per alarm: some hold two (a limit and its average)


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, 95th percentile and maximum of some figures (nan when there were none)."""

    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:
            return cls(math.nan, math.nan, math.nan)
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        return cls(round(statistics.median(ordered), 2), round(p95, 2), round(ordered[-1], 2))


@dataclass
class PhaseResult:
    name: str
    changes: int
    asked_rate: float | None  # changes/s, None: as fast as they commit
    rate: float  # changes/s achieved
    renders: int
    render_script_ms: Spread  # the wall's render() (its requestAnimationFrame callback)
    render_layout_ms: Spread  # style and layout of what it changed
    render_frame_ms: Spread  # from the callback to the frame painted
    commit_to_screen_ms: Spread  # a change committed → its row painted
    long_tasks: int
    long_task_ms: float
    missing: int  # changes never seen on the wall


@dataclass
class WallBenchResult:
    alerts: int
    critical: int
    acknowledged: int
    enterprises: int
    sensors: int
    rows_rendered: int
    sign_in_to_all_rows_ms: float  # the click → the frame that painted all rows
    sign_in_ms: float  # the click → the token's answer
    alert_list_ms: float  # the first page of /alerts asked → the last one read
    first_render_script_ms: float
    first_render_frame_ms: float
    age_tick_script_ms: Spread  # the 1-s age ticker, while nothing changes
    age_tick_layout_ms: Spread
    idle_long_tasks: int
    phases: list[PhaseResult] = field(default_factory=list)
    js_heap_mb: float = math.nan
    dom_nodes: int = 0
    chromium: str = ""
    cores: int = 0


# --- the alarms ---------------------------------------------------------------------------


class _Alarms:
    """Alarms as detection raises them, on (sensor, kind) pairs never used before in the run
    (a pair used before would re-open its old alert instead of opening a new one)."""

    def __init__(self, sensors: list[Sensor], limits: Limits, rng: random.Random) -> None:
        self._limits = limits
        self._rng = rng
        self._used: set[tuple[str, AlertKind]] = set()
        self._pools = {kind: [s for s in sensors if self._can(s, kind)] for kind in _KIND_WEIGHTS}
        for pool in self._pools.values():
            rng.shuffle(pool)
        self._next = dict.fromkeys(_KIND_WEIGHTS, 0)
        self._workers = 0
        self._zones = sorted({(s.enterprise_id, s.zone_id) for s in sensors})

    def _can(self, sensor: Sensor, kind: AlertKind) -> bool:
        if kind in (AlertKind.STALE, AlertKind.SENSOR_FAULT):
            return True
        if kind is AlertKind.ANOMALY:
            return sensor.hazard not in _MICROCLIMATE
        if kind is AlertKind.FIRE:
            return sensor.hazard in _FIRE_HAZARDS
        if kind is AlertKind.SOS:
            return False  # a worker's, not a sensor's
        return any(r.kind is kind for r in self._limits.rules(sensor.hazard))

    def _sensor_for(self, kind: AlertKind) -> Sensor | None:
        pool = self._pools[kind]
        while self._next[kind] < len(pool):
            sensor = pool[self._next[kind]]
            self._next[kind] += 1
            if (sensor.id, kind) not in self._used:
                self._used.add((sensor.id, kind))
                return sensor
        return None

    def next(self, ts: datetime) -> AlertEvent:
        kinds = list(_KIND_WEIGHTS)
        kind = self._rng.choices(kinds, weights=[_KIND_WEIGHTS[k] for k in kinds])[0]
        if kind is AlertKind.SOS:
            return self._sos(ts)
        for candidate in [kind, *kinds]:
            if candidate is AlertKind.SOS:
                continue
            sensor = self._sensor_for(candidate)
            if sensor is not None:
                return self._alarm(sensor, candidate, ts)
        return self._sos(ts)  # every sensor holds every alarm it can: workers still call

    def _alarm(self, s: Sensor, kind: AlertKind, ts: datetime) -> AlertEvent:
        rng = self._rng
        severity, value, limit, source = Severity.WARNING, None, None, ""
        rule = next((r for r in self._limits.rules(s.hazard) if r.kind is kind), None)
        if rule is not None:
            both = rule.limit_for(Severity.WARNING) is not None
            critical = rule.limit_for(Severity.CRITICAL) is not None and (
                not both or rng.random() < _CRITICAL_SHARE
            )
            severity = Severity.CRITICAL if critical else Severity.WARNING
            limit = rule.limit_for(severity)
            assert limit is not None
            below = rule.warning_below is not None or rule.critical_below is not None
            value = limit * (rng.uniform(0.85, 0.98) if below else rng.uniform(1.02, 1.8))
            source = rule.source
            message = f"{s.hazard} {value:.3g} beyond {limit:g} ({kind.value})"
        elif kind is AlertKind.FIRE:
            severity, source = Severity.CRITICAL, "fire"
            value = rng.uniform(60.0, 90.0) if s.hazard == "temperature" else rng.uniform(10, 30)
            message = f"fire in zone {s.zone_id}: {s.hazard} {value:.3g}"
        elif kind is AlertKind.ANOMALY:
            source = "model:departure"
            value = rng.uniform(1.0, 50.0)
            message = f"{s.hazard} {value:.3g} unusual for {s.id}"
        elif kind is AlertKind.STALE:
            message = f"{s.id} silent"
        else:
            message = f"{s.id}: a value no sensor of {s.hazard} can read"
        return AlertEvent(
            action=AlertAction.OPEN,
            key=f"{s.id}|{kind.value}|{ts.isoformat()}",
            kind=kind,
            severity=severity,
            enterprise_id=s.enterprise_id,
            sensor_id=s.id,
            hazard=s.hazard,
            ts=ts,
            value=value,
            message=message,
            limit=limit,
            zone_id=s.zone_id,
            details={"source": source},
        )

    def _sos(self, ts: datetime) -> AlertEvent:
        self._workers += 1
        enterprise, zone = self._rng.choice(self._zones)
        worker = f"w.{self._workers:04d}"
        return AlertEvent(
            action=AlertAction.OPEN,
            key=f"worker:{worker}|sos|{ts.isoformat()}",
            kind=AlertKind.SOS,
            severity=Severity.CRITICAL,
            enterprise_id=enterprise,
            sensor_id=f"worker:{worker}",
            hazard="sos",
            ts=ts,
            value=None,
            message=f"SOS from worker {worker} in zone {zone}",
            zone_id=zone,
        )


def _sensors(dsn: str, alerts: int) -> list[Sensor]:
    """The seed's sensors and, when there are too few for ``alerts``, more of the same kinds
    in the same zones (registered like any sensor)."""
    seed = list(load_reference().sensors)
    extra = []
    for k in range(max(0, math.ceil(alerts * _SENSORS_PER_ALERT) - len(seed))):
        like = seed[k % len(seed)]
        extra.append(
            Sensor(
                f"{like.enterprise_id}-X{k:04d}",
                like.enterprise_id,
                like.zone_id,
                like.hazard,
                like.interval_s,
                model=like.model,
            )
        )
    if extra:
        add_sensors(dsn, extra)
    return seed + extra


@dataclass(frozen=True, slots=True)
class _Open:
    """An alarm on the wall, as the bench knows it (to pick what to change)."""

    id: int
    key: str
    kind: str
    severity: str
    status: str
    enterprise_id: str
    sensor_id: str
    hazard: str


async def _still_open(conn: psycopg.AsyncConnection[Any]) -> list[_Open]:
    cur = await conn.execute(
        "SELECT id, alert_key, kind, severity, status, enterprise_id, sensor_id, hazard"
        " FROM alerts WHERE status <> 'resolved' AND state <> 'retracted' ORDER BY id"
    )
    return [_Open(*row) for row in await cur.fetchall()]


@dataclass(frozen=True, slots=True)
class _Scene:
    username: str  # the national control room whose wall is opened
    password: str
    operator: Actor  # another control room's operator, who acts on alarms meanwhile
    alarms: _Alarms  # more alarms, for the changes
    sensors: int


def _scene(dsn: str, alerts: int, rng: random.Random) -> _Scene:
    """``alerts`` alarms open in a national control room's scope, and who is who."""
    password = secrets.token_urlsafe(16)
    run = uuid.uuid4().hex[:6]
    hashed = hash_password(password)
    with psycopg.connect(dsn) as conn:
        room = people.create_user(
            conn,
            username=f"bench-wall-{run}",
            role=Role.CONTROL_ROOM,
            password_hash=hashed,
            full_name="National control room",
        )
        other = people.create_user(
            conn, username=f"bench-operator-{run}", role=Role.CONTROL_ROOM, password_hash=hashed
        )
    operator = Actor(other.id, other.username, Role.CONTROL_ROOM, Scope(national=True))
    sensors = _sensors(dsn, alerts)
    alarms = _Alarms(sensors, load_limits(), rng)
    now = datetime.now(UTC)
    # Ages from half a minute to a day, log-uniform: every format of the age column.
    events = [
        alarms.next(now - timedelta(seconds=30 * 2880 ** rng.random())) for _ in range(alerts)
    ]

    async def open_them() -> None:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            async with conn.transaction():
                await apply_machine_events(conn, events)
            for a in await _still_open(conn):
                async with conn.transaction():
                    if rng.random() < _ACKNOWLEDGED_SHARE:
                        await acknowledge(conn, actor=operator, alert_id=a.id, at=now)
                    elif a.severity == "critical" and rng.random() < 0.3:
                        # as the notifier's escalation would have by now
                        level = rng.choice((1, 1, 2))
                        await alerting.update_alert(conn, alert_id=a.id, escalation_level=level)

    asyncio.run(open_them())
    return _Scene(room.username, password, operator, alarms, len(sensors))


# --- changes through the lifecycle, from a thread of its own ---------------------------------


@dataclass(frozen=True, slots=True)
class _Change:
    n: int
    action: str  # open, acknowledge, resolve, clear
    want: str  # what the row shows once it is done: open, acknowledged, gone
    alert_id: int | None = None
    event: AlertEvent | None = None

    def expectation(self) -> dict[str, Any]:
        key = None if self.event is None else f"{self.event.sensor_id}|{self.event.kind.value}"
        return {"n": self.n, "id": self.alert_id, "key": key, "want": self.want}


class _Lifecycle:
    """Makes the bench's changes on one connection, each in its own transaction, on an event
    loop in a thread of its own (Playwright's sync API holds the main thread's)."""

    def __init__(self, dsn: str, operator: Actor) -> None:
        self._dsn = dsn
        self._operator = operator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-lifecycle")
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def __enter__(self) -> _Lifecycle:
        self._thread.start()
        self._call(self._connect())
        return self

    def __exit__(self, *_exc: object) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _connect(self) -> None:
        self._conn = await psycopg.AsyncConnection.connect(self._dsn, autocommit=True)

    async def _close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def still_open(self) -> list[_Open]:
        assert self._conn is not None
        return list(self._call(_still_open(self._conn)))

    def run(self, changes: list[_Change], rate: float | None) -> dict[int, float]:
        """Make ``changes`` (at ``rate`` a second, or as fast as they commit); when each
        committed, as epoch seconds (the clock the page's ``Date.now()`` reads)."""
        return dict(self._call(self._run(changes, rate)))

    async def _run(self, changes: list[_Change], rate: float | None) -> dict[int, float]:
        conn = self._conn
        assert conn is not None
        committed: dict[int, float] = {}
        start = time.monotonic()
        for i, c in enumerate(changes):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            now = datetime.now(UTC)
            async with conn.transaction():
                if c.action in ("open", "clear"):
                    assert c.event is not None
                    await apply_machine_events(conn, [c.event])
                elif c.action == "acknowledge":
                    assert c.alert_id is not None
                    await acknowledge(conn, actor=self._operator, alert_id=c.alert_id, at=now)
                else:
                    assert c.alert_id is not None
                    await resolve(
                        conn,
                        actor=self._operator,
                        alert_id=c.alert_id,
                        reason=Resolution.FALSE_ALARM,
                        comment=None,
                        at=now,
                    )
            committed[c.n] = time.time()
        return committed


def _plan(
    count: int, first: int, on_wall: list[_Open], alarms: _Alarms, rng: random.Random
) -> list[_Change]:
    """``count`` changes, a third of each kind, none touching the same alarm twice."""
    untouched = list(on_wall)
    rng.shuffle(untouched)
    changes: list[_Change] = []
    now = datetime.now(UTC)
    for n in range(first, first + count):
        what = rng.choices(("open", "acknowledge", "resolve"), weights=(35, 30, 35))[0]
        if what == "acknowledge":
            target = next((a for a in untouched if a.status == "open"), None)
            if target is not None:
                untouched.remove(target)
                changes.append(_Change(n, "acknowledge", "acknowledged", alert_id=target.id))
                continue
        if what == "resolve" and untouched:
            a = untouched.pop()
            if a.severity == "warning" and a.kind != "sos" and rng.random() < 0.5:
                # the condition is over: the machine resolves a warning by itself
                clear = AlertEvent(
                    action=AlertAction.CLEAR,
                    key=a.key,
                    kind=AlertKind(a.kind),
                    severity=Severity.WARNING,
                    enterprise_id=a.enterprise_id,
                    sensor_id=a.sensor_id,
                    hazard=a.hazard,
                    ts=now,
                    value=None,
                    message=f"{a.sensor_id} back to normal",
                )
                changes.append(_Change(n, "clear", "gone", alert_id=a.id, event=clear))
            else:
                changes.append(_Change(n, "resolve", "gone", alert_id=a.id))
            continue
        e = alarms.next(now - timedelta(seconds=rng.uniform(0, 5)))
        changes.append(_Change(n, "open", "open", event=e))
    return changes


# --- the page --------------------------------------------------------------------------------

# Added before the wall's own script: it wraps requestAnimationFrame (the wall renders in
# one) and setInterval (its age ticker) to time them, and checks after every render which
# of the changes the bench expects are now on screen. Its own checking is left out of the
# figures.
_WATCH_JS = """
(() => {
  const b = window.qorgauBench = {
    want: 0, clickAt: null, allRowsAt: null, firstFull: null,
    frames: [], ticks: [], longTasks: [], expect: [], seen: [],
  };
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("#login-button")) b.clickAt = performance.now();
  }, true);
  for (const type of ["longtask"]) {
    if (!PerformanceObserver.supportedEntryTypes.includes(type)) continue;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longTasks.push([e.startTime, e.duration]);
    }).observe({ type, buffered: true });
  }
  function onScreen() {
    // Which expected changes does the DOM now show? (a new alarm by sensor and kind)
    const rows = document.getElementById("rows");
    const full = b.want > 0 && b.allRowsAt === null && rows && rows.childElementCount >= b.want;
    if (!b.expect.length || !rows) return [[], full];
    const byId = new Map();
    for (const tr of rows.children) byId.set(tr.dataset.id, tr);
    let fresh = null;
    const done = [];
    b.expect = b.expect.filter((x) => {
      let id = x.id;
      if (id === null) {
        if (fresh === null) {
          fresh = new Map();
          for (const a of window.qorgauWall.state.alerts.values()) fresh.set(`${a.sensor_id}|${a.kind}`, a.id);
        }
        id = fresh.get(x.key);
        if (id === undefined) return true;
      }
      const tr = byId.get(String(id));
      const shown = x.want === "gone" ? tr === undefined : tr !== undefined && tr.classList.contains(x.want);
      if (shown) done.push(x.n);
      return !shown;
    });
    return [done, full];
  }
  const raf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (cb) => raf((ts) => {
    const before = window.qorgauWall?.renders;
    const t0 = performance.now();
    cb(ts);
    const t1 = performance.now();
    if (window.qorgauWall?.renders === before) return; // not the wall's render (Playwright's polling)
    void document.body.offsetHeight; // style and layout now rather than later in this frame
    const t2 = performance.now();
    const [done, full] = onScreen();
    const own = performance.now() - t2;
    const rows = document.getElementById("rows")?.childElementCount ?? 0;
    setTimeout(() => { // runs once this frame is painted
      const t3 = performance.now();
      const at = Date.now();
      b.frames.push({ script: t1 - t0, layout: t2 - t1, frame: t3 - t0 - own, rows });
      for (const n of done) b.seen.push([n, at]);
      if (full) { b.allRowsAt = t3; b.firstFull = b.frames[b.frames.length - 1]; }
    }, 0);
  });
  const every = window.setInterval.bind(window);
  window.setInterval = (cb, ms, ...args) => every(() => {
    const t0 = performance.now();
    cb(...args);
    const t1 = performance.now();
    void document.body.offsetHeight;
    b.ticks.push({ script: t1 - t0, layout: performance.now() - t1 });
  }, ms);
})();
"""


def _phase_window(page: Page) -> None:
    page.evaluate(
        "() => { const b = window.qorgauBench; b.frames = []; b.ticks = []; b.longTasks = []; b.seen = []; }"
    )


def _phase(
    page: Page,
    lifecycle: _Lifecycle,
    alarms: _Alarms,
    rng: random.Random,
    *,
    name: str,
    count: int,
    first: int,
    rate: float | None,
    timeout_s: float,
) -> PhaseResult:
    changes = _plan(count, first, lifecycle.still_open(), alarms, rng)
    _phase_window(page)
    page.evaluate(
        "(xs) => { window.qorgauBench.expect.push(...xs); }", [c.expectation() for c in changes]
    )
    committed = lifecycle.run(changes, rate)
    took = max(committed.values()) - min(committed.values())
    from playwright.sync_api import TimeoutError as NotShown

    with contextlib.suppress(NotShown):  # a change never shown is a figure, not a crash
        page.wait_for_function(
            "() => window.qorgauBench.expect.length === 0",
            timeout=timeout_s * 1000,
            polling=_POLL_MS,
        )
    page.wait_for_timeout(200)  # the last frame's figures land after its paint
    got = page.evaluate(
        "() => { const b = window.qorgauBench; const left = b.expect.length; b.expect = [];"
        " return { frames: b.frames, longTasks: b.longTasks, seen: b.seen, left }; }"
    )
    frames = got["frames"]
    delays = [at - 1000 * committed[n] for n, at in got["seen"] if n in committed]
    return PhaseResult(
        name=name,
        changes=len(changes),
        asked_rate=rate,
        rate=round((len(changes) - 1) / took, 1) if took > 0 else math.nan,
        renders=len(frames),
        render_script_ms=Spread.of([f["script"] for f in frames]),
        render_layout_ms=Spread.of([f["layout"] for f in frames]),
        render_frame_ms=Spread.of([f["frame"] for f in frames]),
        commit_to_screen_ms=Spread.of(delays),
        long_tasks=len(got["longTasks"]),
        long_task_ms=round(sum(d for _, d in got["longTasks"]), 1),
        missing=int(got["left"]),
    )


def measure_wall(
    settings: Settings,
    *,
    alerts: int,
    updates: int,
    rate: float,
    idle_s: float = 5.5,
    seed: int = 12,
    timeout_s: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> WallBenchResult:
    """The wall's figures with ``alerts`` alarms open, on ``settings.database_url`` (a
    migrated, seeded database of the bench's own: alarms are added to it). ``updates``
    changes at ``rate`` a second, then as many in a burst; ``idle_s`` seconds of nothing
    but the age ticker in between."""
    dsn = settings.database_url
    assert dsn is not None
    say = progress or (lambda _text: None)
    rng = random.Random(seed)
    say(f"opening {alerts:,} alarms through the lifecycle…")
    scene = _scene(dsn, alerts, rng)
    with (
        _Lifecycle(dsn, scene.operator) as lifecycle,
        serve_api(settings) as base,
        chromium() as browser,
    ):
        on_wall = lifecycle.still_open()
        context = browser.new_context(viewport=VIEWPORT)
        context.add_init_script(_WATCH_JS)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        page.goto(f"{base}/wall")
        page.evaluate("(n) => { window.qorgauBench.want = n; }", len(on_wall))
        page.fill("#username", scene.username)
        page.fill("#password", scene.password)
        say("signing in…")
        page.click("#login-button")
        page.wait_for_function(
            "() => window.qorgauBench.allRowsAt !== null",
            timeout=timeout_s * 1000,
            polling=_POLL_MS,
        )
        page.wait_for_function("() => window.qorgauWall.state.feedReady === true", polling=_POLL_MS)
        first = page.evaluate(
            """() => {
              const b = window.qorgauBench;
              const res = performance.getEntriesByType("resource");
              const lists = res.filter((r) => r.name.includes("/api/v1/alerts?"));
              const token = res.find((r) => r.name.includes("/login/access-token"));
              return {
                all: b.allRowsAt - b.clickAt, full: b.firstFull,
                rows: document.getElementById("rows").childElementCount,
                signIn: token ? token.responseEnd - b.clickAt : null,
                list: lists.length ? Math.max(...lists.map((r) => r.responseEnd))
                  - Math.min(...lists.map((r) => r.startTime)) : null,
              };
            }"""
        )
        say("idle (the age ticker alone)…")
        _phase_window(page)
        page.wait_for_timeout(1000 * idle_s)
        idle = page.evaluate(
            "() => ({ ticks: window.qorgauBench.ticks, longTasks: window.qorgauBench.longTasks })"
        )
        phases: list[PhaseResult] = []
        for name, phase_rate in ((f"steady {rate:g}/s", rate), ("burst", None)):
            say(f"{updates} changes, {name}…")
            phases.append(
                _phase(
                    page,
                    lifecycle,
                    scene.alarms,
                    rng,
                    name=name,
                    count=updates,
                    first=len(phases) * updates,
                    rate=phase_rate,
                    timeout_s=timeout_s,
                )
            )
        cdp.send("HeapProfiler.collectGarbage")
        heap = cdp.send("Runtime.getHeapUsage")
        dom = cdp.send("Memory.getDOMCounters")
        version = browser.version
        context.close()
    critical = sum(1 for a in on_wall if a.severity == "critical")
    acked = sum(1 for a in on_wall if a.status == "acknowledged")
    return WallBenchResult(
        alerts=len(on_wall),
        critical=critical,
        acknowledged=acked,
        enterprises=len({a.enterprise_id for a in on_wall}),
        sensors=scene.sensors,
        rows_rendered=int(first["rows"]),
        sign_in_to_all_rows_ms=round(first["all"], 1),
        sign_in_ms=round(first["signIn"] or math.nan, 1),
        alert_list_ms=round(first["list"] or math.nan, 1),
        first_render_script_ms=round(first["full"]["script"], 1),
        first_render_frame_ms=round(first["full"]["frame"], 1),
        age_tick_script_ms=Spread.of([t["script"] for t in idle["ticks"]]),
        age_tick_layout_ms=Spread.of([t["layout"] for t in idle["ticks"]]),
        idle_long_tasks=len(idle["longTasks"]),
        phases=phases,
        js_heap_mb=round(heap["usedSize"] / 2**20, 1),
        dom_nodes=int(dom["nodes"]),
        chromium=version,
        cores=os.cpu_count() or 0,
    )


# --- the command -----------------------------------------------------------------------------


@contextmanager
def scratch_database(settings: Settings) -> Iterator[str]:
    """A fresh, migrated and seeded database, dropped afterwards: on the server of
    ``QORGAU_DATABASE_URL`` when set (never in its own database), else on an embedded
    PostgreSQL of the bench's own."""
    server = settings.database_url
    if server is None:
        pgdata = settings.state_dir.resolve() / "pgdata"
        shutil.rmtree(pgdata, ignore_errors=True)
        server = str(embedded_postgres(pgdata, cleanup_mode="delete").get_uri())
    name = f"qorgau_bench_wall_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(server, dbname=name)
    try:
        migrate(dsn, timescale=settings.timescale)
        seed_reference(dsn, load_reference())
        yield dsn
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def run_wall_bench(settings: Settings, args: argparse.Namespace) -> WallBenchResult:
    settings = bench_settings(settings, "bench-wall", workers=None)
    load_catalogue()  # a broken catalogue fails here, not in the API's thread
    say = None if args.json else (lambda text: print(f"  {text}", flush=True))
    with scratch_database(settings) as dsn:
        result = measure_wall(
            settings.model_copy(update={"database_url": dsn}),
            alerts=args.wall,
            updates=args.updates,
            rate=args.update_rate,
            progress=say,
        )
    print_wall_bench(result, as_json=args.json)
    return result


def _ms(s: Spread) -> str:
    return f"{s.p50:,.1f} / {s.p95:,.1f} / {s.max:,.1f}"


def print_wall_bench(r: WallBenchResult, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(asdict(r), option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"the wall with {r.alerts:,} alarms open ({r.critical:,} critical, {r.acknowledged:,}"
        f" acknowledged; {r.enterprises} enterprises, {r.sensors:,} sensors), 1920×1080,"
        f" headless Chromium {r.chromium}, {r.cores} cores shared with everything else"
        " (the API, PostgreSQL and the bench on the same machine)"
    )
    console.print(
        f"  sign-in click → all {r.rows_rendered:,} rows painted: {r.sign_in_to_all_rows_ms:,.0f} ms"
        f"  (sign-in answered at {r.sign_in_ms:,.0f} ms; the list read in {r.alert_list_ms:,.0f} ms;"
        f" its render {r.first_render_script_ms:,.1f} ms script, {r.first_render_frame_ms:,.1f} ms"
        " to painted)"
    )
    console.print(
        f"  age ticker, every second: {_ms(r.age_tick_script_ms)} ms script,"
        f" {_ms(r.age_tick_layout_ms)} ms layout (median / p95 / max);"
        f" long tasks while idle: {r.idle_long_tasks}"
    )
    console.print(f"  JS heap {r.js_heap_mb:,.1f} MB after GC, {r.dom_nodes:,} DOM nodes")
    t = Table(title="per update (median / p95 / max)")
    t.add_column("")
    for p in r.phases:
        t.add_column(p.name, justify="right")
    rows: list[tuple[str, Any]] = [
        ("changes (new, acknowledged, resolved)", lambda p: f"{p.changes:,}"),
        ("achieved rate (changes/s)", lambda p: f"{p.rate:,.1f}"),
        ("renders", lambda p: f"{p.renders:,}"),
        ("render script (ms)", lambda p: _ms(p.render_script_ms)),
        ("render style + layout (ms)", lambda p: _ms(p.render_layout_ms)),
        ("render to painted (ms)", lambda p: _ms(p.render_frame_ms)),
        ("commit → row painted (ms)", lambda p: _ms(p.commit_to_screen_ms)),
        ("long tasks (count / total ms)", lambda p: f"{p.long_tasks} / {p.long_task_ms:,.0f}"),
        ("changes never shown", lambda p: f"{p.missing}"),
    ]
    for label, cell in rows:
        t.add_row(label, *[cell(p) for p in r.phases])
    console.print(t)
