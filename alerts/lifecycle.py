"""An alert's life: open → acknowledged → resolved, with the machine and people both acting.

The machine (the stream worker) opens, escalates, clears and retracts; people
acknowledge, resolve with a reason, and comment. The rules:

- **Auto-clear.** When the condition clears, a warning is resolved by itself
  (``auto_cleared``); a critical alert stays visible until a person resolves it.
- **Severity escalation** (warning → critical) asks for people again: an
  acknowledged or resolved alert goes back to ``open``.
- **Re-open instead of a new alert.** When the condition comes back on a
  sensor whose previous alert (same kind and source) is cleared but not yet
  resolved, or was resolved less than `LifecyclePolicy.reopen_within` ago, that
  alert is re-opened; its history shows both episodes.
- **One open alert per (sensor, kind, source)**: the database's partial unique
  index enforces it, and people's actions lock the row (``SELECT … FOR UPDATE``),
  so two inspectors acknowledging at once give one acknowledgement and one 409.
- **Audit.** Every change, by the machine or a person, is a row of
  ``alert_history`` and a notification on the live feed's channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import psycopg

from core.access import ALERT_ACTORS, Role, Scope
from core.alarms import AlertAction, AlertEvent, Severity
from core.errors import QorgauError
from storage import alerting
from storage.alerting import AlertRow

__all__ = [
    "MAX_COMMENT",
    "Actor",
    "AlertNotFound",
    "LifecycleError",
    "LifecyclePolicy",
    "Resolution",
    "Status",
    "TransitionRefused",
    "acknowledge",
    "add_comment",
    "apply_machine_events",
    "resolve",
]

MAX_COMMENT = 2000


class Status(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Resolution(StrEnum):
    """Why a person closed an alert (``auto_cleared`` is the machine's own)."""

    REAL_INCIDENT = "real_incident"
    FALSE_ALARM = "false_alarm"
    SENSOR_FAULT = "sensor_fault"
    DRILL = "drill"
    OTHER = "other"


AUTO_CLEARED = "auto_cleared"


class LifecycleError(QorgauError):
    """A person's action that cannot be done."""


class AlertNotFound(LifecycleError):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"alert {alert_id} not found")
        self.alert_id = alert_id


class TransitionRefused(LifecycleError):
    """The alert is not in a state that allows this; ``alert`` is how it is now."""

    def __init__(self, message: str, alert: AlertRow) -> None:
        super().__init__(message)
        self.alert = alert


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    reopen_within: timedelta = timedelta(minutes=30)
    # Severities the machine resolves by itself when the condition clears.
    auto_resolve: frozenset[Severity] = frozenset({Severity.WARNING})


@dataclass(frozen=True, slots=True)
class Actor:
    """A person acting on an alert."""

    user_id: int
    username: str
    role: Role
    scope: Scope


# --- the machine ---------------------------------------------------------------------------


async def apply_machine_events(
    conn: psycopg.AsyncConnection[Any],
    events: Sequence[AlertEvent],
    policy: LifecyclePolicy = LifecyclePolicy(),
) -> None:
    """Apply the worker's alert changes in the caller's transaction; idempotent per change."""
    for e in events:
        if e.action is AlertAction.OPEN:
            await _machine_open(conn, e, policy)
            continue
        alert_id = await alerting.alert_id_for_key(conn, alert_key=e.key)
        if alert_id is None:
            continue  # the open was never stored (a change for an alert from before storage)
        row = await _lock(conn, alert_id)
        if e.action is AlertAction.ESCALATE:
            await _machine_escalate(conn, row, e)
        elif e.action is AlertAction.CLEAR:
            await _machine_clear(conn, row, e, policy)
        else:
            await _machine_retract(conn, row, e)
    await alerting.append_machine_events(conn, list(events))


async def _lock(conn: psycopg.AsyncConnection[Any], alert_id: int) -> AlertRow:
    row = await alerting.lock_alert(conn, scope=Scope(national=True), alert_id=alert_id)
    assert row is not None, alert_id
    return row


