"""Wire formats: MQTT topics and payloads in, the bridge's Kafka envelope, dead letters.

Pure code, no I/O: the bridge, the Faust worker and `qorgau replay` share it.

>>> parse_topic("qorgau/v1/E001/sensors/E001-S07/reading")
Topic(kind='reading', enterprise_id='E001', subject_id='E001-S07')
>>> items = parse_reading_payload(b'{"ts": "2026-03-01T08:00:00Z", "hazard": "co", "value": 12.5, "unit": "mg/m3", "seq": 1}', "E001-S07")
>>> items[0]["sensor_id"], items[0]["value"]
('E001-S07', 12.5)
>>> parse_reading_payload(b'{"ts": "yesterday", "hazard": "co", "value": 1, "unit": "ppm"}', "S1")
Traceback (most recent call last):
...
core.errors.InvalidReading: bad_timestamp: readings[0].ts 'yesterday' is not an RFC 3339 timestamp with a zone
"""

from __future__ import annotations

import base64
import math
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from core.catalogue import Catalogue
from core.errors import InvalidReading
from core.types import Reading

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_BATCH",
    "Topic",
    "dead_letter",
    "decode_envelope",
    "encode_envelope",
    "normalise",
    "parse_reading_payload",
    "parse_timestamp",
    "parse_topic",
]

ENVELOPE_VERSION = 2
#: A gateway batch larger than this is refused whole: it is a misconfigured device.
MAX_BATCH = 10_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_KINDS = {("sensors", "reading"), ("sensors", "status"), ("app", "report")}
_FIELDS = frozenset({"ts", "hazard", "value", "unit", "seq", "sensor_id"})


class Topic(NamedTuple):
    kind: str  # "reading" | "status" | "report"
    enterprise_id: str
    subject_id: str  # sensor id, or worker id for app reports


def parse_topic(topic: str) -> Topic:
    """Split a v1 topic; raise `InvalidReading` (``bad_topic``) for anything else."""
    parts = topic.split("/")
    if (
        len(parts) != 6
        or parts[0] != "qorgau"
        or parts[1] != "v1"
        or (parts[3], parts[5]) not in _KINDS
    ):
        raise InvalidReading("bad_topic", f"topic {topic!r} is not a qorgau/v1 topic")
    if not _ID.match(parts[2]) or not _ID.match(parts[4]):
        raise InvalidReading("bad_topic", f"topic {topic!r} has an invalid enterprise or device id")
    return Topic(parts[5], parts[2], parts[4])


def parse_timestamp(value: Any, where: str = "ts") -> datetime:
    if not isinstance(value, str):
        raise InvalidReading("bad_timestamp", f"{where} must be a string, got {value!r}")
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise InvalidReading(
            "bad_timestamp", f"{where} {value!r} is not an RFC 3339 timestamp with a zone"
        )
    return ts


def _check_item(item: Any, sensor_id: str, where: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise InvalidReading("bad_payload", f"{where} must be a JSON object")
    unknown = item.keys() - _FIELDS
    if unknown:
        raise InvalidReading("bad_payload", f"{where} has unknown field(s) {sorted(unknown)}")
    parse_timestamp(item.get("ts"), f"{where}.ts")
    hazard = item.get("hazard")
    unit = item.get("unit")
    value = item.get("value")
    seq = item.get("seq")
    if not isinstance(hazard, str) or not hazard:
        raise InvalidReading("bad_payload", f"{where}.hazard must be a non-empty string")
    if not isinstance(unit, str) or not unit:
        raise InvalidReading("bad_payload", f"{where}.unit must be a non-empty string")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidReading("bad_value", f"{where}.value must be a finite number, got {value!r}")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        raise InvalidReading("bad_payload", f"{where}.seq must be a non-negative integer")
    claimed = item.get("sensor_id")
    if claimed is not None and claimed != sensor_id:
        raise InvalidReading(
            "sensor_mismatch",
            f"{where}.sensor_id {claimed!r} differs from the topic's {sensor_id!r}",
        )
    return {
        "sensor_id": sensor_id,
        "ts": item["ts"],
        "hazard": hazard,
        "value": value,
        "unit": unit,
        "seq": seq,
    }


def parse_reading_payload(payload: bytes, sensor_id: str) -> list[dict[str, Any]]:
    """Validate the shape of a reading or a gateway batch; return plain reading dicts.

    A batch is all-or-nothing at this stage: the device sent one message, and a
    message with a malformed part goes to the dead-letter topic whole, so its
    owner can see exactly what was sent.
    """
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidReading("bad_json", f"payload is not JSON: {exc}") from None
    if isinstance(doc, dict) and "readings" in doc:
        items = doc["readings"]
        if not isinstance(items, list) or not items:
            raise InvalidReading("bad_payload", "readings must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise InvalidReading("batch_too_large", f"{len(items)} readings > {MAX_BATCH}")
        return [_check_item(it, sensor_id, f"readings[{i}]") for i, it in enumerate(items)]
    return [_check_item(doc, sensor_id, "readings[0]")]


def encode_envelope(packs: dict[str, list[dict[str, Any]]], bridged_at: float) -> bytes:
    """The Kafka message the bridge writes: the readings of one or more enterprises
    (all of one partition), packed together, each enterprise's in arrival order."""
    return orjson.dumps({"v": ENVELOPE_VERSION, "bridged_at": bridged_at, "enterprises": packs})


def decode_envelope(data: bytes) -> list[tuple[str, list[dict[str, Any]]]]:
    """``[(enterprise_id, readings), ...]`` of an envelope (v2, or v1: one enterprise)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidReading("bad_envelope", f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") not in (1, ENVELOPE_VERSION):
        raise InvalidReading("bad_envelope", f"not a v1/v{ENVELOPE_VERSION} readings envelope")
    packs: Any
    if doc["v"] == 1:  # written by a bridge of the previous release
        packs = {doc.get("enterprise_id"): doc.get("readings")}
    else:
        packs = doc.get("enterprises")
        if not isinstance(packs, dict):
            raise InvalidReading("bad_envelope", "envelope lacks its enterprises")
    out = []
    for eid, readings in packs.items():
        if not isinstance(eid, str) or not isinstance(readings, list):
            raise InvalidReading("bad_envelope", "envelope lacks enterprise_id or readings")
        out.append((eid, readings))
    return out


def normalise(enterprise_id: str, item: dict[str, Any], catalogue: Catalogue) -> Reading:
    """Turn a shape-checked reading dict into a `Reading` in the hazard's canonical unit."""
    hazard_id = item["hazard"]
    raw_value = float(item["value"])
    value = catalogue.convert(hazard_id, raw_value, item["unit"])
    hazard = catalogue[hazard_id]
    return Reading(
        enterprise_id=enterprise_id,
        sensor_id=item["sensor_id"],
        ts=parse_timestamp(item["ts"]),
        hazard=hazard_id,
        value=value,
        unit=hazard.unit,
        seq=item.get("seq"),
        raw_value=raw_value,
        raw_unit=item["unit"],
        plausible=hazard.is_plausible(value),
    )


def dead_letter(
    *,
    stage: str,
    reason: str,
    detail: str,
    source: str,
    payload: bytes | dict[str, Any] | list[Any],
    extra: dict[str, Any] | None = None,
) -> bytes:
    """A dead-letter record: what arrived, where from, why it was refused."""
    record: dict[str, Any] = {
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "source": source,
        "at": datetime.now(UTC).isoformat(),
    }
    if isinstance(payload, bytes):
        try:
            record["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(payload).decode("ascii")
    else:
        record["payload"] = payload
    if extra:
        record.update(extra)
    return orjson.dumps(record)
