"""Public shapes of the API: what a client sees, never a storage row as-is.

Every numeric field's description names its unit; reading values are in the
canonical unit of their hazard (``unit`` of the series, from the hazard catalogue).

Every number sent is finite: JSON has no NaN or infinity, and a stored one (a broken
sensor's reading, an overflow in a unit conversion) must not break a whole list. So
every fractional field is `Finite`: a stored NaN or ±infinity is sent as ``null``
(and a reading or bucket holding one is not ``plausible``).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from alerts.channels.webpush import b64url
from alerts.lifecycle import MAX_COMMENT, Resolution
from api.security import MAX_PASSWORD_LENGTH, TokenPair
from core.catalogue import Catalogue
from core.limits import Limits
from core.redaction import redact_address, scrub
from core.roster import RowError
from storage.accounts import IssuedCode, WorkerRow
from storage.alerting import AlertRow, HistoryRow
from storage.deliveries import DeliveryAttemptRow, DeliveryLogRow, DeliveryRow
from storage.people import PushSubscriptionRow, UserRow
from storage.queries import ReadingBucket, ReadingPoint, SensorRow
from storage.reports import ReportRow

__all__ = [
    "LOCAL_HOSTS",
    "MAX_PUSH_ENDPOINT",
    "ActivationRequest",
    "AlertDetailPublic",
    "AlertPagePublic",
    "AlertPublic",
    "CheckPublic",
    "CommentRequest",
    "DeliveryAttemptPublic",
    "DeliveryDetailPublic",
    "DeliveryPublic",
    "EnterprisePublic",
    "Finite",
    "HealthPublic",
    "HistoryPublic",
    "IssuedCodePublic",
    "PushKeysRequest",
    "PushSubscriptionPublic",
    "PushSubscriptionRequest",
    "PushTestPublic",
    "PushTestResultPublic",
    "ReadinessPublic",
    "ReadingPointPublic",
    "ReadingSeriesPublic",
    "RefreshRequest",
    "RegionPublic",
    "ReportAcceptedPublic",
    "ReportPagePublic",
    "ReportPhotoPublic",
    "ReportPublic",
    "ReportRequest",
    "ResolveRequest",
    "RosterImportPublic",
    "RowErrorPublic",
    "SensorPublic",
    "TokenPublic",
    "UserPublic",
    "VapidPublicKeyPublic",
    "WorkerPublic",
    "WorkplaceEnterprisePublic",
    "WorkplacePublic",
    "WorkplaceSensorPublic",
    "WorkplaceZonePublic",
    "activation_link",
    "json_safe",
]


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


Finite = Annotated[float | None, AfterValidator(_finite_or_none)]
"""A number the API sends: a NaN or ±infinity becomes null."""
_NOT_FINITE = " Null when the stored value is not a finite number."


def json_safe(value: Any) -> Any:
    """``value`` (JSON-able) as JSON can carry it: every NaN or ±infinity turned into None,
    and lone surrogates in strings (no UTF-8 for them) into U+FFFD.

    >>> json_safe({"input": [1.5, float("inf")], "n": float("nan"), "s": "a\\ud800"})
    {'input': [1.5, None], 'n': None, 's': 'a\\ufffd'}
    """
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class _Public(BaseModel):
    model_config = ConfigDict(frozen=True)


class HealthPublic(_Public):
    status: str = Field(description="Always 'ok' when the process can answer at all.")


class CheckPublic(_Public):
    ok: bool = Field(description="Whether the dependency answered as expected.")
    latency_ms: Finite = Field(description="Time the check took, in milliseconds.")
    error: str | None = Field(description="Why the check failed; null when it succeeded.")


class ReadinessPublic(_Public):
    status: str = Field(description="'ready' when every check passed, else 'unavailable'.")
    checks: dict[str, CheckPublic] = Field(
        description="One entry per dependency: 'database', 'kafka', 'mqtt'."
    )


class RegionPublic(_Public):
    id: str = Field(description="ISO 3166-2:KZ code, e.g. 'KZ-35'.")
    kind: str = Field(description="'region' (oblys) or 'city' (city of republican significance).")
    name_en: str
    name_ru: str
    name_kk: str
    center: str = Field(description="Administrative centre.")
    timezone: str = Field(description="IANA time zone name.")
    enterprise_count: int = Field(description="Monitored enterprises in the region (count).")


class EnterprisePublic(_Public):
    id: str
    name: str
    name_ru: str
    region_id: str = Field(description="ISO 3166-2:KZ code of the region.")
    industry_code: str = Field(description="OKED section letter.")
    oked: str = Field(description="OKED class of the main activity, e.g. '24.10'.")
    city: str
    lat: Finite = Field(description="Latitude, in decimal degrees (WGS 84).")
    lon: Finite = Field(description="Longitude, in decimal degrees (WGS 84).")
    workers: int | None = Field(description="Headcount, in persons.")
    sensor_count: int = Field(description="Sensors installed (count).")
    emergency_phone: str | None = Field(
        description="The enterprise's own emergency line (its dispatcher), as dialled;"
        " null if not known. 112 reaches the country's emergency services."
    )


class SensorPublic(_Public):
    id: str
    enterprise_id: str
    zone_id: str
    zone_name: str
    hazard: str = Field(description="Hazard id from the hazard catalogue, e.g. 'co'.")
    unit: str | None = Field(
        description="Canonical unit of the hazard; every stored value is in it. "
        "Null if the hazard is missing from the catalogue."
    )
    interval_s: Finite = Field(description="Nominal reporting interval, in seconds." + _NOT_FINITE)
    gateway: bool = Field(description="Readings arrive in batches through a gateway.")
    model: str = Field(description="Device make and model.")
    last_reading_at: datetime | None = Field(description="Time of the latest stored reading.")
    last_value: Finite = Field(
        description="Latest stored value, in the hazard's canonical unit (see `unit`)."
        + _NOT_FINITE
    )
    exposure_at: datetime | None = Field(
        description="End of the newest minute of exposure figures; null without any."
    )
    twa: Finite = Field(
        description="Time-weighted average over the shift so far, in `unit`." + _NOT_FINITE
    )
    stel: Finite = Field(description="Average of the last 15 minutes, in `unit`." + _NOT_FINITE)
    twa_limit: Finite = Field(
        description="The shift-average limit (its warning level), in `unit`; null if none."
    )
    stel_limit: Finite = Field(
        description="The 15-minute limit (its warning level), in `unit`; null if none."
    )

    @classmethod
    def from_row(
        cls, row: SensorRow, catalogue: Catalogue, limits: Limits | None = None
    ) -> SensorPublic:
        hazard = catalogue.get(row.hazard)
        levels = {
            r.kind.value: r.warning
            for r in (limits.rules(row.hazard) if limits is not None else [])
            if r.kind.value in ("twa", "stel")
        }
        return cls(
            id=row.id,
            enterprise_id=row.enterprise_id,
            zone_id=row.zone_id,
            zone_name=row.zone_name,
            hazard=row.hazard,
            unit=hazard.unit if hazard is not None else None,
            interval_s=row.interval_s,
            gateway=row.gateway,
            model=row.model,
            last_reading_at=row.last_ts,
            last_value=row.last_value,
            exposure_at=row.exposure_ts,
            twa=row.twa,
            stel=row.stel,
            twa_limit=levels.get("twa"),
            stel_limit=levels.get("stel"),
        )


class ReadingPointPublic(_Public):
    """A raw reading, or a bucket of readings when the series is downsampled.

    Both have the same shape so a chart can draw ``value`` and a ``min``..``max``
    band either way: a raw reading has ``min == max == value`` and ``count == 1``.
    """

    ts: datetime = Field(description="Reading time, or the start of the bucket.")
    value: Finite = Field(
        description="The reading, or the bucket average, in the series' `unit`." + _NOT_FINITE
    )
    min: Finite = Field(
        description="Lowest value in the bucket, in the series' `unit`." + _NOT_FINITE
    )
    max: Finite = Field(
        description="Highest value in the bucket, in the series' `unit`." + _NOT_FINITE
    )
    count: int = Field(description="Readings behind this point (count); 1 for a raw reading.")
    plausible: bool = Field(
        description="False if the reading (or any reading in the bucket) was outside the "
        "hazard's plausible range, i.e. a suspected sensor fault, or is not a finite number."
    )

    @classmethod
    def from_storage(cls, point: ReadingPoint | ReadingBucket) -> ReadingPointPublic:
        if isinstance(point, ReadingBucket):
            return cls(
                ts=point.ts,
                value=point.avg,
                min=point.min,
                max=point.max,
                count=point.count,
                plausible=point.implausible == 0
                and all(math.isfinite(x) for x in (point.avg, point.min, point.max)),
            )
        return cls(
            ts=point.ts,
            value=point.value,
            min=point.value,
            max=point.value,
            count=1,
            plausible=point.plausible and math.isfinite(point.value),
        )


class ReadingSeriesPublic(_Public):
    sensor_id: str
    hazard: str
    unit: str | None = Field(description="Canonical unit of every value in `points`.")
    start: datetime = Field(description="Start of the requested range (inclusive).")
    end: datetime = Field(description="End of the requested range (exclusive).")
    downsampled: bool = Field(
        description="True when the range held more readings than `max_points` and "
        "`points` are time buckets."
    )
    bucket_seconds: int | None = Field(
        description="Width of each bucket, in seconds (buckets are aligned to the Unix "
        "epoch); null when `points` are raw readings."
    )
    points: list[ReadingPointPublic] = Field(description="In time order.")


class TokenPublic(_Public):
    access_token: str = Field(description="Bearer token for every request; short-lived.")
    refresh_token: str = Field(description="Buys a new pair at /login/refresh; longer-lived.")
    token_type: str = "bearer"
    expires_in: int = Field(description="Lifetime of the access token, in seconds.")

    @classmethod
    def from_pair(cls, pair: TokenPair) -> TokenPublic:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=4096)


class UserPublic(_Public):
    id: int = Field(description="The user's number (stable id).")
    username: str
    full_name: str
    role: str = Field(
        description="admin, labour_inspector, fire_inspector, safety_officer, control_room "
        "or worker."
    )
    regions: list[str] = Field(description="Regions the user covers (ISO 3166-2:KZ codes).")
    enterprise_id: str | None = Field(description="The user's enterprise, for officers/workers.")
    scope: str = Field(description="What the user may see, in words.")
    tags: list[str] = Field(description="Positions in escalation chains, e.g. 'duty', 'head'.")
    language: str = Field(description="'ru' or 'kk': the language of messages to the user.")
    email: str | None

    @classmethod
    def from_row(cls, row: UserRow) -> UserPublic:
        return cls(
            id=row.id,
            username=row.username,
            full_name=row.full_name,
            role=row.role,
            regions=row.regions,
            enterprise_id=row.enterprise_id,
            scope=row.scope.describe(),
            tags=row.tags,
            language=row.language,
            email=row.email,
        )


class AlertPublic(_Public):
    """One alert as people see it: the machine's view of the condition and theirs."""

    id: int = Field(description="The alert's number; stable across re-openings.")
    enterprise_id: str
    region_id: str | None = Field(description="ISO 3166-2:KZ code of the enterprise's region.")
    sensor_id: str | None = Field(description="The sensor, or 'worker:<id>' for an SOS report.")
    zone_id: str | None
    hazard: str | None = Field(description="Hazard id from the catalogue, e.g. 'co'.")
    unit: str | None = Field(description="Unit of `value` and `limit` (the hazard's canonical).")
    kind: str = Field(
        description="threshold, ceiling, stel, twa, fire, anomaly, sensor_fault, stale or sos."
    )
    source: str = Field(description="What raised it: a rule, or 'model:...' for online models.")
    severity: str = Field(description="'warning' or 'critical'.")
    status: str = Field(description="Where people are with it: open, acknowledged, resolved.")
    active: bool = Field(description="Whether the condition is still going on (machine view).")
    opened_at: datetime = Field(description="Event time of the reading that opened it.")
    value: Finite = Field(
        description="The value behind the latest change, in `unit`." + _NOT_FINITE
    )
    limit: Finite = Field(description="The limit crossed, in `unit`." + _NOT_FINITE)
    message: str
    escalated_at: datetime | None = Field(description="When it became critical.")
    cleared_at: datetime | None = Field(description="When the condition cleared.")
    acknowledged_at: datetime | None
    acknowledged_by: str | None = Field(description="User name of who acknowledged it.")
    resolved_at: datetime | None
    resolved_by: str | None = Field(description="User name; null when the machine resolved it.")
    resolution: str | None = Field(
        description="real_incident, false_alarm, sensor_fault, drill, other, or auto_cleared."
    )
    resolution_comment: str | None
    reopened_count: int = Field(description="Times the condition came back (count).")
    escalation_level: int = Field(
        description="Steps up the escalation chain while unacknowledged (count)."
    )
    updated_at: datetime

    @classmethod
    def from_row(cls, row: AlertRow, catalogue: Catalogue) -> AlertPublic:
        hazard = catalogue.get(row.hazard) if row.hazard else None
        return cls(
            id=row.id,
            enterprise_id=row.enterprise_id,
            region_id=row.region_id,
            sensor_id=row.sensor_id,
            zone_id=row.zone_id,
            hazard=row.hazard,
            unit=hazard.unit if hazard is not None else None,
            kind=row.kind,
            source=row.source,
            severity=row.severity,
            status=row.status,
            active=row.state == "open",
            opened_at=row.opened_at,
            value=row.value,
            limit=row.limit_value,
            message=row.message,
            escalated_at=row.escalated_at,
            cleared_at=row.cleared_at,
            acknowledged_at=row.acknowledged_at,
            acknowledged_by=row.acknowledged_by,
            resolved_at=row.resolved_at,
            resolved_by=row.resolved_by,
            resolution=row.resolution,
            resolution_comment=row.resolution_comment,
            reopened_count=row.reopened_count,
            escalation_level=row.escalation_level,
            updated_at=row.updated_at,
        )


