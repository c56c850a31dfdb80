"""The MQTT -> Kafka bridge.

Subscribes to readings, statuses and app reports (QoS 1, persistent session,
manual acknowledgement), checks each topic and payload, packs one enterprise's
readings that arrive within ``bridge_linger_ms`` into one Kafka message keyed by
the enterprise id, and acknowledges the MQTT messages only after Kafka has
acknowledged the write. A message that fails the checks goes to the dead-letter
topic with its reason (and is then acknowledged: it is kept there, not lost).

paho's network loop runs in its own thread and only appends to an inbox; all
the work and every acknowledgement happen on the asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import psycopg
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from paho.mqtt.enums import CallbackAPIVersion

from core.backoff import STREAM_BACKOFF, retry_transient
from core.errors import InvalidReading
from core.settings import Settings
from storage.devices import Registry, load_registry
from stream.codec import (
    MAX_REPORT,
    Topic,
    dead_letter,
    encode_envelope,
    parse_reading_payload,
    parse_topic,
)
from stream.kafka import ensure_topics, wait_for_kafka
from stream.readiness import clear_ready, kafka_lost, mark_ready, write_stats

__all__ = ["Bridge", "BridgeStats", "run_bridge"]

log = structlog.get_logger(__name__)

_PUBACK = struct.Struct("!BBH")  # MQTT 3.1.1 PUBACK: type, remaining length 2, packet id

SUBSCRIPTIONS = (
    "qorgau/v1/+/sensors/+/reading",
    "qorgau/v1/+/sensors/+/status",
    "qorgau/v1/+/app/+/report",
)

# (topic, payload, mid, qos, received_at, connection): the connection it came on
_Inbound = tuple[str, bytes, int, int, float, int]
# (Kafka topic, key, value, partition)
_Send = tuple[str, bytes | None, bytes, int | None]
# How long the stack may take to bring a dead broker back (its restart backoff).
_REPLAY_GRACE_S = 60.0


@dataclass(slots=True)
class BridgeStats:
    messages: int = 0
    readings: int = 0
    kafka_messages: int = 0
    kafka_replayed: int = 0  # sent again after the embedded broker restarted empty
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Bridge:
    """One bridge process. ``await bridge.run(stop)`` until ``stop`` is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.stats = BridgeStats()
        # paho's thread appends, the asyncio loop pops: deque operations are atomic.
        # (Swapping a list out from under the other thread loses the odd message.)
        self._inbox: deque[_Inbound] = deque()
        self._connected = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._producer: AIOKafkaProducer | None = None
        self._partitions: list[int] = [0]  # of the readings topic, read when Kafka is up
        self._send_order = asyncio.Lock()
        self._connection = 0  # counts MQTT connections (paho's thread writes it)
        self._client = self._make_client()
        self._registry = Registry({}, {})
        self._registry_at = 0.0
        self._registry_wall = 0.0  # wall clock when the registry in use was read
        self._known_topics: set[str] = set()  # topics the registry in use has accepted
        # What Kafka acknowledged lately, for a memory-only broker that restarts empty:
        # (wall clock, messages), kept bridge_kafka_replay_s + _REPLAY_GRACE_S.
        self._sent: deque[tuple[float, list[_Send]]] = deque()
        self._kafka_lost_seen = kafka_lost(settings.state_dir)

    # --- MQTT side (paho thread) -------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.bridge_client_id,
            clean_session=False,  # the broker keeps our QoS 1 messages while we are away
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, s.mqtt_password)
        if s.mqtt_tls:
            client.tls_set(ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        client.max_inflight_messages_set(s.bridge_max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        if any(r.is_failure for r in reasons):
            log.error("mqtt subscription refused", reasons=[str(r) for r in reasons])
            return
        mark_ready(self.settings.state_dir, "bridge")

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        # Packet ids start again on a new connection: a message received on an earlier one
        # must never be acknowledged on this one (it would acknowledge another message).
        # The broker sends it again instead, and storage takes it once.
        self._connection += 1
        if reason.is_failure:
            log.error("mqtt connect refused", reason=str(reason))
            return
        prefix = (
            f"$share/{self.settings.bridge_shared_group}/"
            if self.settings.bridge_shared_group
            else ""
        )
        client.subscribe([(prefix + t, 1) for t in SUBSCRIPTIONS])
        log.info("mqtt connected", broker=self.settings.mqtt_url)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.set)

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        log.warning("mqtt disconnected; reconnecting", reason=str(reason))
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._connected.clear)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append(
            (msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time(), self._connection)
        )

    # --- asyncio side ------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        await wait_for_kafka(s.kafka_bootstrap)
        await ensure_topics(
            s.kafka_bootstrap,
            [s.readings_topic, s.status_topic, s.reports_topic, s.deadletter_topic, s.alerts_topic],
            partitions=s.kafka_partitions,
        )
        self._producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap,
            acks="all",
            linger_ms=2,
            max_batch_size=1 << 20,
            max_request_size=8 << 20,
            request_timeout_ms=15000,
        )
        await self._producer.start()
        self._partitions = sorted(await self._producer.partitions_for(s.readings_topic))
        await self._refresh_registry()
        listener = asyncio.create_task(self._follow_registry(stop))
        self._client.connect_async(s.mqtt_host, s.mqtt_port, keepalive=30)
        self._client.loop_start()
        log.info("bridge started", mqtt=s.mqtt_url, kafka=s.kafka_bootstrap)
        linger = s.bridge_linger_ms / 1000.0
        last_stats = last_log = last_lost_check = time.monotonic()
        try:
            while not stop.is_set():
                await asyncio.sleep(linger if not self._inbox else 0)
                if self._inbox:
                    inbox = self._inbox
                    batch = [inbox.popleft() for _ in range(len(inbox))]
                    # A device provisioned a moment ago may beat the registry's change
                    # notice: read it again before refusing (at most every 2 s).
                    if time.monotonic() - self._registry_at > 2.0 and self._has_unknown_ids(batch):
                        await self._refresh_registry()
                    task = asyncio.create_task(self._forward(batch))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
                if s.bridge_kafka_replay_s and time.monotonic() - last_lost_check > 0.5:
                    last_lost_check = time.monotonic()
                    await self._replay_if_kafka_lost()
                if time.monotonic() - last_stats > 2:
                    last_stats = time.monotonic()
                    self._write_stats()
                if time.monotonic() - last_log > 10:
                    last_log = time.monotonic()
                    log.info(
                        "bridge stats",
                        messages=self.stats.messages,
                        readings=self.stats.readings,
                        dead_letters=self.stats.dead_letters,
                    )
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            # Finish what is in flight (acks included), then leave the broker cleanly:
            # anything not acknowledged stays with the broker for the next run.
            if self._pending:
                await asyncio.wait(self._pending, timeout=10)
            clear_ready(s.state_dir, "bridge")
            self._client.disconnect()
            self._client.loop_stop()
            await self._producer.stop()
            log.info("bridge stopped", messages=self.stats.messages, readings=self.stats.readings)

    async def _forward(self, batch: list[_Inbound]) -> None:
        s = self.settings
        assert self._producer is not None
        packs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        others: list[tuple[str, bytes, bytes]] = []  # (kafka topic, key, value)
        for topic, payload, _mid, _qos, received, _conn in batch:
            try:
                t = parse_topic(topic)
                if t.kind != "reading" and len(payload) > MAX_REPORT:
                    raise InvalidReading("too_large", f"{len(payload):,} bytes > {MAX_REPORT:,}")
                if topic not in self._known_topics:
                    self._check_registered(t)
                    self._known_topics.add(topic)
                if t.kind == "reading":
                    items = parse_reading_payload(payload, t.subject_id)
                    hazard = self._registry.sensors[t.subject_id][1]
                    for item in items:
                        if item["hazard"] != hazard:
                            raise InvalidReading(
                                "hazard_mismatch",
                                f"sensor {t.subject_id} measures {hazard}, not {item['hazard']}",
                            )
                    packs[t.enterprise_id].extend(items)
                elif t.kind == "status":
                    others.append(
                        (
                            s.status_topic,
                            t.enterprise_id.encode(),
                            orjson.dumps(
                                {
                                    "enterprise_id": t.enterprise_id,
                                    "sensor_id": t.subject_id,
                                    "status": payload.decode("utf-8", "replace")[:1000],
                                    "received_at": received,
                                }
                            ),
                        )
                    )
                else:
                    others.append(
                        (
                            s.reports_topic,
                            t.enterprise_id.encode(),
                            orjson.dumps(
                                {
                                    "enterprise_id": t.enterprise_id,
                                    "worker_id": t.subject_id,
                                    "payload": payload.decode("utf-8", "replace"),
                                    "received_at": received,
                                }
                            ),
                        )
                    )
            except Exception as exc:  # every refusal, expected or not, is a dead letter
                if not isinstance(exc, InvalidReading):
                    log.exception("unexpected refusal", topic=topic[:200])
                    exc = InvalidReading("unreadable", f"{type(exc).__name__}: {exc}")
                self.stats.dead_letters += 1
                self.stats.dead_letter_reasons[exc.reason] += 1
                key = topic.split("/")[2][:64].encode() if topic.count("/") >= 2 else b""
                others.append(
                    (
                        s.deadletter_topic,
                        key,
                        dead_letter(
                            stage="bridge",
                            reason=exc.reason,
                            detail=exc.detail,
                            source=f"mqtt:{topic}",
                            payload=payload,
                        ),
                    )
                )
                log.warning(
                    "dead letter",
                    stage="bridge",
                    topic=topic[:200],
                    reason=exc.reason,
                    detail=exc.detail[:300],
                )
        now = time.time()
        sends: list[tuple[str, bytes | None, bytes, int | None]] = []
        # One Kafka message per partition, packing every enterprise of it that has
        # readings (a fleet of thousands of enterprises would otherwise make one tiny
        # message per reading), at most bridge_max_pack readings per message.
        by_partition: dict[int, list[tuple[str, list[dict[str, Any]]]]] = defaultdict(list)
        for eid, readings in packs.items():
            by_partition[self._partition_of(eid)].append((eid, readings))
            self.stats.readings += len(readings)
        for partition, group in sorted(by_partition.items()):
            chunk: dict[str, list[dict[str, Any]]] = {}
            size = 0
            for eid, readings in group:
                for i in range(0, len(readings), s.bridge_max_pack):
                    part = readings[i : i + s.bridge_max_pack]
                    if size + len(part) > s.bridge_max_pack and chunk:
                        sends.append(
                            (s.readings_topic, None, encode_envelope(chunk, now), partition)
                        )
                        chunk, size = {}, 0
                    chunk.setdefault(eid, []).extend(part)
                    size += len(part)
            if chunk:
                sends.append((s.readings_topic, None, encode_envelope(chunk, now), partition))
        sends.extend((topic, key, value, None) for topic, key, value in others)
        await self._send_all(sends)
        if s.bridge_kafka_replay_s:
            self._remember(sends)
        current = self._connection
        self._ack([(mid, qos) for *_, mid, qos, _t, conn in batch if conn == current])
        self.stats.messages += len(batch)
        self.stats.kafka_messages += len(sends)

    def _check_registered(self, t: Topic) -> None:
        """The topic's enterprise and device belong together in the registry, or the
        message is refused: a device's ACL may let it publish, but only the registry
        says which enterprise a sensor (or a worker's app) is part of."""
        reg = self._registry
        if t.kind == "report":
            owner = reg.workers.get(t.subject_id)
            if owner is None:
                raise InvalidReading("unknown_worker", f"worker {t.subject_id} is not registered")
        else:
            registered = reg.sensors.get(t.subject_id)
            if registered is None:
                raise InvalidReading("unknown_sensor", f"sensor {t.subject_id} is not registered")
            owner = registered[0]
        if owner != t.enterprise_id:
            raise InvalidReading(
                "enterprise_mismatch",
                f"{t.subject_id} belongs to {owner}, not to {t.enterprise_id}",
            )

    def _has_unknown_ids(self, batch: list[_Inbound]) -> bool:
        reg, known = self._registry, self._known_topics
        for topic, *_rest in batch:
            if topic in known:
                continue
            parts = topic.split("/")
            if len(parts) == 6 and parts[4] not in (
                reg.sensors if parts[3] == "sensors" else reg.workers
            ):
                return True
        return False

    async def _refresh_registry(self) -> None:
        """Read the registry again (a device provisioned a moment ago is known at once)."""
        dsn = self.settings.database_url
        assert dsn is not None

        async def load() -> Registry:
            async with await psycopg.AsyncConnection.connect(dsn, connect_timeout=10) as conn:
                return await load_registry(conn)

        loaded_wall = time.time()
        self._registry = await retry_transient(
            "loading the device registry", load, transient=(psycopg.OperationalError,)
        )
        self._registry_at, self._registry_wall = time.monotonic(), loaded_wall
        self._known_topics = set()  # checked again against the registry as it is now
        self._write_stats()

    async def _follow_registry(self, stop: asyncio.Event) -> None:
        """Read the registry again whenever it changes (LISTEN), and every
        ``bridge_registry_refresh_s`` in any case."""
        dsn = self.settings.database_url
        assert dsn is not None
        attempt = 0
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute("LISTEN qorgau_registry")
                    attempt = 0
                    while not stop.is_set():
                        woke = False
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(self.settings.bridge_registry_refresh_s):
                                async for _ in conn.notifies():
                                    woke = True
                                    break
                        if woke:
                            await asyncio.sleep(0.05)  # one reload for a burst of changes
                        await self._refresh_registry()
            except psycopg.OperationalError as exc:
                attempt += 1
                delay = STREAM_BACKOFF(attempt)
                log.error("registry notices lost; reconnecting", error=str(exc), retry_in_s=delay)
                await asyncio.sleep(delay)

    def _remember(self, sends: list[_Send]) -> None:
        now = time.time()
        self._sent.append((now, sends))
        cutoff = now - self.settings.bridge_kafka_replay_s - _REPLAY_GRACE_S
        while self._sent and self._sent[0][0] < cutoff:
            self._sent.popleft()

    async def _replay_if_kafka_lost(self) -> None:
        """The stack's memory-only Kafka-protocol broker restarted empty: send again what
        it acknowledged from ``bridge_kafka_replay_s`` before it died until its topics
        were declared again (readings no worker had stored were only there, and it
        acknowledges writes to topics it does not have yet, then forgets them when
        they are declared). Storage takes each reading once."""
        lost = kafka_lost(self.settings.state_dir)
        if lost is None or lost == self._kafka_lost_seen:
            return
        self._kafka_lost_seen = lost
        died_at, back_at = lost
        since = died_at - self.settings.bridge_kafka_replay_s
        again = [
            m
            for at, sends in self._sent
            if since <= at <= back_at + 1.0  # the clock of the stack's check, give or take
            for m in sends
            if m[0] != self.settings.deadletter_topic  # a refusal is kept once
        ]
        log.warning(
            "kafka-protocol broker restarted empty; sending again what it had",
            messages=len(again),
        )
        if again:  # beside the live traffic, not in its way
            task = asyncio.create_task(self._send_all(again))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        self.stats.kafka_replayed += len(again)

    def _write_stats(self) -> None:
        write_stats(
            self.settings.state_dir,
            self.settings.instance or "bridge",
            {
                "messages": self.stats.messages,
                "readings": self.stats.readings,
                "dead_letters": self.stats.dead_letters,
                "kafka_replayed": self.stats.kafka_replayed,
                "registry_sensors": len(self._registry.sensors),
                "registry_loaded_at": self._registry_wall,
            },
        )

    def _ack(self, messages: list[tuple[int, int]]) -> None:
        """Acknowledge delivered messages to the broker, now that Kafka holds them.

        paho's ``ack`` sends one PUBACK per call, each waking its network thread;
        at thousands of messages a second that alone capped the bridge. The
        PUBACKs of a batch are queued instead as one write (4 bytes each, back to
        back: the broker reads them as separate packets).
        """
        pubacks = [mid for mid, qos in messages if qos == 1]
        for mid, qos in messages:
            if qos == 2:
                self._client.ack(mid, qos)
        if not pubacks:
            return
        packet = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in pubacks)
        queue = getattr(self._client, "_packet_queue", None)
        if queue is None:  # a paho without it: one call per message, as documented
            for mid in pubacks:
                self._client.ack(mid, 1)
            return
        queue(0x40, packet, pubacks[-1], 1)

    def _partition_of(self, enterprise_id: str) -> int:
        """The readings partition of an enterprise: Kafka's default partitioner on its id,
        so it is the partition its key would choose (and always the same)."""
        parts = self._partitions
        index = int(murmur2(enterprise_id.encode())) & 0x7FFFFFFF
        return parts[index % len(parts)]

    async def _send_all(self, sends: list[_Send]) -> None:
        """Send until Kafka acknowledges every message; never give up on a reading.

        Messages are handed to the producer under a lock, so that a batch drained
        later can never overtake an earlier one while the producer's buffer is full
        (a sensor's readings stay in order); acknowledgements are awaited outside it.
        """
        producer = self._producer
        assert producer is not None

        async def send() -> None:
            async with self._send_order:
                futures = [
                    await producer.send(topic, value=value, key=key, partition=part)
                    for topic, key, value, part in sends
                ]
            await asyncio.gather(*futures)

        # Duplicates from a partial retry are harmless: storage is idempotent.
        await retry_transient("kafka send", send, transient=(KafkaError,), messages=len(sends))


async def run_bridge(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    bridge = Bridge(settings)
    with contextlib.suppress(asyncio.CancelledError):
        await bridge.run(stop)