async def _machine_open(
    conn: psycopg.AsyncConnection[Any], e: AlertEvent, policy: LifecyclePolicy
) -> None:
    if await alerting.alert_id_for_key(conn, alert_key=e.key) is not None:
        return  # stored already: a redelivered change
    await alerting.close_leftover_open(conn, e)
    source = str(e.details.get("source", ""))
    found = await alerting.find_reopenable(
        conn,
        sensor_id=e.sensor_id,
        kind=e.kind.value,
        source=source,
        resolved_since=e.ts - policy.reopen_within,
    )
    if found is None:
        alert_id = await alerting.insert_alert(conn, e)
        if alert_id is None:
            return
        await _by_machine(conn, alert_id, "open", Status.OPEN, e.severity, e.ts, e.value)
        return
    alert_id, _status = found
    row = await _lock(conn, alert_id)
    await alerting.add_key(conn, alert_key=e.key, alert_id=alert_id)
    # An episode nobody has resolved yet keeps its graver severity (a critical that came
    # back as a warning still needs a person); after a resolution the new episode's counts.
    severity = (
        e.severity.value
        if row.status == Status.RESOLVED
        else _max_severity(row.severity, e.severity)
    )
    await alerting.update_alert(
        conn,
        alert_id=alert_id,
        state="open",
        severity=severity,
        value=e.value,
        message=e.message,
        limit_value=e.limit,
        cleared_at=None,
        reopened_count=row.reopened_count + 1,
        reopened_at=e.ts,
        **_ASK_PEOPLE_AGAIN,
    )
    await _by_machine(
        conn,
        alert_id,
        "reopen",
        Status.OPEN,
        severity,
        e.ts,
        e.value,
        comment=f"the condition is back (was {row.status})",
    )


# Fields that put an alert back in front of people, with its escalation chain from the start.
_ASK_PEOPLE_AGAIN: dict[str, Any] = {
    "status": "open",
    "acknowledged_at": None,
    "acknowledged_by": None,
    "resolved_at": None,
    "resolved_by": None,
    "resolution": None,
    "resolution_comment": None,
    "escalation_level": 0,
    "last_notified_at": None,
    "reminders": 0,
}


async def _by_machine(
    conn: psycopg.AsyncConnection[Any],
    alert_id: int,
    action: str,
    status: str,
    severity: str,
    at: datetime,
    value: float | None = None,
    *,
    reason: str | None = None,
    comment: str | None = None,
    announce: bool = True,
) -> None:
    """Record a machine change in the history and (unless another follows) announce it."""
    await alerting.append_history(
        conn,
        alert_id=alert_id,
        at=at,
        action=action,
        status=status,
        severity=severity,
        value=value,
        reason=reason,
        comment=comment,
    )
    if announce:
        await alerting.notify_change(conn, alert_id=alert_id, action=action, actor="machine")


def _max_severity(a: str, b: Severity) -> str:
    return Severity.CRITICAL.value if Severity.CRITICAL in (Severity(a), b) else a


async def _machine_escalate(
    conn: psycopg.AsyncConnection[Any], row: AlertRow, e: AlertEvent
) -> None:
    fields: dict[str, Any] = {
        "severity": e.severity.value,
        "escalated_at": e.ts,
        "value": e.value,
        "message": e.message,
        "limit_value": e.limit,
    }
    # A graver condition asks for people again, whatever they did with the milder one,
    # and its escalation chain starts from the bottom.
    await alerting.update_alert(conn, alert_id=row.id, **fields, **_ASK_PEOPLE_AGAIN)
    comment = None if row.status == Status.OPEN else f"was {row.status}"
    await _by_machine(
        conn, row.id, "escalate", Status.OPEN, e.severity, e.ts, e.value, comment=comment
    )


async def _machine_clear(
    conn: psycopg.AsyncConnection[Any], row: AlertRow, e: AlertEvent, policy: LifecyclePolicy
) -> None:
    if row.state != "open":
        return
    await alerting.update_alert(conn, alert_id=row.id, state="cleared", cleared_at=e.ts)
    auto = Severity(row.severity) in policy.auto_resolve and row.status != Status.RESOLVED
    await _by_machine(
        conn, row.id, "clear", row.status, row.severity, e.ts, e.value, announce=not auto
    )
    if auto:
        await alerting.update_alert(
            conn,
            alert_id=row.id,
            status=Status.RESOLVED.value,
            resolved_at=e.ts,
            resolution=AUTO_CLEARED,
        )
        await _by_machine(
            conn, row.id, "auto_resolve", Status.RESOLVED, row.severity, e.ts, reason=AUTO_CLEARED
        )


async def _machine_retract(
    conn: psycopg.AsyncConnection[Any], row: AlertRow, e: AlertEvent
) -> None:
    if row.alert_key == e.key:
        # The alert was opened on the wrong reading; the corrected open follows.
        await alerting.update_alert(
            conn, alert_id=row.id, state="retracted", status=Status.RESOLVED.value
        )
    else:
        # A re-opening was retracted: the alert goes back to how the earlier episode left it.
        await alerting.update_alert(conn, alert_id=row.id, state="cleared", cleared_at=e.ts)
    status = row.status if row.alert_key != e.key else Status.RESOLVED
    await _by_machine(conn, row.id, "retract", status, row.severity, e.ts, e.value)


