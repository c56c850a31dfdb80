"""What the alerting side tells people: a notification, who receives it, and where.

A `Notification` is one message about one alert change, escalation step,
reminder, evacuation order or digest; it knows nothing about channels. A
`Recipient` is a person (or a worker's app) with a language; a `Target` is one
address of that recipient on one channel. The delivery log is idempotent on
(``change_id``, recipient key, channel, address), so whoever builds
notifications must give the same change the same ``change_id`` every time.

`Notification.payload` is the JSON shape sent to machines (webhook, Web Push,
MQTT) and stored with each delivery; `Notification.from_payload` reads it back.

>>> from datetime import UTC, datetime
>>> n = Notification(
...     change_id="E001-S07|threshold|2026-03-01T08:00:00+00:00|open",
...     purpose="alert", enterprise_id="E001", enterprise_name="Casthouse No. 1",
...     alert_key="E001-S07|threshold|2026-03-01T08:00:00+00:00", action="open",
...     alert_kind="threshold", severity="critical", hazard="co", sensor_id="E001-S07",
...     zone_id="E001-Z02", value=250.0, unit="mg/m3", limit=20.0,
...     ts=datetime(2026, 3, 1, 8, 0, tzinfo=UTC), message="CO 250 mg/m3 over 20 mg/m3")
>>> n.payload()["ts"]
'2026-03-01T08:00:00Z'
>>> Notification.from_payload(n.payload()) == n
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

__all__ = [
    "CHANNELS",
    "PURPOSES",
    "SEVERITIES",
    "Notification",
    "Recipient",
    "Target",
]

PURPOSES = frozenset({"alert", "evacuate", "reminder", "escalation", "digest"})
SEVERITIES = frozenset({"warning", "critical"})
CHANNELS = frozenset({"webpush", "email", "webhook", "mqtt", "apprise"})
PAYLOAD_VERSION = 1


def _iso_z(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Notification:
    """One thing to tell people.

    ``change_id`` identifies the alert change or escalation step and is part
    of the delivery idempotency key. ``created_monotonic`` (``time.monotonic()``
    when the dispatcher made it) only measures latency inside one process; it
    is neither compared nor sent.
    """

    change_id: str
    purpose: str  # "alert" | "evacuate" | "reminder" | "escalation" | "digest"
    enterprise_id: str
    enterprise_name: str
    alert_key: str | None  # None for a digest
    action: str | None  # "open" | "escalate" | "clear" | "retract" for purpose "alert"
    alert_kind: str | None  # threshold, ceiling, stel, twa, fire, anomaly, sensor_fault, stale, sos
    severity: str  # "warning" | "critical"
    hazard: str | None  # catalogue id, e.g. "co"
    sensor_id: str | None
    zone_id: str | None
    value: float | None
    unit: str | None  # e.g. "mg/m3"
    limit: float | None
    ts: datetime  # event time of the change (aware)
    message: str  # the machine's English message
    link: str | None = None  # URL of the alert in the API
    hazard_name: str | None = None  # the hazard's name in the deployment's catalogue (ru)
    items: tuple[Notification, ...] = ()  # for a digest: the warnings it batches
    created_monotonic: float | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.change_id:
            raise ValueError("Notification.change_id must not be empty")
        if self.purpose not in PURPOSES:
            raise ValueError(
                f"Notification.purpose {self.purpose!r} is not one of {sorted(PURPOSES)}"
            )
        if self.severity not in SEVERITIES:
            raise ValueError(f"Notification.severity {self.severity!r} is not warning/critical")
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError("Notification.ts must be timezone-aware")

    @property
    def critical(self) -> bool:
        """Whether people must act now (critical severity or an evacuation)."""
        return self.severity == "critical" or self.purpose == "evacuate"

    def payload(self) -> dict[str, Any]:
        """The JSON-able dict sent by webhook, Web Push and MQTT (``ts`` as ISO-8601 with Z)."""
        return {
            "v": PAYLOAD_VERSION,
            "change_id": self.change_id,
            "purpose": self.purpose,
            "enterprise_id": self.enterprise_id,
            "enterprise_name": self.enterprise_name,
            "alert_key": self.alert_key,
            "action": self.action,
            "alert_kind": self.alert_kind,
            "severity": self.severity,
            "hazard": self.hazard,
            "hazard_name": self.hazard_name,
            "sensor_id": self.sensor_id,
            "zone_id": self.zone_id,
            "value": self.value,
            "unit": self.unit,
            "limit": self.limit,
            "ts": _iso_z(self.ts),
            "message": self.message,
            "link": self.link,
            "items": [item.payload() for item in self.items],
        }

    @classmethod
    def from_payload(cls, data: Mapping[str, Any]) -> Notification:
        """Rebuild a notification from `payload` (e.g. a stored delivery)."""
        ts = datetime.fromisoformat(str(data["ts"]).replace("Z", "+00:00"))
        return cls(
            change_id=str(data["change_id"]),
            purpose=str(data["purpose"]),
            enterprise_id=str(data["enterprise_id"]),
            enterprise_name=str(data.get("enterprise_name") or ""),
            alert_key=_opt_str(data.get("alert_key")),
            action=_opt_str(data.get("action")),
            alert_kind=_opt_str(data.get("alert_kind")),
            severity=str(data["severity"]),
            hazard=_opt_str(data.get("hazard")),
            hazard_name=_opt_str(data.get("hazard_name")),
            sensor_id=_opt_str(data.get("sensor_id")),
            zone_id=_opt_str(data.get("zone_id")),
            value=_opt_float(data.get("value")),
            unit=_opt_str(data.get("unit")),
            limit=_opt_float(data.get("limit")),
            ts=ts,
            message=str(data.get("message") or ""),
            link=_opt_str(data.get("link")),
            items=tuple(cls.from_payload(item) for item in data.get("items") or ()),
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who is told: ``"user:42"``, or ``"app:E001/W17"`` for a worker's app topic."""

    key: str
    name: str
    language: Literal["ru", "kk"] = "ru"

    def __post_init__(self) -> None:
        if self.language not in ("ru", "kk"):
            raise ValueError(f"Recipient.language {self.language!r} is not 'ru' or 'kk'")

    @classmethod
    def of(cls, key: str, name: str, language: str) -> Recipient:
        """A recipient from untyped input (e.g. a database row); unknown languages become Russian."""
        lang = cast(Literal["ru", "kk"], language if language in ("ru", "kk") else "ru")
        return cls(key=key, name=name, language=lang)


@dataclass(frozen=True, slots=True)
class Target:
    """One address of a recipient on one channel.

    ``address`` is a push endpoint URL, an e-mail address, a webhook URL, an
    MQTT topic or an apprise URL. ``secret`` is a webhook's HMAC key (None:
    the channel's default); ``p256dh``/``auth`` are a Web Push subscription's
    keys (base64url) and ``subscription_id`` its row, pruned when it is gone.
    Secrets stay out of ``repr`` so they never reach a log line.
    """

    channel: str  # "webpush" | "email" | "webhook" | "mqtt" | "apprise"
    address: str
    secret: str | None = field(default=None, repr=False)
    p256dh: str | None = None
    auth: str | None = field(default=None, repr=False)
    subscription_id: int | None = None
