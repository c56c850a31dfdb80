"""Monitored enterprises and their sensors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from api.deps import (
    UNAUTHORIZED,
    CatalogueDep,
    ConnDep,
    LimitsDep,
    ScopeDep,
    page_limit,
    page_offset,
)
from api.schemas import EnterprisePublic, SensorPublic
from storage import queries

__all__ = ["router"]

router = APIRouter(prefix="/enterprises", tags=["enterprises"], responses=UNAUTHORIZED)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No enterprise with this id in your scope."}
}


def _not_found(enterprise_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"enterprise {enterprise_id!r} not found")


@router.get("", summary="List enterprises")
async def list_enterprises(
    conn: ConnDep,
    scope: ScopeDep,
    region_id: Annotated[
        str | None, Query(description="Only this region (ISO 3166-2:KZ code).")
    ] = None,
    industry_code: Annotated[
        str | None, Query(description="Only this industry (OKED section letter).")
    ] = None,
    limit: Annotated[int, page_limit("enterprises")] = 100,
    offset: Annotated[int, page_offset("enterprises")] = 0,
) -> list[EnterprisePublic]:
    """Enterprises in the caller's scope, ordered by id, one page at a time."""
    rows = await queries.list_enterprises(
        conn,
        scope=scope,
        region_id=region_id,
        industry_code=industry_code,
        limit=limit,
        offset=offset,
    )
    return [EnterprisePublic.model_validate(row, from_attributes=True) for row in rows]


@router.get("/{enterprise_id}", summary="Get one enterprise", responses=_NOT_FOUND)
async def get_enterprise(conn: ConnDep, scope: ScopeDep, enterprise_id: str) -> EnterprisePublic:
    row = await queries.get_enterprise(conn, scope=scope, enterprise_id=enterprise_id)
    if row is None:
        raise _not_found(enterprise_id)
    return EnterprisePublic.model_validate(row, from_attributes=True)


@router.get(
    "/{enterprise_id}/sensors", summary="List an enterprise's sensors", responses=_NOT_FOUND
)
async def list_enterprise_sensors(
    conn: ConnDep,
    scope: ScopeDep,
    catalogue: CatalogueDep,
    limits: LimitsDep,
    enterprise_id: str,
) -> list[SensorPublic]:
    """The enterprise's sensors by id, each with its latest reading."""
    rows = await queries.list_sensors(conn, scope=scope, enterprise_id=enterprise_id)
    if not rows and (
        await queries.get_enterprise(conn, scope=scope, enterprise_id=enterprise_id) is None
    ):
        raise _not_found(enterprise_id)
    return [SensorPublic.from_row(row, catalogue, limits) for row in rows]
