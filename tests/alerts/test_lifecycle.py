"""An alert's life against a real database: the machine's changes and people's actions.

Each test uses its own sensor id, so tests sharing the session's database never
touch each other's alerts.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from alerts import lifecycle
from alerts.lifecycle import Actor, AlertNotFound, LifecycleError, Resolution, TransitionRefused
from core.access import Role, Scope
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from storage import alerting
from tests.people import ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
NATIONAL = Scope(national=True)


def _sensor() -> str:
    return f"E001-T{uuid.uuid4().hex[:8]}"


def _event(
    action: AlertAction,
    sensor: str,
    opened: datetime,
    ts: datetime,
    severity: Severity = Severity.WARNING,
    value: float = 30.0,
    kind: AlertKind = AlertKind.THRESHOLD,
) -> AlertEvent:
    return AlertEvent(
        action=action,
        key=f"{sensor}|{kind.value}|{opened.isoformat()}",
        kind=kind,
        severity=severity,
        enterprise_id="E001",
        sensor_id=sensor,
        hazard="co",
        ts=ts,
        value=value,
        message=f"CO {value} mg/m3",
        limit=20.0,
        zone_id="E001-Z01",
        details={"source": "rule"},
    )


async def _apply(database_url: str, *events: AlertEvent) -> None:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await lifecycle.apply_machine_events(conn, list(events))


async def _alerts(database_url: str, sensor: str) -> list[alerting.AlertRow]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        page = await alerting.list_alerts(
            conn, scope=NATIONAL, where=alerting.AlertFilter(sensor_id=sensor)
        )
    return sorted(page, key=lambda a: a.id)


async def _history(database_url: str, alert_id: int) -> list[tuple[str, str, str]]:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        rows = await alerting.history(conn, alert_id=alert_id)
    return [(h.action, h.status, h.actor) for h in rows]


def _actor(database_url: str, username: str, role: Role, regions=(), enterprise=None) -> Actor:  # type: ignore[no-untyped-def]
    user = ensure_user(database_url, username, role, list(regions), enterprise)
    return Actor(user.id, user.username, role, user.scope)


async def _act(database_url: str, fn, **kw):  # type: ignore[no-untyped-def]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        return await fn(conn, **kw)


async def test_warning_resolves_itself_when_it_clears_a_critical_waits_for_a_person(
    database_url: str,
) -> None:
    warn, crit = _sensor(), _sensor()
    await _apply(
        database_url,
        _event(AlertAction.OPEN, warn, T0, T0),
        _event(AlertAction.CLEAR, warn, T0, T0 + timedelta(minutes=5), value=10.0),
        _event(AlertAction.OPEN, crit, T0, T0, Severity.CRITICAL, 90.0),
        _event(AlertAction.CLEAR, crit, T0, T0 + timedelta(minutes=5), Severity.CRITICAL, 10.0),
    )
    (w,) = await _alerts(database_url, warn)
    assert (w.state, w.status, w.resolution, w.resolved_by) == (
        "cleared",
        "resolved",
        "auto_cleared",
        None,
    )
    assert w.resolved_at == T0 + timedelta(minutes=5)
    assert await _history(database_url, w.id) == [
        ("open", "open", "machine"),
        ("clear", "open", "machine"),
        ("auto_resolve", "resolved", "machine"),
    ]
    (c,) = await _alerts(database_url, crit)
    assert (c.state, c.status, c.resolution) == ("cleared", "open", None)


async def test_acknowledge_then_resolve_records_who_when_why(database_url: str) -> None:
    sensor = _sensor()
    await _apply(database_url, _event(AlertAction.OPEN, sensor, T0, T0, Severity.CRITICAL, 90.0))
    (a,) = await _alerts(database_url, sensor)
    officer = _actor(database_url, "t-life-officer", Role.SAFETY_OFFICER, enterprise="E001")
    at = datetime(2026, 3, 2, 8, 3, tzinfo=UTC)
    row = await _act(database_url, lifecycle.acknowledge, actor=officer, alert_id=a.id, at=at)
    assert (row.status, row.acknowledged_by, row.acknowledged_at) == (
        "acknowledged",
        "t-life-officer",
        at,
    )
    with pytest.raises(TransitionRefused, match="already acknowledged by t-life-officer"):
        await _act(database_url, lifecycle.acknowledge, actor=officer, alert_id=a.id, at=at)
    with pytest.raises(LifecycleError, match="needs a comment"):
        await _act(
            database_url,
            lifecycle.resolve,
            actor=officer,
            alert_id=a.id,
            reason=Resolution.OTHER,
            comment="  ",
            at=at,
        )
    later = at + timedelta(minutes=20)
    row = await _act(
        database_url,
        lifecycle.resolve,
        actor=officer,
        alert_id=a.id,
        reason=Resolution.REAL_INCIDENT,
        comment="valve V-12 leaked; replaced",
        at=later,
    )
    assert (row.status, row.resolved_by, row.resolution, row.resolution_comment) == (
        "resolved",
        "t-life-officer",
        "real_incident",
        "valve V-12 leaked; replaced",
    )
    assert row.state == "open"  # the machine still sees the condition: people resolved it anyway
    with pytest.raises(TransitionRefused, match="already resolved"):
        await _act(
            database_url,
            lifecycle.resolve,
            actor=officer,
            alert_id=a.id,
            reason=Resolution.DRILL,
            comment=None,
            at=later,
        )
    await _act(
        database_url,
        lifecycle.add_comment,
        actor=officer,
        alert_id=a.id,
        text="audit done",
        at=later,
    )
    assert await _history(database_url, a.id) == [
        ("open", "open", "machine"),
        ("acknowledge", "acknowledged", "t-life-officer"),
        ("resolve", "resolved", "t-life-officer"),
        ("comment", "resolved", "t-life-officer"),
    ]


async def test_people_act_only_inside_their_scope_and_workers_not_at_all(
    database_url: str,
) -> None:
    sensor = _sensor()
    await _apply(database_url, _event(AlertAction.OPEN, sensor, T0, T0))
    (a,) = await _alerts(database_url, sensor)
    outsider = _actor(database_url, "t-life-insp-kz55", Role.LABOUR_INSPECTOR, ["KZ-55"])
    with pytest.raises(AlertNotFound):
        await _act(database_url, lifecycle.acknowledge, actor=outsider, alert_id=a.id, at=T0)
    worker = _actor(database_url, "t-life-worker", Role.WORKER, enterprise="E001")
    with pytest.raises(LifecycleError, match="a worker cannot act on alerts"):
        await _act(database_url, lifecycle.acknowledge, actor=worker, alert_id=a.id, at=T0)
    (after,) = await _alerts(database_url, sensor)
    assert after.status == "open"


async def test_escalation_to_critical_asks_people_again(database_url: str) -> None:
    sensor = _sensor()
    await _apply(database_url, _event(AlertAction.OPEN, sensor, T0, T0))
    (a,) = await _alerts(database_url, sensor)
    insp = _actor(database_url, "t-life-insp-kz35", Role.LABOUR_INSPECTOR, ["KZ-35"])
    await _act(database_url, lifecycle.acknowledge, actor=insp, alert_id=a.id, at=T0)
    await _apply(
        database_url,
        _event(AlertAction.ESCALATE, sensor, T0, T0 + timedelta(minutes=1), Severity.CRITICAL, 95),
    )
    (a,) = await _alerts(database_url, sensor)
    assert (a.severity, a.status, a.acknowledged_by, a.value) == ("critical", "open", None, 95)


async def test_condition_coming_back_reopens_the_same_alert(database_url: str) -> None:
    sensor = _sensor()
    t1 = T0 + timedelta(minutes=10)
    await _apply(
        database_url,
        _event(AlertAction.OPEN, sensor, T0, T0, Severity.CRITICAL, 90),
        _event(AlertAction.CLEAR, sensor, T0, T0 + timedelta(minutes=2), Severity.CRITICAL, 5),
        # Back within minutes, while nobody has resolved the first: the same alert re-opens.
        _event(AlertAction.OPEN, sensor, t1, t1, Severity.WARNING, 30),
        _event(AlertAction.CLEAR, sensor, t1, t1 + timedelta(minutes=1), Severity.WARNING, 5),
    )
    alerts = await _alerts(database_url, sensor)
    assert len(alerts) == 1
    (a,) = alerts
    # Still critical (the graver of its episodes), cleared, and waiting for a person.
    assert (a.severity, a.state, a.status, a.reopened_count) == ("critical", "cleared", "open", 1)
    officer = _actor(database_url, "t-life-officer", Role.SAFETY_OFFICER, enterprise="E001")
    resolved_at = t1 + timedelta(minutes=5)
    await _act(
        database_url,
        lifecycle.resolve,
        actor=officer,
        alert_id=a.id,
        reason=Resolution.SENSOR_FAULT,
        comment=None,
        at=resolved_at,
    )
    # Resolved 20 minutes ago: re-opened. Resolved more than 30 minutes ago: a new alert.
    t2 = resolved_at + timedelta(minutes=20)
    t3 = t2 + timedelta(hours=2)
    await _apply(
        database_url,
        _event(AlertAction.OPEN, sensor, t2, t2),
        _event(AlertAction.CLEAR, sensor, t2, t2 + timedelta(minutes=1)),
    )
    await _apply(database_url, _event(AlertAction.OPEN, sensor, t3, t3))
    alerts = await _alerts(database_url, sensor)
    assert [(x.reopened_count, x.state) for x in alerts] == [(2, "cleared"), (0, "open")]
    actions = [h[0] for h in await _history(database_url, alerts[0].id)]
    assert actions == [
        "open", "clear", "reopen", "clear", "resolve", "reopen", "clear", "auto_resolve",
    ]  # fmt: skip
    # The machine's later changes under the new key still find the re-opened alert, and a
    # redelivered open changes nothing.
    await _apply(database_url, _event(AlertAction.OPEN, sensor, t3, t3))
    assert len(await _alerts(database_url, sensor)) == 2


async def test_concurrent_updates_never_make_two_open_alerts_or_two_acknowledgements(
    database_url: str,
) -> None:
    sensor = _sensor()
    # Eight writers open the same condition under different keys at once.
    opens = [
        _event(AlertAction.OPEN, sensor, T0 + timedelta(seconds=i), T0 + timedelta(seconds=i))
        for i in range(8)
    ]

    async def open_one(e: AlertEvent) -> str:
        try:
            async with await psycopg.AsyncConnection.connect(database_url) as conn:
                await lifecycle.apply_machine_events(conn, [e])
            return "ok"
        except psycopg.errors.UniqueViolation:
            return "refused"

    await asyncio.gather(*(open_one(e) for e in opens))
    open_rows = [a for a in await _alerts(database_url, sensor) if a.state == "open"]
    assert len(open_rows) == 1

    people = [
        _actor(database_url, f"t-life-ack-{i}", Role.LABOUR_INSPECTOR, ["KZ-35"]) for i in range(6)
    ]

    async def ack(actor: Actor) -> str:
        try:
            await _act(
                database_url, lifecycle.acknowledge, actor=actor, alert_id=open_rows[0].id, at=T0
            )
            return actor.username
        except TransitionRefused:
            return "refused"

    results = await asyncio.gather(*(ack(p) for p in people))
    winners = [r for r in results if r != "refused"]
    assert len(winners) == 1
    (a,) = [x for x in await _alerts(database_url, sensor) if x.id == open_rows[0].id]
    assert a.acknowledged_by == winners[0]
    acks = [h for h in await _history(database_url, a.id) if h[0] == "acknowledge"]
    assert acks == [("acknowledge", "acknowledged", winners[0])]


async def test_retracted_alert_disappears_and_the_corrected_one_stands(database_url: str) -> None:
    sensor = _sensor()
    wrong, right = T0 + timedelta(seconds=20), T0 + timedelta(seconds=10)
    await _apply(
        database_url,
        _event(AlertAction.OPEN, sensor, wrong, wrong),
        _event(AlertAction.RETRACT, sensor, wrong, right),
        _event(AlertAction.OPEN, sensor, right, right),
    )
    alerts = await _alerts(database_url, sensor)  # the list leaves retracted alerts out
    assert [(a.opened_at, a.state) for a in alerts] == [(right, "open")]
    officer = _actor(database_url, "t-life-officer", Role.SAFETY_OFFICER, enterprise="E001")
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cur = await conn.execute(
            "SELECT id FROM alerts WHERE sensor_id = %s AND state = 'retracted'", (sensor,)
        )
        row = await cur.fetchone()
    assert row is not None
    with pytest.raises(AlertNotFound):
        await _act(database_url, lifecycle.acknowledge, actor=officer, alert_id=row[0], at=T0)