# --- people ----------------------------------------------------------------------------------


def _require_actor(actor: Actor) -> None:
    if actor.role not in ALERT_ACTORS:
        raise LifecycleError(f"a {actor.role} cannot act on alerts")


async def _locked_for(conn: psycopg.AsyncConnection[Any], actor: Actor, alert_id: int) -> AlertRow:
    row = await alerting.lock_alert(conn, scope=actor.scope, alert_id=alert_id)
    if row is None or row.state == "retracted":
        raise AlertNotFound(alert_id)
    return row


async def acknowledge(
    conn: psycopg.AsyncConnection[Any], *, actor: Actor, alert_id: int, at: datetime
) -> AlertRow:
    """Someone has seen it and is on it. `TransitionRefused` if it is not open."""
    _require_actor(actor)
    row = await _locked_for(conn, actor, alert_id)
    if row.status == Status.ACKNOWLEDGED:
        raise TransitionRefused(
            f"already acknowledged by {row.acknowledged_by} at {row.acknowledged_at:%Y-%m-%d %H:%M:%S %Z}",
            row,
        )
    if row.status == Status.RESOLVED:
        raise TransitionRefused("already resolved", row)
    await alerting.update_alert(
        conn,
        alert_id=alert_id,
        status=Status.ACKNOWLEDGED.value,
        acknowledged_at=at,
        acknowledged_by=actor.user_id,
    )
    return await _by_person(conn, actor, row, "acknowledge", Status.ACKNOWLEDGED, at)


async def resolve(
    conn: psycopg.AsyncConnection[Any],
    *,
    actor: Actor,
    alert_id: int,
    reason: Resolution,
    comment: str | None,
    at: datetime,
) -> AlertRow:
    """Close it with a reason (``other`` needs a comment); acknowledges it too if nobody had."""
    _require_actor(actor)
    comment = (comment or "").strip() or None
    if reason is Resolution.OTHER and not comment:
        raise LifecycleError("a resolution of 'other' needs a comment saying what happened")
    if comment and len(comment) > MAX_COMMENT:
        raise LifecycleError(f"a comment may be at most {MAX_COMMENT} characters")
    row = await _locked_for(conn, actor, alert_id)
    if row.status == Status.RESOLVED:
        raise TransitionRefused(
            f"already resolved by {row.resolved_by or 'the machine'} ({row.resolution})", row
        )
    fields: dict[str, Any] = {
        "status": Status.RESOLVED.value,
        "resolved_at": at,
        "resolved_by": actor.user_id,
        "resolution": reason.value,
        "resolution_comment": comment,
    }
    if row.acknowledged_at is None:
        fields.update(acknowledged_at=at, acknowledged_by=actor.user_id)
    await alerting.update_alert(conn, alert_id=alert_id, **fields)
    return await _by_person(
        conn, actor, row, "resolve", Status.RESOLVED, at, reason=reason.value, comment=comment
    )


async def add_comment(
    conn: psycopg.AsyncConnection[Any], *, actor: Actor, alert_id: int, text: str, at: datetime
) -> AlertRow:
    _require_actor(actor)
    text = text.strip()
    if not text:
        raise LifecycleError("a comment cannot be empty")
    if len(text) > MAX_COMMENT:
        raise LifecycleError(f"a comment may be at most {MAX_COMMENT} characters")
    row = await _locked_for(conn, actor, alert_id)
    await alerting.update_alert(conn, alert_id=alert_id, status=row.status)  # bumps updated_at
    return await _by_person(conn, actor, row, "comment", row.status, at, comment=text)


async def _by_person(
    conn: psycopg.AsyncConnection[Any],
    actor: Actor,
    row: AlertRow,
    action: str,
    status: str,
    at: datetime,
    *,
    reason: str | None = None,
    comment: str | None = None,
) -> AlertRow:
    """Record a person's change in the history, announce it, and return the alert as it is."""
    await alerting.append_history(
        conn,
        alert_id=row.id,
        at=at,
        action=action,
        status=status,
        severity=row.severity,
        actor=actor.username,
        actor_id=actor.user_id,
        reason=reason,
        comment=comment,
    )
    await alerting.notify_change(conn, alert_id=row.id, action=action, actor=actor.username)
    fresh = await alerting.get_alert(conn, scope=actor.scope, alert_id=row.id)
    assert fresh is not None
    return fresh
