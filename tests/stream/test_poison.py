"""No single message, however large or odd, can crash the worker or cost another reading.

Property-based (hypothesis) over the payload decoder, the dead-letter record,
the worker's per-batch processing (`stream.runtime.WorkerRuntime`, on a real
PostgreSQL) and the detection state's checkpoint and restore. The same
attacks over real MQTT and Kafka are in ``tests/e2e/test_poison_live.py``.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.catalogue import load_catalogue
from core.errors import InvalidReading
from core.limits import load_limits
from core.reference import load_reference
from core.types import Reading
from storage.detection import save_checkpoint
from stream.codec import (
    MAX_DEAD_LETTER_PAYLOAD,
    dead_letter,
    encode_envelope,
    normalise,
    parse_reading_payload,
)
from stream.detection.detector import Detector
from stream.processing import BatchProcessor
from stream.runtime import Inbound, WorkerRuntime

CAT = load_catalogue()
LIMITS = load_limits()
REF = load_reference()

GOOD = {"ts": "2026-03-01T08:00:00.000Z", "hazard": "co", "value": 12.5, "unit": "mg/m3"}

# Values a careless or hostile device sends.
odd_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=50),
    st.sampled_from(["", "\x00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "x" * 300]),
)
json_values = st.recursive(
    odd_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
mutated_readings = st.fixed_dictionaries(
    {},
    optional={
        "ts": odd_scalars | st.just(GOOD["ts"]),
        "hazard": odd_scalars | st.sampled_from(["co", "o2", "radon"]),
        "value": odd_scalars,
        "unit": odd_scalars | st.sampled_from(["ppm", "mg/m3", "%vol"]),
        "seq": odd_scalars,
        "sensor_id": odd_scalars | st.just("S1"),
    },
)


def _dumps(doc: Any) -> bytes:
    """JSON as a device may write it: integers of any size (orjson refuses those)."""
    return json.dumps(doc).encode()


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        json_values.map(_dumps),
        mutated_readings.map(_dumps),
        st.lists(mutated_readings, min_size=1, max_size=5).map(lambda rs: _dumps({"readings": rs})),
    )
)
def test_the_decoder_refuses_with_a_reason_or_returns_readings_it_can_convert(
    payload: bytes,
) -> None:
    try:
        items = parse_reading_payload(payload, "S1")
    except InvalidReading as exc:
        assert exc.reason and len(exc.detail) < 2000
        return
    for item in items:
        assert set(item) == {"sensor_id", "ts", "hazard", "value", "unit", "seq"}
        assert item["sensor_id"] == "S1" and math.isfinite(item["value"])
        try:
            reading = normalise("E001", item, CAT)
        except InvalidReading as exc:
            assert exc.reason in ("unknown_hazard", "unit_not_accepted")
            continue
        assert math.isfinite(reading.value) and math.isfinite(reading.raw_value)
        assert datetime(2000, 1, 1, tzinfo=UTC) <= reading.ts < datetime(2100, 1, 1, tzinfo=UTC)


def test_a_value_beyond_any_float_once_converted_is_a_faulty_reading_not_infinity() -> None:
    [item] = parse_reading_payload(orjson.dumps({**GOOD, "value": 1.7e308, "unit": "ppm"}), "S1")
    reading = normalise("E001", item, CAT)
    assert math.isfinite(reading.value) and reading.value > 1e307
    assert not reading.plausible  # the detector opens a sensor fault for it


@settings(max_examples=60)
@given(
    st.one_of(
        st.binary(max_size=200_000),
        st.text(max_size=60_000).map(str.encode),
        st.integers(min_value=0, max_value=3_000_000).map(lambda n: b"h" * n),
    ),
    st.text(max_size=5000),
)
def test_a_dead_letter_is_bounded_whatever_arrived(payload: bytes, detail: str) -> None:
    record = dead_letter(
        stage="bridge", reason="x", detail=detail, source="mqtt:t", payload=payload
    )
    assert len(record) < 8 * MAX_DEAD_LETTER_PAYLOAD  # far below Kafka's 1 MB message limit
    doc = orjson.loads(record)
    assert doc["payload_bytes"] == len(payload) and len(doc["detail"]) <= 1000
    kept = doc["payload"].encode() if "payload" in doc else base64.b64decode(doc["payload_base64"])
    if doc.get("payload_truncated"):
        assert len(kept) < len(payload)
    else:
        assert kept == payload  # what arrived, exactly, when it fits


# --- the worker's batches, on a real database -----------------------------------------------

RECENT = {**GOOD, "ts": (datetime.now(UTC) - timedelta(minutes=20)).isoformat()}
POISON: list[tuple[str, Any]] = [
    ("a 1 MB hazard", {**RECENT, "hazard": "h" * 1_000_000, "sensor_id": "P-S1"}),
    ("year 1", {**GOOD, "ts": "0001-01-01T00:00:00Z", "sensor_id": "P-S2"}),
    ("year 9999 far east", {**GOOD, "ts": "9999-12-31T23:59:59-14:00", "sensor_id": "P-S2"}),
    ("not a number", {**RECENT, "value": "12", "sensor_id": "P-S3"}),
    ("no timestamp", {"hazard": "co", "value": 1.0, "unit": "ppm", "sensor_id": "P-S4"}),
    ("a list", [1, 2, 3]),
    ("a NUL in the sensor id", {**RECENT, "sensor_id": "P-\x00"}),
    ("a NUL in the unit", {**RECENT, "unit": "ppm\x00", "sensor_id": "P-S7"}),
    ("an unknown unit", {**RECENT, "unit": "furlongs", "sensor_id": "P-S5"}),
    ("a seq beyond bigint", {**RECENT, "seq": 2**70, "sensor_id": "P-S6"}),
]


class Sink:
    """Where the runtime hands records for Kafka (the live path is tested end to end)."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes]] = []

    async def __call__(self, key: bytes | None, value: bytes) -> Awaitable[None]:
        self.records.append((key, value))

        async def acked() -> None:
            return None

        return acked()


