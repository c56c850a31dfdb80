"""The API's own MQTT connection: it publishes workers' reports, and nothing else.

A worker's web app does not speak MQTT; it posts a report to the API, which
publishes it on the signed-in worker's report topic
(``qorgau/v1/{enterprise_id}/app/{worker_id}/report``) as the API's own service
identity, so the report travels the same path as one from a phone (bridge ->
Kafka -> the worker's ``store-reports`` agent).

One long-lived paho client per API process, opened and closed in the app's
lifespan (`api.main`), kept connected by paho's network thread (reconnecting
after 1 s, doubling to 30 s). It speaks MQTT 5 so that a refusal is heard: a
broker that denies a publish (its ACL) says so in the PUBACK's reason code,
where MQTT 3.1.1 acknowledges it as if it were delivered. `ReportPublisher.publish`
returns only once the broker has acknowledged (QoS 1); a refusal, a timeout or
no connection raises `PublishFailed`, and the caller answers 503 so that the
app keeps the report and sends it again (storage keeps each report id once).

Mosquitto binds the client id to the user name (``use_username_as_clientid``):
each API process needs an identity of its own (``qorgau devices add-service NAME
--role api``), or two would take the session from each other. For the same
reason readiness (`api.routes.health`) asks this connection how it is instead
of opening another session as the same user.
"""

from __future__ import annotations

import asyncio
import secrets
import ssl
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.settings import Settings

__all__ = ["MqttState", "PublishFailed", "ReportPublisher"]

log = structlog.get_logger("api.mqtt")

_KEEPALIVE_S = 30
_MAX_INFLIGHT = 100  # concurrent unacknowledged publishes (paho's default: 20)


class PublishFailed(Exception):
    """The broker did not acknowledge a publish; ``reason`` says why, for people."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MqttState:
    """How the connection is: ``connected`` since ``since`` (monotonic s), or the last error."""

    connected: bool
    error: str | None
    since: float | None


class ReportPublisher:
    """Publishes with QoS 1 and waits for the broker's PUBACK (see the module's doc).

    Parameters
    ----------
    settings
        ``mqtt_url`` (with the API's user name and secret) and ``mqtt_ca_file``.
    """

    def __init__(self, settings: Settings) -> None:
        self.host = settings.mqtt_host
        self.port = settings.mqtt_port
        username = settings.mqtt_username
        # The broker replaces it by the user name; without one (a broker with anonymous
        # access, in development) a random id keeps two processes apart.
        client_id = username or f"qorgau-api-{secrets.token_hex(4)}"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            client.username_pw_set(username, settings.mqtt_password)
        if settings.mqtt_tls:
            client.tls_set_context(
                ssl.create_default_context(
                    cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
                )
            )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.max_inflight_messages_set(_MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        # Held while a publish registers its message id, and by the network thread before
        # it looks one up: a PUBACK may arrive before publish() has returned.
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self._connected = False
        self._since: float | None = None
        self._error: str | None = "not connected yet"
        self._started = False

    # --- life ------------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (the API starts even while the broker is away)."""
        self._client.connect_async(self.host, self.port, keepalive=_KEEPALIVE_S, clean_start=True)
        self._client.loop_start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await asyncio.to_thread(self._disconnect)

    def _disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._fail_pending("the API is stopping")

    def state(self) -> MqttState:
        return MqttState(self._connected, None if self._connected else self._error, self._since)

    # --- publishing ------------------------------------------------------------------------
    async def publish(self, topic: str, payload: bytes, *, timeout_s: float) -> None:
        """Publish ``payload`` on ``topic`` with QoS 1; returns once the broker has it.

        Raises `PublishFailed` when there is no connection, the broker refuses it, the
        connection drops before the PUBACK, or no PUBACK comes within ``timeout_s``. The
        message may still reach the broker after a timeout: whoever sends it again must
        be idempotent (reports are, by their id).
        """
        if not self._connected:
            raise PublishFailed(f"no connection to the MQTT broker ({self._error})")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            info = self._client.publish(topic, payload, qos=1)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise PublishFailed(
                    f"the MQTT client could not send it: {mqtt.error_string(info.rc)}"
                )
            self._pending[info.mid] = (loop, future)
        try:
            async with asyncio.timeout(timeout_s):
                await future
        except TimeoutError:
            raise PublishFailed(
                f"the MQTT broker did not acknowledge within {timeout_s:g} s"
            ) from None
        finally:
            with self._lock:
                self._pending.pop(info.mid, None)

    # --- paho's callbacks (its network thread) --------------------------------------------
    def _on_connect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._connected = False
            self._error = f"CONNACK refused the connection: {reason}"
            log.error(
                "mqtt connection refused", broker=f"{self.host}:{self.port}", reason=str(reason)
            )
            return
        self._connected, self._since, self._error = True, time.monotonic(), None
        log.info("mqtt connected", broker=f"{self.host}:{self.port}")

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: object) -> None:
        self._connected = False
        if self._error is None or not self._error.startswith("CONNACK"):
            self._error = f"cannot connect to {self.host}:{self.port}"

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: object,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        was = self._connected
        self._connected, self._since = False, None
        if self._error is None or not self._error.startswith("CONNACK"):
            self._error = f"disconnected: {reason}"
        if was:
            log.warning("mqtt disconnected", broker=f"{self.host}:{self.port}", reason=str(reason))
        # A PUBACK on a connection that is gone will not come: the callers answer 503 now.
        self._fail_pending(f"the connection to the MQTT broker dropped ({reason})")

    def _on_publish(
        self,
        _client: mqtt.Client,
        _userdata: object,
        mid: int,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._lock:
            waiting = self._pending.pop(mid, None)
        if waiting is None:
            return
        loop, future = waiting
        error = (
            PublishFailed(f"the MQTT broker refused it: {reason}") if reason.is_failure else None
        )
        loop.call_soon_threadsafe(_settle, future, error)

    def _fail_pending(self, why: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for loop, future in pending.values():
            if not loop.is_closed():
                loop.call_soon_threadsafe(_settle, future, PublishFailed(why))


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