class AlertPagePublic(_Public):
    total: int = Field(description="Alerts matching the filter (count), over all pages.")
    items: list[AlertPublic]


class HistoryPublic(_Public):
    at: datetime = Field(description="Event time (machine) or when the person acted.")
    actor: str = Field(description="A user name, or 'machine'.")
    action: str = Field(
        description="open, escalate, clear, retract, reopen, acknowledge, resolve, "
        "auto_resolve, comment, remind or escalate_level."
    )
    status: str = Field(description="The alert's status after the change.")
    severity: str
    value: Finite = Field(
        description="The value behind a machine change, in the unit." + _NOT_FINITE
    )
    reason: str | None
    comment: str | None

    @classmethod
    def from_row(cls, row: HistoryRow) -> HistoryPublic:
        return cls(
            at=row.at,
            actor=row.actor,
            action=row.action,
            status=row.status,
            severity=row.severity,
            value=row.value,
            reason=row.reason,
            comment=row.comment,
        )


class AlertDetailPublic(_Public):
    alert: AlertPublic
    history: list[HistoryPublic] = Field(description="Every change, oldest first.")
    readings: ReadingSeriesPublic | None = Field(
        description="The sensor's readings from 30 min before the alert opened to 30 min "
        "after it cleared (or now); null for alerts without a sensor (SOS)."
    )


