"""MQTT -> bridge -> Kafka -> Faust worker -> PostgreSQL, over real connections."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from edge.publisher import reading_topic
from qorgau.launcher import Stack
from stream.codec import encode_envelope
from tests.e2e import kafka
from tests.e2e.devices import publisher, register_sensor


def _ts(i: int = 0) -> str:
    t = datetime.now(UTC) + timedelta(milliseconds=i)
    return t.isoformat().replace("+00:00", "Z")


def _wait_rows(dsn: str, sensor: str, n: int, timeout_s: float = 30.0) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + timeout_s
    rows: list[tuple[Any, ...]] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            rows = conn.execute(
                "SELECT seq, value, unit, raw_value, raw_unit, enterprise_id, hazard"
                " FROM readings WHERE sensor_id = %s ORDER BY seq",
                (sensor,),
            ).fetchall()
            if len(rows) >= n:
                return rows
            time.sleep(0.1)
    return rows


def _publish(stack: Stack, messages: list[tuple[str, bytes]], enterprise: str = "E001") -> None:
    pub = publisher(stack, enterprise)
    try:
        pub.publish_many(messages)
        assert pub.wait_acked(timeout_s=20), "the broker did not acknowledge every message"
    finally:
        pub.close()


async def _dead_letters(
    stack: Stack, marker: str, n: int = 1, timeout_s: float = 20.0
) -> list[dict[str, Any]]:
    consumer = await kafka.consumer(stack, stack.settings.deadletter_topic, from_start=True)
    found: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(found) < n:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found += [orjson.loads(r.value) for r in records if marker.encode() in r.value]
    finally:
        await consumer.stop()
    return found


def _ids(stack: Stack, hazard: str) -> tuple[str, str]:
    """A fresh sensor of E001 measuring ``hazard``, in the registry."""
    return "E001", register_sensor(stack, "E001", hazard)


def test_reading_over_mqtt_is_stored_in_canonical_unit(stack: Stack) -> None:
    eid, sensor = _ids(stack, "co")
    payload = {"ts": _ts(), "hazard": "co", "value": 50.0, "unit": "ppm", "seq": 1}
    _publish(stack, [(reading_topic(eid, sensor), orjson.dumps(payload))])
    rows = _wait_rows(stack.settings.database_url or "", sensor, 1)
    assert len(rows) == 1
    seq, value, unit, raw_value, raw_unit, enterprise, hazard = rows[0]
    assert value == pytest.approx(50.0 * 28.010 / 24.45)  # 57.28 mg/m3
    assert (seq, unit, raw_value, raw_unit, enterprise, hazard) == (
        1,
        "mg/m3",
        50.0,
        "ppm",
        eid,
        "co",
    )


def test_gateway_batch_is_stored_whole(stack: Stack) -> None:
    eid, sensor = _ids(stack, "noise")
    items = [
        {"ts": _ts(i), "hazard": "noise", "value": 80.0 + i % 5, "unit": "dBA", "seq": i}
        for i in range(50)
    ]
    _publish(stack, [(reading_topic(eid, sensor), orjson.dumps({"readings": items}))])
    rows = _wait_rows(stack.settings.database_url or "", sensor, 50)
    assert [r[0] for r in rows] == list(range(50))


async def test_malformed_payload_goes_to_dead_letter_and_pipeline_continues(
    stack: Stack,
) -> None:
    eid, sensor = _ids(stack, "co")
    marker = uuid.uuid4().hex
    bad = f'{{"ts": "{_ts()}", "hazard": "co", "value": "high", "unit": "ppm", "x": "{marker}"'
    good = {"ts": _ts(1), "hazard": "co", "value": 5.0, "unit": "mg/m3", "seq": 7}
    topic = reading_topic(eid, sensor)
    await asyncio.to_thread(_publish, stack, [(topic, bad.encode()), (topic, orjson.dumps(good))])
    [dead] = await _dead_letters(stack, marker)
    assert dead["stage"] == "bridge"
    assert dead["reason"] == "bad_json"
    assert dead["source"] == f"mqtt:{topic}"
    assert marker in dead["payload"]  # what the device sent is kept for inspection
    rows = await asyncio.to_thread(_wait_rows, stack.settings.database_url or "", sensor, 1)
    assert [r[0] for r in rows] == [7]


async def test_unknown_hazard_is_dead_lettered_by_the_worker_with_its_offset(
    stack: Stack,
) -> None:
    # The bridge refuses a hazard its sensor does not measure (below); an envelope that
    # reaches Kafka another way is checked again by the worker, reading by reading.
    eid, sensor = _ids(stack, "dust")
    marker = f"radon{uuid.uuid4().hex[:6]}"
    bad = {"sensor_id": sensor, "ts": _ts(), "hazard": marker, "value": 1.0, "unit": "Bq/m3"}
    good = {"sensor_id": sensor, "ts": _ts(1), "hazard": "dust", "value": 2.0, "unit": "mg/m3"}
    await _produce(stack, encode_envelope({eid: [bad, {**good, "seq": 2}]}, time.time()), eid)
    [dead] = await _dead_letters(stack, marker)
    assert dead["stage"] == "worker"
    assert dead["reason"] == "unknown_hazard"
    assert dead["kafka"]["topic"] == stack.settings.readings_topic
    assert isinstance(dead["kafka"]["offset"], int)
    rows = await asyncio.to_thread(_wait_rows, stack.settings.database_url or "", sensor, 1)
    assert [r[0] for r in rows] == [2]  # the good half of the batch is stored


async def test_a_hazard_the_sensor_does_not_measure_is_refused_by_the_bridge(
    stack: Stack,
) -> None:
    eid, sensor = _ids(stack, "co")
    wrong = {"ts": _ts(), "hazard": "h2s", "value": 1.0, "unit": "mg/m3", "seq": 1}
    topic = reading_topic(eid, sensor)
    await asyncio.to_thread(
        _publish,
        stack,
        [(topic, orjson.dumps({**wrong, "sensor_id": sensor}))],
    )
    found = await _dead_letters(stack, f'"{sensor}')
    assert [d["reason"] for d in found] == ["hazard_mismatch"]
    assert _wait_rows(stack.settings.database_url or "", sensor, 1, timeout_s=2) == []


async def _produce(stack: Stack, envelope: bytes, key: str, times: int = 1) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(times):
            await producer.send_and_wait(stack.settings.readings_topic, envelope, key=key.encode())
    finally:
        await producer.stop()


async def test_redelivered_kafka_messages_do_not_duplicate_rows(stack: Stack) -> None:
    eid, sensor = _ids(stack, "so2")
    items = [
        {"sensor_id": sensor, "ts": _ts(i), "hazard": "so2", "value": 1.0, "unit": "ppm", "seq": i}
        for i in range(20)
    ]
    envelope = encode_envelope({eid: items}, time.time())
    s = stack.settings
    await _produce(stack, envelope, eid, times=3)  # the same batch delivered three times
    await asyncio.sleep(1.0)
    rows = await asyncio.to_thread(_wait_rows, s.database_url or "", sensor, 20)
    assert [r[0] for r in rows] == list(range(20))


def test_readings_published_while_the_bridge_is_down_arrive_after_it_restarts(
    stack: Stack,
) -> None:
    eid, sensor = _ids(stack, "h2s")
    stack.stop_component("bridge")
    try:
        msgs = [
            (
                reading_topic(eid, sensor),
                orjson.dumps(
                    {"ts": _ts(i), "hazard": "h2s", "value": 0.5, "unit": "mg/m3", "seq": i}
                ),
            )
            for i in range(200)
        ]
        _publish(stack, msgs)  # the broker keeps them in the bridge's persistent session
    finally:
        stack.spawn_component("bridge")
        stack.wait_ready("bridge")
    rows = _wait_rows(stack.settings.database_url or "", sensor, 200)
    assert [r[0] for r in rows] == list(range(200))


def test_worker_restart_loses_nothing_and_duplicates_nothing(stack: Stack) -> None:
    eid, sensor = _ids(stack, "nh3")
    msgs = [
        (
            reading_topic(eid, sensor),
            orjson.dumps({"ts": _ts(i), "hazard": "nh3", "value": 3.0, "unit": "mg/m3", "seq": i}),
        )
        for i in range(300)
    ]
    _publish(stack, msgs[:150])
    stack.stop_component("worker")
    try:
        _publish(stack, msgs[150:])
    finally:
        stack.spawn_component("worker")
        stack.wait_ready("worker")
    rows = _wait_rows(stack.settings.database_url or "", sensor, 300, timeout_s=60)
    assert [r[0] for r in rows] == list(range(300))


async def test_the_bridge_sends_again_what_the_embedded_kafka_broker_lost(stack: Stack) -> None:
    """When the stack says its memory-only Kafka-protocol broker restarted empty, the
    bridge sends again what it had sent from 10 s before the death until the topics
    were back; storage takes each reading once. (The kill itself: tests/e2e/test_chaos.py.)
    """
    from stream.readiness import mark_kafka_lost, read_stats

    assert stack.env.get("QORGAU_BRIDGE_KAFKA_REPLAY_S")  # on for the embedded broker
    eid, sensor = _ids(stack, "co")
    readings = [
        {"ts": _ts(i), "hazard": "co", "value": 5.0, "unit": "mg/m3", "seq": i}
        for i in range(1, 11)
    ]
    _publish(stack, [(reading_topic(eid, sensor), orjson.dumps(r)) for r in readings])
    dsn = stack.settings.database_url or ""
    assert len(_wait_rows(dsn, sensor, 10)) == 10
    replayed_before = read_stats(stack.state_dir, "bridge").get("kafka_replayed", 0)
    mark_kafka_lost(stack.state_dir, died_at=time.time(), back_at=time.time())
    deadline = time.monotonic() + 15
    while read_stats(stack.state_dir, "bridge").get("kafka_replayed", 0) <= replayed_before:
        assert time.monotonic() < deadline, "the bridge did not send anything again"
        await asyncio.sleep(0.2)
    consumer = await kafka.consumer(stack, stack.settings.readings_topic, from_start=True)
    copies = 0
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and copies < 20:
            batch = await consumer.getmany(timeout_ms=200)
            copies += sum(r.value.count(sensor.encode()) for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    assert copies >= 20  # every reading is on the readings topic twice...
    await asyncio.sleep(1.0)
    assert len(_wait_rows(dsn, sensor, 10)) == 10  # ...and stored once
