"""The fallback for machines without Mosquitto: the same pipeline through amqtt."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg

from core.settings import Settings
from edge.publisher import BulkPublisher, reading_topic
from qorgau.launcher import Stack


def test_pipeline_through_embedded_amqtt(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        state_dir=tmp_path,
        embedded_mqtt="amqtt",
        kafka_partitions=2,
        worker_app_id="qorgau-worker-amqtt",
    )
    sensor = f"AMQ-{uuid.uuid4().hex[:6]}"
    with Stack(settings, components=("bridge", "worker")) as stack:
        assert stack.mqtt_broker == "amqtt"
        s = stack.settings
        pub = BulkPublisher(s.mqtt_host, s.mqtt_port)
        t0 = datetime.now(UTC)
        for i in range(100):
            pub.publish(
                reading_topic("E002", sensor),
                orjson.dumps(
                    {
                        "ts": (t0 + timedelta(milliseconds=i)).isoformat(),
                        "hazard": "h2s",
                        "value": 1.0,
                        "unit": "ppm",
                        "seq": i,
                    }
                ),
            )
        assert pub.wait_acked(timeout_s=30)
        pub.close()
        deadline = time.monotonic() + 30
        stored = 0
        while time.monotonic() < deadline and stored < 100:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(DISTINCT seq) FROM readings WHERE sensor_id = %s", (sensor,)
                ).fetchone()
            stored = row[0] if row else 0
            time.sleep(0.2)
    assert stored == 100