class ResolveRequest(BaseModel):
    reason: Resolution = Field(
        description="real_incident, false_alarm, sensor_fault, drill or other."
    )
    comment: str | None = Field(
        default=None, max_length=MAX_COMMENT, description="Required when the reason is 'other'."
    )


class CommentRequest(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_COMMENT)


# --- Web Push subscriptions ---------------------------------------------------------------

MAX_PUSH_ENDPOINT = 2048
# Plain http is for push services on this machine only (tests, a local push server).
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")


def _b64url_bytes(value: str, name: str) -> bytes:
    """The bytes of base64url text (padding optional); ValueError naming ``name`` otherwise."""
    if not _B64URL.fullmatch(value):
        raise ValueError(f"{name} must be base64url (A-Z a-z 0-9 - _)")
    raw = value.rstrip("=")
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{name} is not valid base64url: {exc}") from exc


class PushTestResultPublic(_Public):
    push_service: str = Field(description="The push service's host (the endpoint is secret).")
    status: str = Field(
        description="sent, retry, rejected, or gone (the subscription was removed)."
    )
    http_status: int | None = Field(description="The push service's answer (HTTP status code).")
    detail: str = Field(description="What the push service said when it did not take it.")


class PushTestPublic(_Public):
    sent: int = Field(description="Browsers the push service took the test for (count).")
    results: list[PushTestResultPublic]


