"""Alarm vocabulary shared by detection, storage, alerting and the API.

`AlertKind` and `Severity` are the contract of ``qorgau replay`` and of the
``alerts`` Kafka topic (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["AlertAction", "AlertEvent", "AlertKind", "Severity"]


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return 2 if self is Severity.CRITICAL else 1


class AlertKind(StrEnum):
    THRESHOLD = "threshold"  # an instantaneous reading crossed an alarm set point
    CEILING = "ceiling"  # an instantaneous reading crossed a never-exceed limit
    STEL = "stel"  # short-term (15-min) average over its limit
    TWA = "twa"  # shift (8-h) time-weighted average / noise or vibration dose over its limit
    FIRE = "fire"  # heat, smoke, CO rising: a fire signal
    ANOMALY = "anomaly"  # an online model flagged a departure from normal
    SENSOR_FAULT = "sensor_fault"  # physically impossible or stuck values
    STALE = "stale"  # a sensor went silent
    SOS = "sos"  # a worker's SOS or man-down report


class AlertAction(StrEnum):
    OPEN = "open"
    ESCALATE = "escalate"  # warning -> critical on an open alert
    CLEAR = "clear"  # the condition is over (a person may still have to resolve it)
    # A late reading showed this alert opened on another reading: it is withdrawn and
    # the correct one is opened in the same breath. Never happens for ordered input.
    RETRACT = "retract"


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A change of machine-side alarm state for one (sensor, kind)."""

    action: AlertAction
    key: str  # identifies the alert across its open/escalate/clear changes
    kind: AlertKind
    severity: Severity
    enterprise_id: str
    sensor_id: str
    hazard: str
    ts: datetime  # event time of the reading (or watermark) that caused the change
    value: float | None
    message: str
    limit: float | None = None
    zone_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def wire_record(self) -> dict[str, Any]:
        """The value published on the ``alerts`` Kafka topic for every change."""
        return {
            "key": self.key,
            "action": self.action.value,
            **self.replay_record(),
            "zone_id": self.zone_id,
            "limit": self.limit,
            "details": self.details,
        }

    @classmethod
    def from_wire(cls, record: Mapping[str, Any]) -> AlertEvent:
        """The change a `wire_record` describes; `ValueError` names what is wrong with it.

        >>> e = AlertEvent(AlertAction.OPEN, "k", AlertKind.SOS, Severity.CRITICAL, "E1",
        ...     "worker:W1", "sos", datetime.fromisoformat("2026-03-01T08:00:00+00:00"), None, "SOS")
        >>> AlertEvent.from_wire(e.wire_record()) == e
        True
        >>> AlertEvent.from_wire({**e.wire_record(), "kind": "gossip"})
        Traceback (most recent call last):
        ...
        ValueError: alert change: kind 'gossip' is not one of threshold, ceiling, stel, twa, fire, anomaly, sensor_fault, stale, sos
        """

        def text(name: str, *, optional: bool = False) -> Any:
            value = record.get(name)
            if value is None and optional:
                return None
            if not isinstance(value, str):
                raise ValueError(f"alert change: {name} must be a string, got {value!r:.80}")
            return value

        def number(name: str) -> float | None:
            value = record.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"alert change: {name} must be a number, got {value!r:.80}")
            return float(value) if math.isfinite(value) else None

        def member(enum: type[StrEnum], name: str) -> Any:
            value = record.get(name)
            try:
                return enum(str(value))
            except ValueError:
                choices = ", ".join(m.value for m in enum)
                raise ValueError(
                    f"alert change: {name} {value!r:.80} is not one of {choices}"
                ) from None

        try:
            ts = datetime.fromisoformat(text("ts").replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"alert change: ts is not a timestamp ({exc})") from None
        if ts.tzinfo is None:
            raise ValueError("alert change: ts has no time zone")
        details = record.get("details") or {}
        if not isinstance(details, dict):
            raise ValueError("alert change: details must be an object")
        return cls(
            action=member(AlertAction, "action"),
            key=text("key"),
            kind=member(AlertKind, "kind"),
            severity=member(Severity, "severity"),
            enterprise_id=text("enterprise_id"),
            sensor_id=text("sensor_id"),
            hazard=text("hazard"),
            ts=ts,
            value=number("value"),
            message=text("message"),
            limit=number("limit"),
            zone_id=text("zone_id", optional=True),
            details=details,
        )

    def replay_record(self) -> dict[str, Any]:
        """The line ``qorgau replay`` writes for an opened alert."""
        return {
            "ts": self.ts.isoformat().replace("+00:00", "Z"),
            "enterprise_id": self.enterprise_id,
            "sensor_id": self.sensor_id,
            "hazard": self.hazard,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "value": self.value,
            "message": self.message,
        }
