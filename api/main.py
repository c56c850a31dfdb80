"""Assembles the API: settings, hazard catalogue and connection pool on ``app.state``, routers.

Everything is served under ``/api/v1``; ``/health`` is also at the root for
load balancers. The pool is the only connection to PostgreSQL: opened (and
waited for, so a wrong DSN fails the start, not the first request) in the
lifespan, closed at shutdown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from psycopg_pool import AsyncConnectionPool

from alerts.channels.webpush import public_key_b64url, resolve_vapid_key
from alerts.lifecycle import LifecycleError
from api.deps import refuse_unstorable_text
from api.feed import AlertFeed
from api.mqtt import ReportPublisher
from api.pages import mount_pages
from api.routes import (
    alerts,
    deliveries,
    enterprises,
    health,
    login,
    me,
    push,
    regions,
    reports,
    sensors,
    users,
    workers,
)
from api.routes import (
    status as status_route,
)
from api.schemas import AlertPublic, json_safe
from api.security import TokenSigner
from core.catalogue import Catalogue, load_catalogue
from core.errors import ConfigError
from core.limits import Limits, load_limits
from core.settings import Settings

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
Qorgau's occupational-safety monitoring data: regions, enterprises, their sensors
and the sensors' readings.

Sign in at `/api/v1/login/access-token` (OAuth2 password flow) and send the access
token as `Authorization: Bearer ...`. Everyone sees only their own scope: an
inspector their regions, a safety officer their enterprise; anything outside it
answers 404, as if it did not exist.

Readings are stored and served in the canonical unit of their hazard (for example
mg/m3 for carbon monoxide, dBA for noise); each series names its unit. Long ranges
are downsampled into time buckets with average, minimum, maximum and count.
"""


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422, but always encodable: a JSON body may carry NaN, Infinity (Python's
    parser takes them) or a lone surrogate, and echoing one back would fail, a 500."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(
        {"detail": json_safe(jsonable_encoder(errors))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def create_app(
    settings: Settings, catalogue: Catalogue | None = None, limits: Limits | None = None
) -> FastAPI:
    """The API application for ``settings``; PostgreSQL is required.

    Raises `ConfigError` if ``settings.database_url`` is unset or there is no usable
    VAPID key (see `alerts.channels.webpush.resolve_vapid_key`).
    """
    dsn = settings.database_url
    if dsn is None:
        raise ConfigError("the API needs a database: set QORGAU_DATABASE_URL")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = AsyncConnectionPool(
            dsn,
            open=False,
            min_size=2,
            max_size=settings.api_pool_size,
            check=AsyncConnectionPool.check_connection,
            name="qorgau-api",
        )
        await pool.open()
        feed = AlertFeed(dsn, pool, AlertPublic.from_row, app.state.catalogue)
        # Workers' reports leave through the API's own MQTT identity; connecting in the
        # background, so the API serves everything else while the broker is away.
        publisher = ReportPublisher(settings)
        try:
            await pool.wait()
            app.state.pool = pool
            app.state.feed = feed
            app.state.publisher = publisher
            publisher.start()
            await feed.start()
            yield
        finally:
            await feed.stop()
            await publisher.stop()
            await pool.close()

    # FastAPIOffline: /docs and /redoc with their scripts served from here, not a CDN (a
    # ministry data centre or a plant's control room has no internet).
    app = FastAPIOffline(
        title="Qorgau API",
        description=_DESCRIPTION,
        lifespan=lifespan,
        # Before any route reads the database: text PostgreSQL cannot hold is a 422.
        dependencies=[Depends(refuse_unstorable_text)],
    )
    app.state.settings = settings
    # The composition root loads the catalogue once and passes it; tests may let it be read
    # here, from the same setting.
    app.state.catalogue = catalogue or load_catalogue(settings.catalogue_path)
    app.state.limits = limits or load_limits(settings.limits_path, app.state.catalogue)
    app.state.signer = TokenSigner(
        settings.jwt_secret.get_secret_value(),
        access_minutes=settings.access_token_minutes,
        refresh_hours=settings.refresh_token_hours,
    )
    vapid = settings.vapid_private_key
    app.state.vapid_private_key = resolve_vapid_key(
        vapid.get_secret_value() if vapid is not None else None,
        settings.state_dir,
        environment=settings.environment,
    )
    app.state.vapid_public_key = public_key_b64url(app.state.vapid_private_key)

    v1 = APIRouter(prefix=API_PREFIX)
    v1.include_router(health.router)
    v1.include_router(login.router)
    v1.include_router(users.router)
    v1.include_router(regions.router)
    v1.include_router(enterprises.router)
    v1.include_router(workers.router)
    v1.include_router(sensors.router)
    v1.include_router(alerts.router)
    v1.include_router(push.router)
    v1.include_router(reports.router)
    v1.include_router(me.router)
    v1.include_router(deliveries.router)
    v1.include_router(status_route.router)
    app.include_router(v1)
    app.include_router(health.lb_router)
    mount_pages(app)
    app.add_exception_handler(LifecycleError, alerts.lifecycle_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error)
    return app