class VapidPublicKeyPublic(_Public):
    public_key: str = Field(
        description="The VAPID application server key: base64url of the uncompressed P-256 "
        "point (65 bytes). Pass it as `applicationServerKey` to `pushManager.subscribe`."
    )


class PushKeysRequest(BaseModel):
    p256dh: str = Field(
        max_length=200,
        description="The browser's P-256 public key: base64url of the uncompressed point "
        "(65 bytes, starting 0x04).",
    )
    auth: str = Field(
        max_length=100,
        description="The subscription's authentication secret: base64url of 16 bytes.",
    )

    @field_validator("p256dh")
    @classmethod
    def _p256_point(cls, value: str) -> str:
        raw = _b64url_bytes(value, "p256dh")
        if len(raw) != 65 or raw[0] != 0x04:
            raise ValueError(
                f"p256dh must be an uncompressed P-256 point (65 bytes starting 0x04), "
                f"got {len(raw)} bytes"
            )
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
        except ValueError as exc:
            raise ValueError("p256dh is not a point on the P-256 curve") from exc
        return b64url(raw)  # stored unpadded, as push libraries expect

    @field_validator("auth")
    @classmethod
    def _auth_secret(cls, value: str) -> str:
        raw = _b64url_bytes(value, "auth")
        if len(raw) != 16:
            raise ValueError(f"auth must be 16 bytes, got {len(raw)}")
        return b64url(raw)


