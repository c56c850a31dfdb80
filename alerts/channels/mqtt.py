"""MQTT: the notification as JSON on a topic, e.g. a worker's app at
``qorgau/v1/{enterprise_id}/app/{worker_id}/notify``, at QoS 1.

paho-mqtt's network loop runs in its own thread (``loop_start``), which also
reconnects after a drop. A send publishes from the event loop and waits for
the broker's PUBACK without blocking it: paho's ``on_publish`` (in its thread)
hands the message id to the event loop with ``call_soon_threadsafe``. Because
that callback can only run once the sending coroutine yields, the future for
the message id is always registered before its PUBACK is handled — no lock
shared with paho's thread, which holds its own lock while calling back.

A PUBACK that does not come within ``timeout`` is a `SendStatus.RETRY`; paho
may still deliver the first copy after reconnecting, so the app must treat a
repeated ``change_id`` as the same message (at least once, like the rest of
the pipeline).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from alerts.channels.base import SendResult, SendStatus, app_payload
from alerts.notification import Notification, Recipient, Target

__all__ = ["MqttChannel", "app_notify_topic"]


def app_notify_topic(enterprise_id: str, worker_id: str) -> str:
    """The topic a worker's app listens on.

    >>> app_notify_topic("E001", "W17")
    'qorgau/v1/E001/app/W17/notify'
    """
    return f"qorgau/v1/{enterprise_id}/app/{worker_id}/notify"


def _valid_topic(topic: str) -> bool:
    return bool(topic) and not any(c in topic for c in "+#\x00") and len(topic.encode()) < 65536


class MqttChannel:
    """Publish at QoS 1 through one lazily connected paho client.

    Parameters
    ----------
    host, port
        The broker.
    username, password
        Credentials, when the broker wants them.
    tls
        Connect with TLS.
    ca_file
        The CA certificate the broker's is signed by (default: the system's CAs).
    client_id
        MQTT client id; a unique one by default (two clients sharing an id
        would keep disconnecting each other).
    timeout
        Seconds to wait for the connection and for each PUBACK.
    """

    name = "mqtt"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | None = None,
        client_id: str | None = None,
        timeout: float = 10.0,
        keepalive: int = 30,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._tls = tls
        self._ca_file = ca_file
        self._client_id = client_id or f"qorgau-alerts-{uuid.uuid4().hex[:12]}"
        self._timeout = timeout
        self._keepalive = keepalive
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = asyncio.Event()
        self._last_error = ""
        self._pending: dict[int, asyncio.Future[Any]] = {}

    # --- paho's thread ---------------------------------------------------------
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        if reason.is_failure:
            self._last_error = f"connection refused: {reason}"
            return
        self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._last_error = f"disconnected: {reason}"
        self._loop.call_soon_threadsafe(self._connected.clear)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._acknowledged, mid, reason)

    # --- the event loop --------------------------------------------------------
    def _acknowledged(self, mid: int, reason: Any) -> None:
        future = self._pending.get(mid)
        if future is not None and not future.done():
            future.set_result(reason)

    def _start(self) -> mqtt.Client:
        self._loop = asyncio.get_running_loop()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,  # we only publish; our own retries live in the delivery log
            protocol=mqtt.MQTTv311,
        )
        if self._username:
            client.username_pw_set(self._username, self._password)
        if self._tls:
            client.tls_set(ca_certs=self._ca_file)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.connect_async(self._host, self._port, keepalive=self._keepalive)
        client.loop_start()  # its thread connects, and reconnects after a drop
        return client

    async def _connected_client(self) -> mqtt.Client | None:
        if self._client is None:
            self._client = self._start()  # no await before this: one client per channel
        if not self._connected.is_set():
            try:
                await asyncio.wait_for(self._connected.wait(), self._timeout)
            except TimeoutError:
                return None
        return self._client

    async def send(
        self, notification: Notification, recipient: Recipient, target: Target
    ) -> SendResult:
        topic = target.address
        if not _valid_topic(topic):
            return SendResult(SendStatus.REJECTED, f"not a topic to publish on: {topic!r}")
        client = await self._connected_client()
        if client is None:
            detail = self._last_error or "no answer"
            return SendResult(
                SendStatus.RETRY, f"broker {self._host}:{self._port} not connected ({detail})"
            )
        payload = orjson.dumps(app_payload(notification, recipient))
        info = client.publish(topic, payload, qos=1)
        # NO_CONN: the link dropped just now; paho keeps the message and sends it on reconnect.
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            return SendResult(SendStatus.RETRY, f"publish failed: {mqtt.error_string(info.rc)}")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[info.mid] = future
        try:
            reason = await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            return SendResult(SendStatus.RETRY, f"no PUBACK within {self._timeout:g} s")
        finally:
            self._pending.pop(info.mid, None)
        if getattr(reason, "is_failure", False):  # MQTT 5 brokers may refuse, e.g. not authorised
            return SendResult(SendStatus.REJECTED, f"broker refused: {reason}")
        return SendResult(SendStatus.SENT)

    async def close(self) -> None:
        client, self._client = self._client, None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)  # joins paho's thread
        self._connected.clear()
