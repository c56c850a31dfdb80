from __future__ import annotations

import math
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.catalogue import load_catalogue
from core.errors import InvalidReading
from stream.codec import (
    MAX_BATCH,
    decode_envelope,
    encode_envelope,
    normalise,
    parse_reading_payload,
    parse_topic,
)

GOOD = {
    "ts": "2026-03-01T08:00:00.000Z",
    "hazard": "co",
    "value": 12.5,
    "unit": "mg/m3",
    "seq": 1042,
}


def reason(payload: bytes, sensor: str = "S1") -> str:
    with pytest.raises(InvalidReading) as e:
        parse_reading_payload(payload, sensor)
    return e.value.reason


def test_topics() -> None:
    assert parse_topic("qorgau/v1/E1/sensors/S1/status").kind == "status"
    assert parse_topic("qorgau/v1/E1/app/W9/report").subject_id == "W9"
    for bad in [
        "qorgau/v2/E1/sensors/S1/reading",
        "qorgau/v1/E1/sensors/S1",
        "qorgau/v1/E 1/sensors/S1/reading",
        "qorgau/v1/E1/app/W1/reading",
        "other/v1/E1/sensors/S1/reading",
        "qorgau/v1//sensors/S1/reading",
    ]:
        with pytest.raises(InvalidReading) as e:
            parse_topic(bad)
        assert e.value.reason == "bad_topic"


def test_single_and_batch_payloads() -> None:
    [one] = parse_reading_payload(orjson.dumps(GOOD), "S1")
    assert one == {**GOOD, "sensor_id": "S1"}
    batch = parse_reading_payload(orjson.dumps({"readings": [GOOD, {**GOOD, "seq": 1043}]}), "S1")
    assert [r["seq"] for r in batch] == [1042, 1043]
    no_seq = {k: v for k, v in GOOD.items() if k != "seq"}
    assert parse_reading_payload(orjson.dumps(no_seq), "S1")[0]["seq"] is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json", "bad_json"),
        (b"[1, 2]", "bad_payload"),
        (orjson.dumps({**GOOD, "ts": "2026-03-01T08:00:00"}), "bad_timestamp"),  # no zone
        (orjson.dumps({**GOOD, "ts": 1772352000}), "bad_timestamp"),
        (orjson.dumps({**GOOD, "value": "12"}), "bad_value"),
        (orjson.dumps({**GOOD, "value": True}), "bad_value"),
        (
            b'{"ts": "2026-03-01T08:00:00Z", "hazard": "co", "value": NaN, "unit": "ppm"}',
            "bad_json",
        ),
        (orjson.dumps({**GOOD, "seq": -1}), "bad_payload"),
        (orjson.dumps({**GOOD, "hazard": ""}), "bad_payload"),
        (orjson.dumps({**GOOD, "colour": "red"}), "bad_payload"),
        (orjson.dumps({**GOOD, "sensor_id": "S2"}), "sensor_mismatch"),
        (orjson.dumps({"readings": []}), "bad_payload"),
        (orjson.dumps({"readings": [GOOD, {**GOOD, "value": None}]}), "bad_value"),
        (orjson.dumps({"readings": [GOOD] * (MAX_BATCH + 1)}), "batch_too_large"),
    ],
)
def test_malformed_payloads_are_refused_with_a_reason(payload: bytes, expected: str) -> None:
    assert reason(payload) == expected


def test_envelope_round_trip_and_normalise() -> None:
    items = parse_reading_payload(orjson.dumps({**GOOD, "unit": "ppm", "value": 100}), "S1")
    [(eid, back), (other, rest)] = decode_envelope(
        encode_envelope({"E1": items, "E2": items[:0]}, 1.0)
    )
    assert (eid, other, rest) == ("E1", "E2", [])
    r = normalise(eid, back[0], load_catalogue())
    assert r.value == pytest.approx(114.56, abs=0.01)
    assert (r.unit, r.raw_value, r.raw_unit) == ("mg/m3", 100.0, "ppm")
    assert r.ts == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert r.plausible
    with pytest.raises(InvalidReading):
        decode_envelope(b'{"v": 99}')
    with pytest.raises(InvalidReading):
        decode_envelope(b'{"v": 2, "enterprises": {"E1": "not a list"}}')
    # An envelope of the previous release (one enterprise) still reads.
    v1 = orjson.dumps({"v": 1, "enterprise_id": "E1", "bridged_at": 1.0, "readings": items})
    assert decode_envelope(v1) == [("E1", items)]


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(min_value=0, max_value=2**62),
)
def test_any_finite_value_and_seq_survive_the_wire(value: float, seq: int) -> None:
    payload = orjson.dumps({**GOOD, "value": value, "seq": seq})
    [item] = parse_reading_payload(payload, "S1")
    r = normalise("E1", item, load_catalogue())
    assert r.value == value and r.seq == seq
    assert r.plausible == (-10.0 <= value <= 12000.0)
    assert not math.isnan(r.value)
