"""Devices for end-to-end tests: fresh sensors in the registry, publishers with identities."""

from __future__ import annotations

import time
import uuid

import psycopg

from edge.publisher import BulkPublisher
from qorgau.launcher import Stack


def register_sensor(
    stack: Stack, enterprise_id: str, hazard: str, *, interval_s: float = 10.0
) -> str:
    """A new sensor of ``enterprise_id`` (in its first zone), known to the bridge on return."""
    sensor = f"{enterprise_id}-T{uuid.uuid4().hex[:8]}"
    assert stack.settings.database_url is not None
    with psycopg.connect(stack.settings.database_url) as conn:
        conn.execute(
            "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s)"
            " SELECT %s, %s, min(id), %s, %s FROM zones WHERE enterprise_id = %s",
            (sensor, enterprise_id, hazard, interval_s, enterprise_id),
        )
    stack.wait_for_registry(since=time.time())
    return sensor


def publisher(stack: Stack, enterprise_id: str) -> BulkPublisher:
    """A publisher connected as a gateway for every sensor of ``enterprise_id``."""
    s = stack.settings
    return BulkPublisher(
        s.mqtt_host, s.mqtt_port, credentials=stack.gateway_credentials(enterprise_id)
    )
