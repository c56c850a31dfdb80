"""Poison over real MQTT and Kafka: every good reading stored, every bad one on the
dead-letter topic with its reason, nothing restarted.

The exact inputs the black-box probe used run by default; a hypothesis fuzzing run
of the bridge and the worker over MQTT is marked slow (``pytest -m slow``).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from core.errors import InvalidReading
from edge.publisher import reading_topic
from qorgau.launcher import Stack
from stream.codec import parse_reading_payload
from tests.e2e import kafka
from tests.e2e.devices import publisher, register_sensor
from tests.e2e.test_pipeline import _wait_rows


def _ts(delta_s: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=delta_s)).isoformat().replace("+00:00", "Z")


async def _dead_letters_for(
    stack: Stack, needle: str, n: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    consumer = await kafka.consumer(stack, stack.settings.deadletter_topic, from_start=True)
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(found) < n:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [orjson.loads(r.value) for r in records if needle.encode() in r.value]
    finally:
        await consumer.stop()
    return found


async def test_the_probes_poison_loses_no_good_reading(stack: Stack) -> None:
    s = stack.settings
    dsn = s.database_url or ""
    restarts = len(stack.restarts)
    poisoned = register_sensor(stack, "E001", "co")
    good = {e: register_sensor(stack, e, "co") for e in ("E001", "E002")}
    fast = register_sensor(stack, "E001", "co")
    huge_hazard = {"ts": _ts(), "hazard": "h" * 1_000_000, "value": 1.0, "unit": "ppm"}
    year_one = {"ts": "0001-01-01T00:00:00Z", "hazard": "co", "value": 1.0, "unit": "ppm"}
    beyond_float = {"ts": _ts(), "hazard": "co", "value": 1.7e308, "unit": "ppm", "seq": 9}
    with publisher(stack, "E001") as e001, publisher(stack, "E002") as e002:
        for i in range(20):
            e001.publish(reading_topic("E001", good["E001"]), _good(i))
            e002.publish(reading_topic("E002", good["E002"]), _good(i))
            if i == 5:
                e001.publish(reading_topic("E001", poisoned), orjson.dumps(huge_hazard))
            if i == 10:
                e001.publish(reading_topic("E001", poisoned), orjson.dumps(year_one))
            if i == 15:
                e001.publish(reading_topic("E001", poisoned), orjson.dumps(beyond_float))
                # 4.5 min ahead, inside the accepted skew: stored, but event time holds.
                e001.publish(reading_topic("E001", fast), _good(1, delta_s=270))
        assert e001.wait_acked(timeout_s=20) and e002.wait_acked(timeout_s=20)
    for sensor in good.values():
        assert [r[0] for r in _wait_rows(dsn, sensor, 20)] == list(range(20))
    dead = await _dead_letters_for(stack, f"/sensors/{poisoned}/", 2)
    reasons = sorted(d["reason"] for d in dead)
    assert reasons == ["bad_payload", "bad_timestamp"], reasons
    huge = next(d for d in dead if d["reason"] == "bad_payload")
    assert huge["payload_truncated"] and huge["payload_bytes"] > 1_000_000
    assert len(json.dumps(huge)) < 100_000  # a dead letter always fits in Kafka
    [(value, plausible)] = _rows(dsn, poisoned, "value, plausible")
    assert value < float("inf") and value > 1e307 and plausible is False
    assert _wait_rows(dsn, fast, 1)  # the fast clock's reading is kept
    await asyncio.sleep(2.0)
    with psycopg.connect(dsn) as conn:
        kinds = conn.execute(
            "SELECT sensor_id, kind FROM alerts WHERE sensor_id = ANY(%s)",
            ([poisoned, fast, *good.values()],),
        ).fetchall()
    assert (poisoned, "sensor_fault") in kinds
    assert not [k for k in kinds if k[1] == "stale"], kinds  # nobody made stale by the fast clock
    assert len(stack.restarts) == restarts  # no component died


async def test_poison_that_reaches_kafka_directly_is_dead_lettered_by_the_worker(
    stack: Stack,
) -> None:
    s = stack.settings
    sensor = register_sensor(stack, "E003", "co")
    restarts = len(stack.restarts)
    marker = uuid.uuid4().hex
    items = [
        {"sensor_id": sensor, "ts": _ts(), "hazard": "h" * 1_000_000, "value": 1.0, "unit": "ppm"},
        {"sensor_id": sensor, "ts": "0001-01-01T00:00:00Z", "hazard": "co", "value": 1.0,
         "unit": "ppm"},
        {"sensor_id": marker, "ts": _ts(), "hazard": "co", "value": "1", "unit": "ppm"},
        *({"sensor_id": sensor, "ts": _ts(i / 100), "hazard": "co", "value": 2.0, "unit": "ppm",
           "seq": i} for i in range(10)),
    ]  # fmt: skip
    envelope = json.dumps({"v": 2, "bridged_at": 0, "enterprises": {"E003": items}}).encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap, acks="all", max_request_size=8 << 20
    )
    await producer.start()
    try:
        await producer.send_and_wait(s.readings_topic, envelope, key=b"E003")
        await producer.send_and_wait(s.readings_topic, b"\x00not an envelope " + marker.encode())
    finally:
        await producer.stop()
    assert [r[0] for r in _wait_rows(s.database_url or "", sensor, 10)] == list(range(10))
    dead = await _dead_letters_for(stack, sensor, 2)
    dead += await _dead_letters_for(stack, marker, 2)
    assert sorted(d["reason"] for d in dead) == [
        "bad_envelope",  # not even JSON
        "bad_payload",  # the 1 MB hazard id
        "bad_timestamp",  # year 1, never near any date arithmetic
        "bad_value",  # a number as text
    ]
    assert all(d["stage"] == "worker" and "offset" in d["kafka"] for d in dead)
    assert len(stack.restarts) == restarts


def _good(seq: int, delta_s: float = 0.0) -> bytes:
    return orjson.dumps(
        {"ts": _ts(delta_s), "hazard": "co", "value": 3.0, "unit": "mg/m3", "seq": seq}
    )


def _rows(dsn: str, sensor: str, columns: str) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + 30
    while True:
        with psycopg.connect(dsn) as conn:
            rows = conn.execute(
                f"SELECT {columns} FROM readings WHERE sensor_id = %s", (sensor,)
            ).fetchall()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


# --- fuzzing the bridge and the worker over MQTT (slow) ------------------------------------

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False),
    st.text(max_size=40), st.sampled_from(["co", "ppm", "mg/m3", "", "0001-01-01T00:00:00Z"]),
)  # fmt: skip
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=10,
)
_readingish = st.fixed_dictionaries(
    {},
    optional={
        "ts": st.just("NOW") | _scalars, "hazard": st.just("co") | _scalars,
        "value": st.floats(allow_nan=False) | _scalars, "unit": st.sampled_from(["ppm", "mg/m3"]) | _scalars,
        "seq": _scalars,
    },
)  # fmt: skip
fuzz_payloads = st.one_of(
    st.binary(max_size=200),
    _values.map(lambda v: json.dumps(v).encode()),
    _readingish.map(lambda r: json.dumps(r).encode()),
    st.lists(_readingish, min_size=1, max_size=4).map(
        lambda rs: json.dumps({"readings": rs}).encode()
    ),
)


def _bridge_refuses(payload: bytes, sensor: str) -> bool:
    """What the bridge must do with ``payload`` (its own codec as the oracle)."""
    try:
        items = parse_reading_payload(payload, sensor)
    except InvalidReading:
        return True
    return any(i["hazard"] != "co" for i in items)


@pytest.mark.slow
@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(payloads=st.lists(fuzz_payloads, min_size=40, max_size=40))
def test_fuzzed_messages_never_cost_a_good_reading_or_a_component(
    stack: Stack, payloads: list[bytes]
) -> None:
    dsn = stack.settings.database_url or ""
    restarts = len(stack.restarts)
    fuzzed = register_sensor(stack, "E001", "co")
    good = register_sensor(stack, "E001", "co")
    now = _ts()
    payloads = [p.replace(b'"NOW"', f'"{now}"'.encode()) for p in payloads]
    with publisher(stack, "E001") as pub:
        for i, payload in enumerate(payloads):
            pub.publish(reading_topic("E001", fuzzed), payload)
            pub.publish(reading_topic("E001", good), _good(i))
        assert pub.wait_acked(timeout_s=30)
    assert [r[0] for r in _wait_rows(dsn, good, len(payloads))] == list(range(len(payloads)))
    refused = sum(_bridge_refuses(p, fuzzed) for p in payloads)
    dead = asyncio.run(_dead_letters_for(stack, f"/sensors/{fuzzed}/", refused, timeout_s=30))
    assert len([d for d in dead if d["stage"] == "bridge"]) == refused
    assert all(d["reason"] for d in dead)
    assert len(stack.restarts) == restarts
