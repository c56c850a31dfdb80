"""Regions (oblystar and cities of republican significance)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import UNAUTHORIZED, ConnDep, ScopeDep
from api.schemas import RegionPublic
from storage import queries

__all__ = ["router"]

router = APIRouter(prefix="/regions", tags=["regions"], responses=UNAUTHORIZED)


@router.get("", summary="List regions")
async def list_regions(conn: ConnDep, scope: ScopeDep) -> list[RegionPublic]:
    """Every region by ISO 3166-2:KZ code, with how many monitored enterprises of the
    caller's scope it has."""
    rows = await queries.list_regions(conn, scope=scope)
    return [RegionPublic.model_validate(row, from_attributes=True) for row in rows]