def runtime(dsn: str) -> tuple[WorkerRuntime, Sink, Sink]:
    alerts, dead = Sink(), Sink()
    detector = Detector(CAT, LIMITS, REF, clock=lambda: datetime.now(UTC).timestamp())
    rt = WorkerRuntime(
        dsn,
        BatchProcessor(detector, checkpoint_every_s=0.0),
        CAT,
        zones={},
        send_alert=alerts,
        send_dead_letter=dead,
    )
    return rt, alerts, dead


def _envelope(packs: dict[str, list[Any]]) -> bytes:
    return _dumps({"v": 2, "bridged_at": 0.0, "enterprises": packs})


def good_items(sensor: str, n: int, t0: datetime) -> list[dict[str, Any]]:
    return [
        {
            **GOOD,
            "sensor_id": sensor,
            "seq": i,
            "value": 5.0 + i % 3,
            "ts": (t0 + timedelta(seconds=10 * i)).isoformat(),
        }
        for i in range(n)
    ]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    poison=st.lists(st.sampled_from(POISON), min_size=1, max_size=4),
    good=st.integers(min_value=1, max_value=30),
    split=st.booleans(),
)
async def test_a_batch_with_poison_stores_every_good_reading_and_dead_letters_the_rest(
    database_url: str, poison: list[tuple[str, Any]], good: int, split: bool
) -> None:
    ent = f"Z{uuid.uuid4().hex[:8]}"  # an enterprise the worker has never seen
    t0 = datetime.now(UTC) - timedelta(minutes=10)
    items = good_items(f"{ent}-S1", good, t0)
    bad = [item for _, item in poison]
    packs = {ent: items[: good // 2] + bad + items[good // 2 :]}
    records = [_envelope(packs)]
    if split:  # the poison in a message of its own, and a record that is not even JSON
        records = [_envelope({ent: items}), _envelope({ent: bad}), b"\xff{"]
    rt, _alerts, dead = runtime(database_url)
    try:
        await rt.handle_readings(
            [Inbound(r, ent.encode(), "qorgau.readings", 0, i) for i, r in enumerate(records)]
        )
    finally:
        await rt.close()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        stored = await (
            await conn.execute(
                "SELECT seq FROM readings WHERE enterprise_id = %s ORDER BY seq", (ent,)
            )
        ).fetchall()
    assert [r[0] for r in stored] == list(range(good))  # every good reading, once
    reasons = [orjson.loads(v)["reason"] for _, v in dead.records]
    assert len(reasons) == len(bad) + (1 if split else 0)  # each bad one kept, with its reason
    assert all(len(v) < 200_000 for _, v in dead.records)
    assert rt.stats.stored == good


async def test_a_reading_the_database_refuses_is_isolated_and_the_others_are_stored(
    database_url: str,
) -> None:
    # Nothing that passes the codec is refused by PostgreSQL today; a NUL in a text
    # column (which the codec refuses) stands for whatever a future column may refuse.
    ent = f"Z{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    readings = [co(f"{ent}-S1", t0 + timedelta(seconds=10 * i), enterprise=ent) for i in range(40)]
    readings[17] = co(f"{ent}-\x00", readings[17].ts, enterprise=ent)
    rt, _, dead = runtime(database_url)
    try:
        await rt.store(readings)
    finally:
        await rt.close()
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await (
            await conn.execute("SELECT count(*) FROM readings WHERE enterprise_id = %s", (ent,))
        ).fetchone()
    assert row is not None and row[0] == 39
    [(key, value)] = dead.records
    assert orjson.loads(value)["reason"] == "unprocessable" and key == ent.encode()
    assert rt.stats.isolated == 1


async def test_an_unreadable_checkpoint_is_rebuilt_from_the_stored_readings(
    database_url: str,
) -> None:
    ent = f"Z{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await save_checkpoint(conn, ent, b"not a checkpoint at all", None)
        await conn.commit()
    rt, _, dead = runtime(database_url)
    items = good_items(f"{ent}-S1", 5, datetime.now(UTC) - timedelta(minutes=1))
    try:
        await rt.handle_readings([Inbound(encode_envelope({ent: items}, 0.0), None, "t", 0, 0)])
    finally:
        await rt.close()
    assert rt.stats.stored == 5 and dead.records == []


# --- event time and the detection state ---------------------------------------------------------


def co(sensor: str, ts: datetime, value: float = 5.0, enterprise: str = "E001") -> Reading:
    return Reading(enterprise, sensor, ts, "co", value, "mg/m3", None, value, "mg/m3", True)


def test_a_reading_from_a_fast_clock_does_not_make_its_neighbours_stale() -> None:
    now = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    clock = {"t": now.timestamp()}
    d = Detector(CAT, LIMITS, REF, clock=lambda: clock["t"])
    events = []
    for i in range(12):  # two healthy sensors, every 10 s
        clock["t"] = (now + timedelta(seconds=10 * i)).timestamp()
        for s in ("E001-S01", "E001-S02"):
            events += d.process(co(s, now + timedelta(seconds=10 * i)))
    # A sensor whose clock runs 4.5 min fast (inside the accepted skew):
    events += d.process(
        co("E001-S04", datetime.fromtimestamp(clock["t"], UTC) + timedelta(minutes=4.5))
    )
    assert [e for e in events if e.kind.value == "stale"] == []
    assert d.watermarks["E001"] <= clock["t"]


sequences = st.lists(
    st.tuples(
        st.sampled_from(["E001-S01", "E001-S02", "E001-S03"]),
        st.floats(min_value=0.5, max_value=400.0),  # seconds after the sensor's previous reading
        st.one_of(
            st.floats(min_value=0.0, max_value=400.0),
            st.sampled_from([-5.0, 1e9, 0.0, 20.0, 40.0]),  # impossible values, limits
        ),
    ),
    min_size=2,
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(sequences, st.data())
def test_a_restored_checkpoint_continues_exactly_like_the_state_it_saved(
    seq: list[tuple[str, float, float]], data: st.DataObject
) -> None:
    t = {s: datetime(2026, 3, 1, 8, 0, tzinfo=UTC) for s in ("E001-S01", "E001-S02", "E001-S03")}
    readings = []
    for sensor, gap, value in seq:
        t[sensor] += timedelta(seconds=gap)
        hazard = "temperature" if sensor == "E001-S03" else "co"
        unit = "degC" if hazard == "temperature" else "mg/m3"
        readings.append(
            Reading(
                "E001",
                sensor,
                t[sensor],
                hazard,
                value,
                unit,
                None,
                value,
                unit,
                CAT[hazard].is_plausible(value),
            )
        )
    readings.sort(key=lambda r: r.ts)
    cut = data.draw(st.integers(min_value=1, max_value=len(readings) - 1))
    whole, first = Detector(CAT, LIMITS, REF), Detector(CAT, LIMITS, REF)

    def feed(d: Detector, rs: list[Reading]) -> list[Any]:
        out = []
        for r in rs:
            try:
                out += d.process(r)
            except InvalidReading:
                out.append("refused")
        return out

    feed(whole, readings[:cut])
    feed(first, readings[:cut])
    restored = Detector(CAT, LIMITS, REF)
    restored.import_state("E001", first.export_state("E001"))
    assert feed(restored, readings[cut:]) == feed(whole, readings[cut:])
    assert restored.flush() == whole.flush()
