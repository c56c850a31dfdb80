"""Publishing readings over MQTT with QoS 1, never losing one on a broker outage.

paho keeps every unacknowledged QoS 1 message and re-sends it after it
reconnects; the queue is unbounded so nothing is dropped while disconnected.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["BulkPublisher", "make_client", "reading_topic", "status_topic"]


def reading_topic(enterprise_id: str, sensor_id: str) -> str:
    return f"qorgau/v1/{enterprise_id}/sensors/{sensor_id}/reading"


def status_topic(enterprise_id: str, sensor_id: str) -> str:
    return f"qorgau/v1/{enterprise_id}/sensors/{sensor_id}/status"


def make_client(
    client_id: str,
    *,
    max_inflight: int = 1000,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
) -> mqtt.Client:
    """A QoS 1 publisher. The broker knows a device by ``username`` (its client id is
    that name: Mosquitto's ``use_username_as_clientid``)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=username or client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if username is not None:
        client.username_pw_set(username, password)
    if tls_ca is not None:
        client.tls_set(ca_certs=tls_ca)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)  # unbounded: queue while the broker is away
    client.reconnect_delay_set(min_delay=1, max_delay=5)
    return client


class BulkPublisher:
    """Publish many messages fast and wait until the broker acknowledged every one.

    Runs paho's network loop in the calling thread (no background thread): each
    publish writes straight to the socket and acknowledgements are read in
    between, which costs far less CPU than a loop thread contending for the GIL.
    At most ``window`` messages are unacknowledged at any time.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str | None = None,
        window: int = 64,
        connect_timeout_s: float = 10.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.client = make_client(
            client_id or f"qorgau-pub-{uuid.uuid4().hex[:8]}",
            max_inflight=window,
            username=credentials[0] if credentials else None,
            password=credentials[1] if credentials else None,
        )
        self.window = window
        self._sent = 0
        self._acked = 0
        self.client.on_publish = self._on_publish
        self._refused = ""
        self.client.on_connect = self._on_connect
        self.client.connect(host, port, keepalive=30)
        deadline = time.monotonic() + connect_timeout_s
        while not self.client.is_connected():
            if time.monotonic() > deadline or self._refused:
                self.close()
                raise ConnectionError(
                    f"MQTT broker {host}:{port} did not accept the connection"
                    + (f": {self._refused}" if self._refused else "")
                )
            self.client.loop(timeout=0.05)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)

    def _on_publish(self, *_a: Any) -> None:
        self._acked += 1

    @property
    def acked(self) -> int:
        return self._acked

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish with QoS 1, servicing the connection while the window is full."""
        while self._sent - self._acked >= self.window:
            self.client.loop(timeout=0.01)
        self._sent += 1
        self.client.publish(topic, payload, qos=1)

    def publish_many(self, messages: Iterable[tuple[str, bytes]]) -> int:
        n = 0
        for topic, payload in messages:
            self.publish(topic, payload)
            n += 1
        return n

    def service(self) -> None:
        """Read acknowledgements and keep the connection alive (call while idle)."""
        self.client.loop(timeout=0.0)

    def wait_acked(self, count: int | None = None, timeout_s: float = 60.0) -> bool:
        target = self._sent if count is None else count
        deadline = time.monotonic() + timeout_s
        while self._acked < target:
            if time.monotonic() > deadline:
                return False
            self.client.loop(timeout=0.01)
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop(timeout=0.05)

    def __enter__(self) -> BulkPublisher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
