"""A lean MQTT 3.1.1 QoS 1 publisher for load generation (``qorgau bench``).

paho-mqtt spends about 55-70 µs of CPU per QoS 1 publish here; on a 2-core
machine that shares its cores with the system under test, the load generator
would then measure itself. This publisher does only what a benchmark needs —
CONNECT, PUBLISH QoS 1 with packet ids, counting PUBACKs, a bounded in-flight
window, writes batched into few syscalls — at a few µs per message.
Devices and the simulator use paho (`edge.publisher`); this is not a device.
"""

from __future__ import annotations

import select
import socket
import struct
import time
import uuid
from typing import Any

__all__ = ["GatewayFleet", "LeanPublisher"]

_CONNACK = 0x20
_PUBACK = 0x40


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        if n:
            byte |= 0x80
        out.append(byte)
        if not n:
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class LeanPublisher:
    """Blocking QoS 1 publisher with at most ``window`` unacknowledged messages.

    Messages are buffered and written with ``flush`` (or when the buffer grows
    past ``flush_bytes``); PUBACKs are read whenever the window is full.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        window: int = 256,
        client_id: str | None = None,
        flush_bytes: int = 16384,
        timeout_s: float = 10.0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.window = window
        self.flush_bytes = flush_bytes
        self.sent = 0
        self.acked = 0
        self._next_id = 1
        self._out = bytearray()
        self._in = bytearray()
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        cid = _utf8(client_id or f"qorgau-load-{uuid.uuid4().hex[:8]}")
        flags = 0x02  # clean session
        login = b""
        if credentials is not None:
            flags |= 0xC0  # user name and password follow the client id
            login = _utf8(credentials[0]) + _utf8(credentials[1])
        var = _utf8("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
        body = var + cid + login
        self.sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
        ack = self._recv_exact(4)
        if ack[0] != _CONNACK or ack[3] != 0:
            raise ConnectionError(f"MQTT broker refused the connection (CONNACK {ack!r})")
        self.sock.setblocking(False)

    def _recv_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("MQTT broker closed the connection")
            buf += chunk
        return buf

    def _read_acks(self, wait_s: float) -> None:
        readable, _, _ = select.select([self.sock], [], [], wait_s)
        if not readable:
            return
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        if not data:
            raise ConnectionError("MQTT broker closed the connection")
        self._in += data
        # Every packet the broker sends us here is a 4-byte PUBACK.
        whole = len(self._in) // 4 * 4
        for i in range(0, whole, 4):
            if self._in[i] != _PUBACK:
                raise ConnectionError(f"unexpected MQTT packet type {self._in[i] >> 4}")
        self.acked += whole // 4
        del self._in[:whole]

    def flush(self) -> None:
        data, self._out = bytes(self._out), bytearray()
        pos = 0
        while pos < len(data):
            try:
                pos += self.sock.send(data[pos:])
            except BlockingIOError:
                select.select([self.sock], [self.sock], [], 0.05)
                self._read_acks(0)

    def publish(self, topic: str, payload: bytes) -> None:
        while self.sent - self.acked >= self.window:
            self.flush()
            self._read_acks(0.05)
        pid = self._next_id
        self._next_id = pid % 65535 + 1
        body = _utf8(topic) + struct.pack("!H", pid) + payload
        self._out += bytes([0x32]) + _remaining_length(len(body)) + body
        self.sent += 1
        if len(self._out) >= self.flush_bytes:
            self.flush()

    def service(self) -> None:
        self.flush()
        self._read_acks(0)

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        self.flush()
        deadline = time.monotonic() + timeout_s
        while self.acked < self.sent:
            if time.monotonic() > deadline:
                return False
            self._read_acks(0.05)
        return True

    def close(self) -> None:
        try:
            self.flush()
            self.sock.setblocking(True)
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self.sock.close()


class GatewayFleet:
    """One `LeanPublisher` per enterprise, each connected as that enterprise's gateway (the
    broker lets a device publish only for its own enterprise)."""

    def __init__(
        self, host: str, port: int, credentials: dict[str, tuple[str, str]], **kwargs: Any
    ) -> None:
        self.pubs = {
            eid: LeanPublisher(host, port, credentials=creds, **kwargs)
            for eid, creds in credentials.items()
        }

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.pubs.values())

    @property
    def acked(self) -> int:
        return sum(p.acked for p in self.pubs.values())

    def publish(self, enterprise_id: str, topic: str, payload: bytes) -> None:
        self.pubs[enterprise_id].publish(topic, payload)

    def flush(self, enterprise_id: str) -> None:
        self.pubs[enterprise_id].flush()

    def service(self) -> None:
        for p in self.pubs.values():
            p.service()

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(p.wait_acked(max(0.0, deadline - time.monotonic())) for p in self.pubs.values())

    def close(self) -> None:
        for p in self.pubs.values():
            p.close()
