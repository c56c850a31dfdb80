"""Publishing readings over MQTT with QoS 1, never losing one on a broker outage.

paho keeps every unacknowledged QoS 1 message and re-sends it after it
reconnects; the queue is unbounded so nothing is dropped while disconnected.
What the broker *acknowledged* in its last instants is another matter: Mosquitto
acknowledges a message before it is on disk (it writes its store every
``autosave_interval``) and, while the bridge is away, before anyone else holds
it, so a broker killed then forgets it. :class:`ReplayWindow` keeps what the
broker acknowledged in the last seconds and publishes it again after a
reconnect; storage takes each reading once, so the copies cost only bandwidth.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = [
    "REPLAY_S",
    "BulkPublisher",
    "ReplayWindow",
    "make_client",
    "reading_topic",
    "status_topic",
]

# Mosquitto saves its store when more than ``autosave_interval`` (1 s) whole seconds
# have passed, i.e. up to 2 s apart, plus the time a save takes; 5 s covers that
# with room to spare.
REPLAY_S = 5.0


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


class ReplayWindow:
    """What the broker acknowledged in the last ``seconds`` before a connection
    dropped, published again after the reconnect.

    :meth:`attach` it to one paho client (after setting the client's own
    ``on_connect``, which it keeps calling) and publish through :meth:`publish`:
    every publish on that client must go through it, or its acknowledgement is
    taken for another's. A ``tag`` travels with a first publish and is handed to
    ``on_acknowledged`` once, when the broker acknowledges it (re-sends carry
    none): a caller counting its deliveries uses it. Thread-safe; never calls
    paho while holding its own lock.
    """

    def __init__(
        self,
        seconds: float = REPLAY_S,
        on_acknowledged: Callable[[Hashable], None] | None = None,
    ) -> None:
        self.seconds = seconds
        self.resent = 0
        self._on_acknowledged = on_acknowledged
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[str, bytes, Hashable]] = {}
        self._early: set[int] = set()  # acknowledged before publish() saw the id
        self._acked: deque[tuple[float, str, bytes]] = deque()
        self._down_at: float | None = None

    def attach(self, client: mqtt.Client) -> None:
        own_on_connect: Any = client.on_connect  # a VERSION2 callback

        def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if not reason.is_failure:
                for topic, payload in self._reconnected():
                    self.publish(c, topic, payload)
            if own_on_connect is not None:
                own_on_connect(c, u, flags, reason, props)

        def on_publish(_c: mqtt.Client, _u: Any, mid: int, *_a: Any) -> None:
            self._tagged(self._acknowledged(mid))

        client.on_connect = on_connect
        client.on_publish = on_publish
        client.on_disconnect = lambda *_a: self._disconnected()

    def publish(
        self,
        client: mqtt.Client,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        tag: Hashable = None,
    ) -> None:
        """Publish with QoS 1 and remember it until the window has passed."""
        info = client.publish(topic, payload, qos=1, retain=retain)
        self._tagged(self._published(info.mid, topic, payload, tag))

    def _tagged(self, tag: Hashable) -> None:
        if tag is not None and self._on_acknowledged is not None:
            self._on_acknowledged(tag)

    def _keep(self, topic: str, payload: bytes) -> None:
        now = time.monotonic()
        self._acked.append((now, topic, payload))
        cutoff = now - self.seconds
        while self._acked and self._acked[0][0] < cutoff:
            self._acked.popleft()

    def _published(self, mid: int, topic: str, payload: bytes, tag: Hashable) -> Hashable:
        with self._lock:
            if mid in self._early:  # paho's thread read the acknowledgement first
                self._early.discard(mid)
                self._keep(topic, payload)
                return tag
            self._pending[mid] = (topic, payload, tag)
            return None

    def _acknowledged(self, mid: int) -> Hashable:
        with self._lock:
            item = self._pending.pop(mid, None)
            if item is None:
                self._early.add(mid)
                return None
            topic, payload, tag = item
            self._keep(topic, payload)
            return tag

    def _disconnected(self) -> None:
        with self._lock:
            if self._down_at is None:
                self._down_at = time.monotonic()

    def _reconnected(self) -> list[tuple[str, bytes]]:
        with self._lock:
            if self._down_at is None:
                return []
            cutoff = self._down_at - self.seconds
            again = [(t, p) for at, t, p in self._acked if at >= cutoff]
            self._acked.clear()
            self._down_at = None
            self.resent += len(again)
            return again


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
