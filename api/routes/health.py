"""Liveness and readiness.

``/health`` says the process answers. ``/ready`` says it can do its job: it
asks PostgreSQL for ``SELECT 1``, Kafka for cluster metadata, and the MQTT
broker for a session (CONNECT, expect CONNACK 0, DISCONNECT), each bounded by
`CHECK_TIMEOUT_S`, concurrently, and answers 503 unless all three succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaClient
from fastapi import APIRouter, Response, status

from api.deps import Pool, PoolDep, SettingsDep
from api.schemas import CheckPublic, HealthPublic, ReadinessPublic
from core.redaction import scrub
from core.settings import Settings

__all__ = ["CHECK_TIMEOUT_S", "lb_router", "router"]

CHECK_TIMEOUT_S = 3.0

router = APIRouter(tags=["health"])
# The same liveness probe at the root, where load balancers look by default.
lb_router = APIRouter(tags=["health"])

# MQTT 3.1.1 (OASIS standard, section 3): fixed-header types and CONNACK codes.
_CONNECT, _CONNACK, _DISCONNECT = 0x10, 0x20, 0xE0
_CLEAN_SESSION, _PASSWORD_FLAG, _USERNAME_FLAG = 0x02, 0x40, 0x80
_KEEP_ALIVE_S = 10
_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


class _ProbeFailed(Exception):
    """A dependency answered, but not as a healthy one would."""


def _mqtt_string(s: str) -> bytes:
    data = s.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session.

    >>> mqtt_connect_packet("q", None, None).hex(" ")
    '10 0d 00 04 4d 51 54 54 04 02 00 0a 00 01 71'
    """
    flags = _CLEAN_SESSION
    payload = _mqtt_string(client_id)
    if username is not None:
        flags |= _USERNAME_FLAG
        payload += _mqtt_string(username)
        if password is not None:
            flags |= _PASSWORD_FLAG
            payload += _mqtt_string(password)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + _KEEP_ALIVE_S.to_bytes(2, "big") + payload
    return bytes([_CONNECT]) + _remaining_length(len(body)) + body


async def _check_database(pool: Pool) -> None:
    async with pool.connection(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.execute("SELECT 1")


async def _check_kafka(bootstrap: str) -> None:
    # bootstrap() sends a real MetadataRequest and raises unless a broker answers it.
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap,
        client_id="qorgau-ready",
        request_timeout_ms=int(CHECK_TIMEOUT_S * 1000),
    )
    try:
        await client.bootstrap()
    finally:
        await client.close()


async def _check_mqtt(settings: Settings) -> None:
    tls = (
        ssl.create_default_context(
            cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        )
        if settings.mqtt_tls
        else None
    )
    reader, writer = await asyncio.open_connection(settings.mqtt_host, settings.mqtt_port, ssl=tls)
    try:
        client_id = f"qorgau-ready-{secrets.token_hex(4)}"
        writer.write(mqtt_connect_packet(client_id, settings.mqtt_username, settings.mqtt_password))
        await writer.drain()
        connack = await reader.readexactly(4)
        if connack[0] != _CONNACK or connack[1] != 2:
            raise _ProbeFailed(f"expected CONNACK, got {connack.hex(' ')}")
        code = connack[3]
        if code != 0:
            reason = _CONNACK_CODES.get(code, "unknown reason")
            raise _ProbeFailed(f"CONNACK refused the connection: code {code} ({reason})")
        writer.write(bytes([_DISCONNECT, 0]))
        await writer.drain()
    finally:
        writer.close()
        # The broker may drop the socket first after DISCONNECT; that is fine.
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _timed(probe: Callable[[], Awaitable[None]]) -> CheckPublic:
    t0 = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except TimeoutError:
        error = f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # any failure means "not ready"; report it, never raise
        # Anyone may ask /ready: a URL in the error keeps only its scheme and host.
        error = scrub(f"{type(exc).__name__}: {exc}")
    latency_ms = round((time.perf_counter() - t0) * 1000, 3)
    return CheckPublic(ok=error is None, latency_ms=latency_ms, error=error)


@router.get("/health", summary="Liveness")
@lb_router.get("/health", summary="Liveness (for load balancers)")
async def health() -> HealthPublic:
    """Answers as long as the process serves requests; checks no dependency."""
    return HealthPublic(status="ok")


@router.get(
    "/ready",
    summary="Readiness",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": ReadinessPublic}},
)
async def ready(pool: PoolDep, settings: SettingsDep, response: Response) -> ReadinessPublic:
    """Checks PostgreSQL, Kafka and MQTT; 200 if all answer, 503 (same body) otherwise."""
    database, kafka, mqtt = await asyncio.gather(
        _timed(lambda: _check_database(pool)),
        _timed(lambda: _check_kafka(settings.kafka_bootstrap)),
        _timed(lambda: _check_mqtt(settings)),
    )
    checks = {"database": database, "kafka": kafka, "mqtt": mqtt}
    all_ok = all(c.ok for c in checks.values())
    if not all_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessPublic(status="ready" if all_ok else "unavailable", checks=checks)
