"""Workers' reports from the mobile app: validate, link to the enterprise and zone, raise SOS.

The bridge forwards ``qorgau/v1/{enterprise_id}/app/{worker_id}/report`` as
``{"enterprise_id", "worker_id", "payload", "received_at"}``. The payload:

    {"type": "sos" | "man_down" | "incident" | "near_miss" | "hazard_observation",
     "ts": "2026-03-01T08:00:00Z",          # optional: the receive time otherwise
     "id": "app-generated id",              # optional: makes redelivery idempotent
     "text": "free text",                   # optional for sos / man_down
     "zone_id": "E001-Z02",                 # optional; must be a zone of the enterprise
     "location": {"lat": 50.07, "lon": 73.03, "accuracy_m": 12},  # accuracy optional
     "photo_ref": "s3://bucket/key"}

An SOS or a man-down report opens a critical ``sos`` alert at once.

>>> rec, alert = parse_report(b'{"enterprise_id": "E001", "worker_id": "W7", "received_at": 1772352000.0,'
...     b' "payload": "{\\\\"type\\\\": \\\\"sos\\\\"}"}', zones=None)
>>> rec.kind, alert.kind.value, alert.severity.value, alert.sensor_id
('sos', 'sos', 'critical', 'worker:W7')
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.errors import InvalidReading
from storage.detection import ReportRecord
from stream.codec import parse_timestamp

__all__ = ["MAX_ACCURACY_M", "MAX_TEXT", "REPORT_KINDS", "parse_report"]

REPORT_KINDS = ("sos", "man_down", "incident", "near_miss", "hazard_observation")
_URGENT = {"sos": "SOS", "man_down": "man down"}
_FIELDS = {"type", "ts", "id", "text", "zone_id", "location", "photo_ref"}
MAX_TEXT = 4000
MAX_ACCURACY_M = 100_000.0  # a phone's GPS, or a cell tower's guess; beyond, no location


def parse_report(
    data: bytes, *, zones: Mapping[str, str] | None
) -> tuple[ReportRecord, AlertEvent | None]:
    """Validate one forwarded report; ``zones`` maps zone id -> enterprise id when known.

    Raises `InvalidReading` with a reason (``bad_report``, ``unknown_zone``...).
    """
    try:
        envelope = orjson.loads(data)
        payload = orjson.loads(envelope["payload"])
        eid, wid = envelope["enterprise_id"], envelope["worker_id"]
        received = datetime.fromtimestamp(float(envelope["received_at"]), UTC)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidReading("bad_report", f"not a report: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidReading("bad_report", "the report must be a JSON object")
    unknown = payload.keys() - _FIELDS
    if unknown:
        raise InvalidReading("bad_report", f"unknown field(s) {sorted(unknown)}")
    kind = payload.get("type")
    if kind not in REPORT_KINDS:
        raise InvalidReading("bad_report", f"type must be one of {', '.join(REPORT_KINDS)}")
    ts = parse_timestamp(payload["ts"], "ts") if "ts" in payload else received
    text = payload.get("text", "")
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise InvalidReading("bad_report", f"text must be a string of at most {MAX_TEXT} chars")
    if kind not in _URGENT and not text.strip():
        raise InvalidReading("bad_report", f"a {kind} report needs a description (text)")
    zone_id = payload.get("zone_id")
    if zone_id is not None:
        if not isinstance(zone_id, str):
            raise InvalidReading("bad_report", "zone_id must be a string")
        if zones is not None and zones.get(zone_id) != eid:
            raise InvalidReading("unknown_zone", f"zone {zone_id!r} is not a zone of {eid}")
    lat = lon = accuracy = None
    location = payload.get("location")
    if location is not None:
        try:
            lat, lon = float(location["lat"]), float(location["lon"])
        except (KeyError, TypeError, ValueError):
            raise InvalidReading("bad_report", "location must be {lat, lon}") from None
        if not (
            math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180
        ):
            raise InvalidReading("bad_report", "location out of range")
        if location.get("accuracy_m") is not None:
            try:
                accuracy = float(location["accuracy_m"])
            except (TypeError, ValueError):
                raise InvalidReading("bad_report", "location.accuracy_m must be metres") from None
            if not (math.isfinite(accuracy) and 0 <= accuracy <= MAX_ACCURACY_M):
                raise InvalidReading(
                    "bad_report", f"location.accuracy_m must be 0 to {MAX_ACCURACY_M:g} m"
                )
    photo = payload.get("photo_ref")
    if photo is not None and (not isinstance(photo, str) or len(photo) > 1000):
        raise InvalidReading("bad_report", "photo_ref must be a string reference")
    report_id = payload.get("id")
    if not isinstance(report_id, str) or not report_id:
        digest = hashlib.sha256(orjson.dumps([eid, wid, kind, ts.isoformat(), text])).hexdigest()
        report_id = f"r-{digest[:32]}"
    record = ReportRecord(report_id, eid, wid, kind, ts, zone_id, text, lat, lon, photo, accuracy)
    if kind not in _URGENT:
        return record, None
    where = f" in zone {zone_id}" if zone_id else ""
    at = f" at {lat:.5f}, {lon:.5f}" if lat is not None and lon is not None else ""
    details: dict[str, Any] = {"report_id": report_id, "worker_id": wid}
    alert = AlertEvent(
        action=AlertAction.OPEN,
        key=f"worker:{wid}|sos|{ts.isoformat()}",
        kind=AlertKind.SOS,
        severity=Severity.CRITICAL,
        enterprise_id=eid,
        sensor_id=f"worker:{wid}",
        hazard=kind,
        ts=ts,
        value=None,
        message=f"{_URGENT[kind]} from worker {wid}{where}{at}"
        + (f": {text}" if text.strip() else ""),
        zone_id=zone_id,
        details=details,
    )
    return record, alert
