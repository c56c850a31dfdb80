"""Sensors and their readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import (
    UNAUTHORIZED,
    CatalogueDep,
    ConnDep,
    Instant,
    LimitsDep,
    ScopeDep,
    invalid,
)
from api.schemas import ReadingPointPublic, ReadingSeriesPublic, SensorPublic
from storage import queries

__all__ = ["DEFAULT_WINDOW", "MAX_RANGE", "router"]

router = APIRouter(prefix="/sensors", tags=["sensors"], responses=UNAUTHORIZED)

DEFAULT_WINDOW = timedelta(hours=1)
MAX_RANGE = timedelta(days=366)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No sensor with this id in your scope."}
}


def _not_found(sensor_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"sensor {sensor_id!r} not found")


@router.get("/{sensor_id}", summary="Get one sensor", responses=_NOT_FOUND)
async def get_sensor(
    conn: ConnDep, scope: ScopeDep, catalogue: CatalogueDep, limits: LimitsDep, sensor_id: str
) -> SensorPublic:
    """The sensor, its zone and its latest reading."""
    row = await queries.get_sensor(conn, scope=scope, sensor_id=sensor_id)
    if row is None:
        raise _not_found(sensor_id)
    return SensorPublic.from_row(row, catalogue, limits)


@router.get("/{sensor_id}/readings", summary="A sensor's readings over time", responses=_NOT_FOUND)
async def get_sensor_readings(
    conn: ConnDep,
    scope: ScopeDep,
    catalogue: CatalogueDep,
    sensor_id: str,
    start: Annotated[
        Instant | None,
        Query(description="Range start, inclusive (ISO 8601 with offset). Default: end - 1 h."),
    ] = None,
    end: Annotated[
        Instant | None,
        Query(description="Range end, exclusive (ISO 8601 with offset). Default: now."),
    ] = None,
    max_points: Annotated[
        int,
        Query(
            ge=10,
            le=5000,
            description="Most raw readings to return (count); above it the range is "
            "downsampled into at most max_points + 1 time buckets.",
        ),
    ] = 1000,
) -> ReadingSeriesPublic:
    """Raw readings in ``[start, end)``, or time buckets (avg/min/max/count) if there are many.

    The range may span at most 366 days.
    """
    end = end if end is not None else datetime.now(UTC)
    start = start if start is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise invalid(
            ("query", "start"),
            f"start ({start.isoformat()}) must be before end ({end.isoformat()})",
            start.isoformat(),
        )
    if end - start > MAX_RANGE:
        raise invalid(
            ("query", "end"),
            f"range from start to end is {end - start}; at most {MAX_RANGE.days} days allowed",
            end.isoformat(),
        )
    sensor = await queries.get_sensor(conn, scope=scope, sensor_id=sensor_id)
    if sensor is None:
        raise _not_found(sensor_id)
    points, downsampled, bucket_seconds = await queries.readings_for_sensor(
        conn, scope=scope, sensor_id=sensor_id, start=start, end=end, max_points=max_points
    )
    hazard = catalogue.get(sensor.hazard)
    return ReadingSeriesPublic(
        sensor_id=sensor.id,
        hazard=sensor.hazard,
        unit=hazard.unit if hazard is not None else None,
        start=start,
        end=end,
        downsampled=downsampled,
        bucket_seconds=bucket_seconds,
        points=[ReadingPointPublic.from_storage(p) for p in points],
    )
