"""The machine-side alarm state of one (sensor, kind): open, escalate, clear with hysteresis.

One alert is open per (sensor, kind) until its condition clears. A value
hovering at a limit does not flap: clearing needs the value back inside the
rule's dead-band for ``clear_hold_s`` of event time, and severity only goes
up while the alert is open (warning -> critical), never down.

>>> from datetime import datetime, timedelta, timezone
>>> t0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
>>> a = AlarmState(clear_hold_s=60)
>>> a.update(Severity.WARNING, False, t0)
<AlertAction.OPEN: 'open'>
>>> a.update(Severity.WARNING, False, t0 + timedelta(seconds=10)) is None
True
>>> a.update(None, True, t0 + timedelta(seconds=20)) is None   # below, but not for long
True
>>> a.update(None, True, t0 + timedelta(seconds=80))
<AlertAction.CLEAR: 'clear'>
"""

from __future__ import annotations

from datetime import datetime

from core.alarms import AlertAction, AlertKind, Severity

__all__ = ["AlarmState"]


class AlarmState:
    __slots__ = (
        "below_since",
        "clear_hold_s",
        "cleared_opened_at",
        "cleared_severity",
        "opened_at",
        "severity",
    )

    def __init__(self, clear_hold_s: float = 60.0) -> None:
        self.clear_hold_s = clear_hold_s
        self.severity: Severity | None = None
        self.opened_at: datetime | None = None
        self.below_since: datetime | None = None
        self.cleared_severity: Severity | None = None  # what the last cleared alert was
        self.cleared_opened_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.severity is not None

    def alert_key(self, subject: str, kind: AlertKind, ts: datetime) -> str:
        """The key of the alert the latest change belongs to, the same for its open,
        escalate and clear: ``subject|kind|when it opened`` (``ts`` if opening now)."""
        opened = self.opened_at or self.cleared_opened_at or ts
        return f"{subject}|{kind.value}|{opened.isoformat()}"

    def update(self, level: Severity | None, clear: bool, ts: datetime) -> AlertAction | None:
        """Feed one evaluation; return the action it causes, if any.

        ``level`` is the severity the value reaches now (None: below every level);
        ``clear`` says the value is back inside the dead-band.
        """
        if self.severity is None:
            if level is None:
                return None
            self.severity, self.opened_at, self.below_since = level, ts, None
            return AlertAction.OPEN
        if level is not None and level.rank > self.severity.rank:
            self.severity, self.below_since = level, None
            return AlertAction.ESCALATE
        if not clear:
            self.below_since = None
            return None
        if self.below_since is None:
            self.below_since = ts
        if (ts - self.below_since).total_seconds() >= self.clear_hold_s:
            self.cleared_severity, self.cleared_opened_at = self.severity, self.opened_at
            self.severity = self.opened_at = self.below_since = None
            return AlertAction.CLEAR
        return None

    def snapshot(self) -> tuple[object, ...]:
        return (
            self.severity,
            self.opened_at,
            self.below_since,
            self.cleared_severity,
            self.cleared_opened_at,
        )

    def restore(self, snap: tuple[object, ...]) -> None:
        (
            self.severity,
            self.opened_at,
            self.below_since,
            self.cleared_severity,
            self.cleared_opened_at,
        ) = snap  # type: ignore[assignment]

    def force_clear(self) -> AlertAction | None:
        if self.severity is None:
            return None
        self.cleared_severity, self.cleared_opened_at = self.severity, self.opened_at
        self.severity = self.opened_at = self.below_since = None
        return AlertAction.CLEAR
