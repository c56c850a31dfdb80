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
import sys
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from core.catalogue import Catalogue
from core.errors import InvalidReading
from core.types import Reading

__all__ = [
    "ENVELOPE_VERSION",
    "MAX_BATCH",
    "MAX_DEAD_LETTER_PAYLOAD",
    "MAX_PAYLOAD",
    "MAX_REPORT",
    "TS_MAX",
    "TS_MIN",
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
#: The largest MQTT message accepted (bytes): a full gateway batch fits with room to spare.
MAX_PAYLOAD = 2 * 1024 * 1024
#: The largest app report or sensor status accepted (bytes): text and references only.
MAX_REPORT = 64 * 1024
#: How much of a refused message a dead-letter record keeps (characters); the rest is cut,
#: with the original size noted, so a record always fits in a Kafka message.
MAX_DEAD_LETTER_PAYLOAD = 16 * 1024
_MAX_DETAIL = 1000
#: Timestamps outside these are refused before any date arithmetic is done with them.
TS_MIN = datetime(2000, 1, 1, tzinfo=UTC)
TS_MAX = datetime(2100, 1, 1, tzinfo=UTC)
_MAX_TS_CHARS = 64
_MAX_SEQ = 2**63 - 1  # PostgreSQL bigint
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_HAZARD = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_UNIT = re.compile(r"^[A-Za-z0-9%/._ ()\u00b0\u00b5-]{1,16}$")
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
    """An RFC 3339 timestamp with a zone, between `TS_MIN` and `TS_MAX`.

    >>> parse_timestamp("0001-01-01T00:00:00Z")
    Traceback (most recent call last):
    ...
    core.errors.InvalidReading: bad_timestamp: ts '0001-01-01T00:00:00Z' is outside 2000-2099
    """
    if not isinstance(value, str) or len(value) > _MAX_TS_CHARS:
        raise InvalidReading(
            "bad_timestamp", f"{where} must be a string of at most {_MAX_TS_CHARS} characters"
        )
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        ts = None
    if ts is None or ts.tzinfo is None:
        raise InvalidReading(
            "bad_timestamp", f"{where} {value!r} is not an RFC 3339 timestamp with a zone"
        )
    try:
        inside = TS_MIN <= ts < TS_MAX
    except OverflowError:  # a far offset on a date at the end of the calendar
        inside = False
    if not inside:
        raise InvalidReading("bad_timestamp", f"{where} {value!r} is outside 2000-2099")
    return ts


# (ts, ts as sent, hazard, value, unit, seq): a plain tuple, cheaper than a named one on
# the path every reading takes.
_Checked = tuple[datetime, str, str, float, str, int | None]
# Hazard/unit pairs that passed their patterns: most readings skip the two regexes.
_GOOD_HAZARD_UNIT: set[tuple[str, str]] = set()
_GOOD_HAZARD_UNIT_MAX = 4096


def _check_hazard_unit(hazard: Any, unit: Any, where: str) -> None:
    if type(hazard) is str and type(unit) is str and (hazard, unit) in _GOOD_HAZARD_UNIT:
        return
    if not isinstance(hazard, str) or not _HAZARD.match(hazard):
        raise InvalidReading(
            "bad_payload", f"{where}.hazard must be a hazard id (a-z, 0-9, _; at most 32)"
        )
    if not isinstance(unit, str) or not _UNIT.match(unit):
        raise InvalidReading("bad_payload", f"{where}.unit must be a unit of at most 16 characters")
    if len(_GOOD_HAZARD_UNIT) < _GOOD_HAZARD_UNIT_MAX:
        _GOOD_HAZARD_UNIT.add((str(hazard), str(unit)))


def _check_item(item: Any, sensor_id: str, where: str) -> _Checked:
    """The reading's fields, checked and bounded; `InvalidReading` says what is wrong."""
    if not isinstance(item, dict):
        raise InvalidReading("bad_payload", f"{where} must be a JSON object")
    if not _FIELDS.issuperset(item):
        unknown = item.keys() - _FIELDS
        names = _clip(repr(sorted(unknown)), 200)
        raise InvalidReading("bad_payload", f"{where} has unknown field(s) {names}")
    ts_text = item.get("ts")
    ts = parse_timestamp(ts_text, f"{where}.ts")
    hazard = item.get("hazard")
    unit = item.get("unit")
    value = item.get("value")
    seq = item.get("seq")
    _check_hazard_unit(hazard, unit, where)
    if (
        type(value) is not float
        and (isinstance(value, bool) or not isinstance(value, int) or abs(value) > 2**63)
    ) or not math.isfinite(value):
        raise InvalidReading(
            "bad_value", f"{where}.value must be a finite number, got {_clip(repr(value), 40)}"
        )
    if seq is not None and (type(seq) is not int or not 0 <= seq <= _MAX_SEQ):
        raise InvalidReading("bad_payload", f"{where}.seq must be an integer from 0 to 2^63-1")
    claimed = item.get("sensor_id")
    if claimed is not None and claimed != sensor_id:
        raise InvalidReading(
            "sensor_mismatch",
            f"{where}.sensor_id {_clip(repr(claimed), 80)} differs from the topic's {sensor_id!r}",
        )
    # ts_text, hazard and unit are strings: parse_timestamp and the patterns saw to it.
    return ts, ts_text, hazard, float(value), unit, seq  # type: ignore[return-value]


def _as_dict(c: _Checked, sensor_id: str) -> dict[str, Any]:
    return {
        "sensor_id": sensor_id,
        "ts": c[1],
        "hazard": c[2],
        "value": c[3],
        "unit": c[4],
        "seq": c[5],
    }


def parse_reading_payload(payload: bytes, sensor_id: str) -> list[dict[str, Any]]:
    """Validate the shape of a reading or a gateway batch; return plain reading dicts.

    A batch is all-or-nothing at this stage: the device sent one message, and a
    message with a malformed part goes to the dead-letter topic whole, so its
    owner can see exactly what was sent.
    """
    if len(payload) > MAX_PAYLOAD:
        raise InvalidReading("too_large", f"{len(payload):,} bytes > {MAX_PAYLOAD:,}")
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidReading("bad_json", f"payload is not JSON: {_clip(str(exc), 200)}") from None
    if isinstance(doc, dict) and "readings" in doc:
        items = doc["readings"]
        if not isinstance(items, list) or not items:
            raise InvalidReading("bad_payload", "readings must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise InvalidReading("batch_too_large", f"{len(items)} readings > {MAX_BATCH}")
        return [
            _as_dict(_check_item(it, sensor_id, f"readings[{i}]"), sensor_id)
            for i, it in enumerate(items)
        ]
    return [_as_dict(_check_item(doc, sensor_id, "readings[0]"), sensor_id)]


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
        if not _ID.match(eid):
            raise InvalidReading("bad_envelope", f"enterprise id {_clip(repr(eid), 80)} is invalid")
        out.append((eid, readings))
    return out


def normalise(enterprise_id: str, item: Any, catalogue: Catalogue) -> Reading:
    """Turn a reading dict of an envelope into a `Reading` in the hazard's canonical unit.

    The reading is checked again, as the bridge checked it: whatever sits on the
    readings topic, nothing unchecked reaches storage. A value that is finite as
    sent but not once converted (1.7e308 ppm of CO is beyond any float in mg/m3)
    is kept as the largest finite number of its sign and marked implausible: it is
    evidence of a faulty sensor, never an infinity in storage or on the wire.
    """
    sensor_id = item.get("sensor_id") if isinstance(item, dict) else None
    if not isinstance(sensor_id, str) or not _ID.match(sensor_id):
        raise InvalidReading("bad_payload", "reading lacks a valid sensor_id")
    ts, _text, hazard_id, raw_value, raw_unit, seq = _check_item(item, sensor_id, "reading")
    value = catalogue.convert(hazard_id, raw_value, raw_unit)
    hazard = catalogue[hazard_id]
    plausible = math.isfinite(value) and hazard.is_plausible(value)
    if not math.isfinite(value):
        value = math.copysign(sys.float_info.max, raw_value if math.isnan(value) else value)
    return Reading(
        enterprise_id=enterprise_id,
        sensor_id=sensor_id,
        ts=ts,
        hazard=hazard_id,
        value=value,
        unit=hazard.unit,
        seq=seq,
        raw_value=raw_value,
        raw_unit=raw_unit,
        plausible=plausible,
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
    """A dead-letter record: what arrived, where from, why it was refused.

    Bounded whatever arrived: the payload keeps its first `MAX_DEAD_LETTER_PAYLOAD`
    characters (``payload_truncated`` and ``payload_bytes``, the original size, say so).

    >>> rec = orjson.loads(dead_letter(stage="bridge", reason="too_large", detail="",
    ...     source="mqtt:x", payload=b"x" * 10_000_000))
    >>> len(rec["payload"]), rec["payload_bytes"], rec["payload_truncated"]
    (16384, 10000000, True)
    """
    record: dict[str, Any] = {
        "stage": stage,
        "reason": _clip(reason, 64),
        "detail": _clip(detail, _MAX_DETAIL),
        "source": _clip(source, 300),
        "at": datetime.now(UTC).isoformat(),
    }
    raw = payload if isinstance(payload, bytes) else _json_or_repr(payload)
    record["payload_bytes"] = len(raw)
    cut = raw[: MAX_DEAD_LETTER_PAYLOAD * 4]  # at most 4 bytes a character
    try:
        text = cut.decode("utf-8", "strict" if len(cut) == len(raw) else "ignore")
        if len(text) > MAX_DEAD_LETTER_PAYLOAD or len(cut) < len(raw):
            record["payload"] = text[:MAX_DEAD_LETTER_PAYLOAD]
            record["payload_truncated"] = True
        elif isinstance(payload, bytes):
            record["payload"] = text
        else:
            record["payload"] = payload
    except UnicodeDecodeError:
        record["payload_base64"] = base64.b64encode(
            raw[: MAX_DEAD_LETTER_PAYLOAD // 4 * 3]
        ).decode()
        if len(raw) > MAX_DEAD_LETTER_PAYLOAD // 4 * 3:
            record["payload_truncated"] = True
    for key, value in (extra or {}).items():
        record[key] = value
    return orjson.dumps(record, default=repr)


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _json_or_repr(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload)
    except (TypeError, orjson.JSONEncodeError):
        return repr(payload).encode("utf-8", "replace")
