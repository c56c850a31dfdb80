"""Liveness and readiness.

``/health`` says the process answers. ``/ready`` says it can do its job: it
asks PostgreSQL for ``SELECT 1``, Kafka for cluster metadata, and whether the
API's own MQTT session (`api.mqtt.ReportPublisher`, which publishes workers'
reports) is connected, each bounded by `CHECK_TIMEOUT_S`, concurrently, and
answers 503 unless all three succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaClient
from fastapi import APIRouter, Request, Response, status

from api.deps import Pool, PoolDep, SettingsDep
from api.mqtt import ReportPublisher
from api.schemas import CheckPublic, HealthPublic, ReadinessPublic
from core.redaction import scrub
from core.settings import Settings

__all__ = ["CHECK_TIMEOUT_S", "lb_router", "router"]

CHECK_TIMEOUT_S = 3.0

router = APIRouter(tags=["health"])
# The same liveness probe at the root, where load balancers look by default.
lb_router = APIRouter(tags=["health"])


class _ProbeFailed(Exception):
    """A dependency answered, but not as a healthy one would."""


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


async def _check_mqtt(publisher: ReportPublisher, settings: Settings) -> None:
    """The API's own MQTT connection (`api.mqtt`) is up. Not a session of its own: the
    broker binds the client id to the user name, so a second session as the API would
    take the first one's place. When it is down, the broker's socket says why if it can
    (refused, unreachable); otherwise the connection's own last error does."""
    state = publisher.state()
    if state.connected:
        return
    tls = (
        ssl.create_default_context(
            cafile=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
        )
        if settings.mqtt_tls
        else None
    )
    _reader, writer = await asyncio.open_connection(settings.mqtt_host, settings.mqtt_port, ssl=tls)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    raise _ProbeFailed(f"the API has no MQTT session: {state.error}")


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
async def ready(
    request: Request, pool: PoolDep, settings: SettingsDep, response: Response
) -> ReadinessPublic:
    """Checks PostgreSQL, Kafka and the API's MQTT connection; 200 if all are up, 503 (same
    body) otherwise."""
    database, kafka, mqtt = await asyncio.gather(
        _timed(lambda: _check_database(pool)),
        _timed(lambda: _check_kafka(settings.kafka_bootstrap)),
        _timed(lambda: _check_mqtt(request.app.state.publisher, settings)),
    )
    checks = {"database": database, "kafka": kafka, "mqtt": mqtt}
    all_ok = all(c.ok for c in checks.values())
    if not all_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return ReadinessPublic(status="ready" if all_ok else "unavailable", checks=checks)