class PushSubscriptionRequest(BaseModel):
    """A browser's ``PushSubscription.toJSON()``, as is."""

    model_config = ConfigDict(populate_by_name=True)

    endpoint: str = Field(
        max_length=MAX_PUSH_ENDPOINT,
        description="The push service URL of this browser (https://).",
    )
    expiration_time: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        alias="expirationTime",
        description="When the push service will drop the subscription, in milliseconds since "
        "the Unix epoch; null when it does not expire. Accepted and not stored: a dead "
        "subscription is pruned when its push service answers 404 or 410.",
    )
    keys: PushKeysRequest

    @field_validator("endpoint")
    @classmethod
    def _push_url(cls, value: str) -> str:
        if any(c.isspace() or ord(c) < 0x20 for c in value):
            raise ValueError("endpoint must be a URL without spaces")
        try:
            parts = urlsplit(value)
            host = parts.hostname
            _ = parts.port  # raises on a port that is not a number
        except ValueError as exc:
            raise ValueError(f"endpoint is not a valid URL: {exc}") from exc
        if not host:
            raise ValueError("endpoint must be an absolute URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("endpoint must not carry a user name or password")
        if parts.scheme == "https" or (parts.scheme == "http" and host in LOCAL_HOSTS):
            return value
        raise ValueError("endpoint must be an https:// URL (http:// only for 127.0.0.1/localhost)")


class PushSubscriptionPublic(_Public):
    """One of your browsers' subscriptions; its keys are never sent back."""

    id: int = Field(description="The subscription's number (stable id).")
    endpoint: str = Field(description="The push service URL of the browser.")
    user_agent: str | None = Field(description="The browser that subscribed (User-Agent).")
    created_at: datetime = Field(description="When the endpoint was first subscribed.")

    @classmethod
    def from_row(cls, row: PushSubscriptionRow) -> PushSubscriptionPublic:
        return cls(
            id=row.id, endpoint=row.endpoint, user_agent=row.user_agent, created_at=row.created_at
        )


# --- the delivery log ---------------------------------------------------------------------


def _scrubbed(text: str | None, channel: str, address: str) -> str | None:
    """An error without the address's secrets (rows written before errors were scrubbed)."""
    return scrub(text, address, channel=channel) if text else text


class DeliveryPublic(_Public):
    """One notification to one recipient on one channel, as the admins' log shows it."""

    id: int = Field(description="The delivery's number (stable id).")
    change_id: str = Field(description="The alert change (or reminder, digest) it tells of.")
    alert_key: str | None = Field(description="The alert's machine key; null for digests.")
    recipient: str = Field(description="Who: 'user:<id>', or a worker's app.")
    channel: str = Field(description="webpush, email, webhook, mqtt or apprise.")
    address: str = Field(
        description="Where, redacted (core.redaction): URLs keep only their scheme and host "
        "(push endpoints end in '/…'; 'scheme://…' when the host itself is a token, as in "
        "tgram://); e-mail addresses and MQTT topics are shown as they are."
    )
    status: str = Field(description="pending, retrying, sent, failed, rejected or gone.")
    attempts: int = Field(description="Attempts made so far (count).")
    latency_ms: Finite = Field(
        description="Round trip of the accepted attempt, in milliseconds; null until sent."
    )
    http_status: int | None = Field(
        description="HTTP status code of the latest attempt; null for channels without HTTP "
        "or when no answer came."
    )
    last_error: str | None = Field(description="Why the latest attempt did not succeed.")
    created_at: datetime = Field(description="When the delivery was first asked for.")
    next_attempt_at: datetime = Field(description="When an unfinished delivery is due again.")
    sent_at: datetime | None = Field(description="When the far end accepted it.")

    @classmethod
    def from_row(cls, row: DeliveryLogRow | DeliveryRow) -> DeliveryPublic:
        address = redact_address(row.channel, row.address)
        return cls(
            id=row.id,
            change_id=row.change_id,
            alert_key=row.alert_key,
            recipient=row.recipient,
            channel=row.channel,
            address=address,
            status=row.status,
            attempts=row.attempts,
            latency_ms=row.latency_ms,
            http_status=row.http_status,
            last_error=_scrubbed(row.last_error, row.channel, row.address),
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
        )


class DeliveryAttemptPublic(_Public):
    attempt: int = Field(description="Which attempt, counting from 1 (count).")
    at: datetime = Field(description="When the attempt finished.")
    status: str = Field(description="sent, retry, rejected or gone.")
    latency_ms: Finite = Field(
        description="How long the attempt took, in milliseconds." + _NOT_FINITE
    )
    http_status: int | None = Field(
        description="HTTP status code the far end answered; null without one."
    )
    error: str | None = Field(description="Why it did not succeed; null when it did.")

    @classmethod
    def from_row(
        cls, row: DeliveryAttemptRow, *, address: str, channel: str
    ) -> DeliveryAttemptPublic:
        return cls(
            attempt=row.attempt,
            at=row.at,
            status=row.status,
            latency_ms=row.latency_ms,
            http_status=row.http_status,
            error=_scrubbed(row.error, channel, address),
        )


class DeliveryDetailPublic(_Public):
    delivery: DeliveryPublic
    attempts: list[DeliveryAttemptPublic] = Field(description="Every attempt, oldest first.")


class ComponentPublic(_Public):
    name: str = Field(description="The component's instance name, e.g. 'worker-1'.")
    kind: str = Field(description="worker, bridge, notifier or api.")
    host: str
    ready: bool = Field(description="It said it can do its job (a worker: partitions assigned).")
    alive: bool = Field(description="Its last heartbeat is recent enough.")
    seen_s: float = Field(description="Seconds since its last heartbeat.")


class ProblemPublic(_Public):
    code: str = Field(
        description="no_readings, readings_late, no_workers, worker_silent, worker_not_ready"
        " or feed_down."
    )
    subject: str | None = Field(description="The component concerned, if any.")
    seconds: float | None = Field(description="How long (s), if it applies.")


class StatusPublic(_Public):
    now: datetime = Field(description="The server's clock.")
    newest_reading_at: datetime | None = Field(
        description="When the newest stored reading in your scope was taken."
    )
    reading_age_s: float | None = Field(description="Seconds since then.")
    stale_after_s: float = Field(description="Readings older than this make the data stale.")
    components: list[ComponentPublic]
    problems: list[ProblemPublic] = Field(
        description="Why the data may be stale; empty when everything is live."
    )


class RowErrorPublic(_Public):
    """One line of a roster that was not taken, and why."""

    line: int = Field(
        description="Line number in the file as an editor shows it (the header is line 1, usually)."
    )
    column: str | None = Field(
        description="name, personnel_number, zone or phone; null when the whole line is bad."
    )
    value: str | None = Field(description="What the file holds there (at most 200 characters).")
    message: str = Field(description="Why it was not taken, and what to do.")

    @classmethod
    def from_error(cls, error: RowError) -> RowErrorPublic:
        return cls(line=error.line, column=error.column, value=error.value, message=error.message)


class IssuedCodePublic(_Public):
    """A one-time activation code, shown this once: only its hash is kept."""

    username: str = Field(description="The worker's user name (derived from the roster).")
    full_name: str
    personnel_number: str | None
    code: str = Field(description="12 symbols of Crockford base32 in groups of 4 (60 bits).")
    link: str = Field(description="Opens the workers' app at its activation page with the code.")
    expires_at: datetime = Field(description="After this instant the code is void.")
    line: int | None = Field(
        description="The roster's line that created the worker; null for a re-issue."
    )

    @classmethod
    def from_issued(cls, issued: IssuedCode, public_url: str) -> IssuedCodePublic:
        return cls(
            username=issued.username,
            full_name=issued.full_name,
            personnel_number=issued.personnel_number,
            code=issued.code,
            link=activation_link(public_url, issued.code),
            expires_at=issued.expires_at,
            line=issued.line,
        )


def activation_link(public_url: str, code: str) -> str:
    """Where a worker opens their code: the app's activation page (the code in the fragment,
    which browsers never send to a server)."""
    return f"{public_url.rstrip('/')}/app/#activate={code}"


class RosterImportPublic(_Public):
    dry_run: bool = Field(description="True: checked only, nothing written, no code made.")
    rows_read: int = Field(description="Non-blank lines under the header (count).")
    created: int = Field(description="Workers created (count); in a dry run, to be created.")
    updated: int = Field(description="Workers whose name, zone or phone changed (count).")
    unchanged: int = Field(description="Workers already as the file says (count).")
    refused: int = Field(description="Lines not taken (count); each is in errors.")
    errors: list[RowErrorPublic] = Field(description="By line; a line may have several.")
    codes: list[IssuedCodePublic] = Field(
        description="One per worker created, shown this once: hand them out (paper slips)."
    )


class WorkerPublic(_Public):
    username: str
    full_name: str
    personnel_number: str | None
    zone_id: str | None = Field(description="The worker's workplace zone.")
    phone: str | None = Field(description="E.164, e.g. +77012345678.")
    active: bool = Field(description="False: disabled, may not sign in.")
    activated: bool = Field(description="Whether the worker has set their password.")
    code_expires_at: datetime | None = Field(
        description="When the worker's unused activation code expires; null when none is out."
    )
    created_at: datetime

    @classmethod
    def from_row(cls, row: WorkerRow) -> WorkerPublic:
        return cls(
            username=row.username,
            full_name=row.full_name,
            personnel_number=row.personnel_number,
            zone_id=row.zone_id,
            phone=row.phone,
            active=row.active,
            activated=row.activated,
            code_expires_at=row.code_expires_at,
            created_at=row.created_at,
        )


class ActivationRequest(BaseModel):
    code: str = Field(
        max_length=64,
        description="The activation code as printed (case, hyphens and spaces do not matter).",
        examples=["7K2M-9QXD-H4TA"],
    )
    password: str = Field(
        max_length=MAX_PASSWORD_LENGTH,
        description="The worker's new password (10 characters or more).",
    )


# --- workers' reports ---------------------------------------------------------------------

MAX_REPORT_TEXT = 4000  # what the pipeline takes (stream.reports.MAX_TEXT)
MAX_ACCURACY_M = 100_000.0  # the same as the pipeline's


class ReportKind(StrEnum):
    SOS = "sos"
    MAN_DOWN = "man_down"
    HAZARD_OBSERVATION = "hazard_observation"
    NEAR_MISS = "near_miss"
    INCIDENT = "incident"

    @property
    def urgent(self) -> bool:
        """SOS and man-down open a critical alert at once, and need no text."""
        return self in (ReportKind.SOS, ReportKind.MAN_DOWN)


class ReportRequest(BaseModel):
    """A report from the worker's app; who and which enterprise come from the token."""

    model_config = ConfigDict(extra="forbid")

    report_id: UUID = Field(
        description="Made by the app when the report is made, and sent again unchanged with"
        " every retry: the same id is one report, one alert, one set of notifications."
    )
    kind: ReportKind = Field(
        description="sos and man_down open a critical alert at once; the others go to the"
        " enterprise's safety officers as reports."
    )
    ts: AwareDatetime = Field(
        description="When the worker pressed the button (ISO 8601 with offset): not in the"
        " future (5 min of clock skew allowed), not older than the pipeline takes (7 days)."
    )
    text: str = Field(
        default="",
        max_length=MAX_REPORT_TEXT,
        description=f"What happened, at most {MAX_REPORT_TEXT} characters; required except"
        " for sos and man_down.",
    )
    lat: float | None = Field(
        default=None,
        ge=-90,
        le=90,
        allow_inf_nan=False,
        description="Latitude, in degrees (WGS 84).",
    )
    lon: float | None = Field(
        default=None,
        ge=-180,
        le=180,
        allow_inf_nan=False,
        description="Longitude, in degrees (WGS 84); with lat, or neither.",
    )
    accuracy_m: float | None = Field(
        default=None,
        ge=0,
        le=MAX_ACCURACY_M,
        allow_inf_nan=False,
        description="How far off lat/lon may be, in metres (the phone's estimate).",
    )


class ReportAcceptedPublic(_Public):
    report_id: UUID
    status: Literal["sent", "stored"] = Field(
        description="'sent': the broker has it (it is stored within a second or two); "
        "'stored': it was stored before (an earlier try got through)."
    )


class ReportPublic(_Public):
    report_id: str
    enterprise_id: str
    worker_id: str = Field(description="The worker's user name.")
    kind: str = Field(description="sos, man_down, hazard_observation, near_miss or incident.")
    ts: datetime = Field(description="When the worker made it.")
    received_at: datetime = Field(description="When it was stored.")
    zone_id: str | None
    text: str
    lat: Finite = Field(description="Latitude, in degrees (WGS 84).")
    lon: Finite = Field(description="Longitude, in degrees (WGS 84).")
    accuracy_m: Finite = Field(description="How far off lat/lon may be, in metres.")
    photo_ref: str | None = Field(
        description="Where its photo is: this API's URL for a photo sent here, or the app's"
        " own reference; null without one."
    )
    has_photo: bool = Field(description="A photo is stored here (GET its photo_ref).")

    @classmethod
    def from_row(cls, row: ReportRow) -> ReportPublic:
        return cls.model_validate(row, from_attributes=True)


class ReportPagePublic(_Public):
    total: int = Field(description="Reports matching the filter (count).")
    items: list[ReportPublic]


class ReportPhotoPublic(_Public):
    report_id: str
    content_type: str = Field(description="image/jpeg, image/png or image/webp (by its bytes).")
    size_bytes: int = Field(description="Size, in bytes.")
    sha256: str = Field(description="SHA-256 of the bytes, hex.")
    uploaded_at: datetime
    url: str = Field(description="Where to GET it.")


# --- a worker's workplace -----------------------------------------------------------------

Messages = dict[str, str]
_MESSAGES = "The same sentence in Russian ('ru'), Kazakh ('kk') and English ('en')."
_STATE = (
    "green: every limit kept; amber: past a warning level; red: past a critical level"
    " (leave the zone); unknown: no fresh, plausible reading (silent or faulty sensor)."
)


class WorkplaceEnterprisePublic(_Public):
    id: str
    name: str
    name_ru: str
    emergency_phone: str | None = Field(
        description="The enterprise's own emergency line, as dialled; 112 otherwise."
    )


class WorkplaceSensorPublic(_Public):
    sensor_id: str
    hazard: str = Field(description="Hazard id from the hazard catalogue, e.g. 'co'.")
    value: Finite = Field(description="The newest reading, in `unit`; null without one.")
    unit: str | None = Field(description="The hazard's canonical unit, e.g. 'mg/m3'.")
    ts: datetime | None = Field(description="When the newest reading was taken.")
    state: Literal["green", "amber", "red", "unknown"] = Field(description=_STATE)
    reason: str | None = Field(
        description="Why: warning, critical, no_data, silent, implausible or fault; null"
        " when green."
    )
    warning: Finite = Field(description="The warning level the value is held to, in `unit`.")
    critical: Finite = Field(description="The critical level the value is held to, in `unit`.")
    messages: Messages = Field(description=_MESSAGES)


class WorkplaceZonePublic(_Public):
    id: str
    name: str
    kind: str = Field(description="e.g. hot_shop, gas_hazard, confined_space.")
    state: Literal["green", "amber", "red", "unknown"] = Field(
        description="The gravest of its sensors' states; unknown without sensors."
    )
    messages: Messages = Field(description=_MESSAGES)
    sensors: list[WorkplaceSensorPublic]


class WorkplacePublic(_Public):
    enterprise: WorkplaceEnterprisePublic
    zone_assigned: bool = Field(
        description="Whether the worker has a zone of their own: then `zones` is that one;"
        " otherwise every zone of the enterprise."
    )
    state: Literal["green", "amber", "red", "unknown"] = Field(
        description="The gravest of the zones' states."
    )
    checked_at: datetime = Field(description="When the states were judged.")
    zones: list[WorkplaceZonePublic]
