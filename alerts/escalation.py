"""When an unanswered critical alert climbs the chain, or is sent again.

Pure: `next_step` looks at one alert and the time *now* (given, never read
from a clock) and says what is due. The dispatcher's tick applies it.

A critical alert that nobody acknowledges within ``ack_within`` of becoming
critical goes to the next level of the chain (and again to everyone told so
far); one more level per further ``ack_within``. Once it has climbed, a
reminder goes to everyone told so far every ``remind_every`` until someone
acknowledges it. With no level left (or none configured), reminders go on.

>>> from datetime import UTC, datetime, timedelta
>>> p = EscalationPolicy(timedelta(minutes=10), timedelta(minutes=5), levels=(None, None))  # type: ignore[arg-type]
>>> t0 = datetime(2026, 3, 1, 8, tzinfo=UTC)
>>> s = AlertClock(critical_since=t0, level=0, reminders=0, last_notified_at=None)
>>> next_step(s, t0 + timedelta(minutes=9), p) is None
True
>>> next_step(s, t0 + timedelta(minutes=10), p)
Step(kind='escalate', level=1, reminders=0)
>>> s = AlertClock(t0, level=1, reminders=0, last_notified_at=t0 + timedelta(minutes=10))
>>> next_step(s, t0 + timedelta(minutes=15), p)
Step(kind='remind', level=1, reminders=1)
>>> next_step(s, t0 + timedelta(minutes=20), p)
Step(kind='escalate', level=2, reminders=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from alerts.routing import EscalationPolicy
from storage.alerting import AlertRow

__all__ = ["AlertClock", "Step", "next_step"]


@dataclass(frozen=True, slots=True)
class AlertClock:
    """What escalation needs of an alert."""

    critical_since: datetime
    level: int
    reminders: int
    last_notified_at: datetime | None

    @classmethod
    def of(cls, row: AlertRow) -> AlertClock:
        since = max(t for t in (row.opened_at, row.escalated_at, row.reopened_at) if t is not None)
        return cls(since, row.escalation_level, row.reminders, row.last_notified_at)


@dataclass(frozen=True, slots=True)
class Step:
    kind: Literal["escalate", "remind"]
    level: int  # the level the alert is at after this step
    reminders: int  # reminders sent at this level after this step


def next_step(alert: AlertClock, now: datetime, policy: EscalationPolicy) -> Step | None:
    """The escalation step due at ``now``, or None."""
    elapsed = now - alert.critical_since
    if elapsed < policy.ack_within:
        return None
    due_level = min(len(policy.levels), int(elapsed / policy.ack_within))
    if due_level > alert.level:
        return Step("escalate", due_level, 0)
    # Re-sent every remind_every; with no level to climb, the first re-send is at ack_within.
    last = alert.last_notified_at or (
        alert.critical_since + policy.ack_within - policy.remind_every
    )
    if now - last >= policy.remind_every:
        return Step("remind", alert.level, alert.reminders + 1)
    return None
