"""The signed-in person: who they are and what they may see."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import UNAUTHORIZED, CurrentUser
from api.schemas import UserPublic

__all__ = ["router"]

router = APIRouter(prefix="/users", tags=["users"], responses=UNAUTHORIZED)


@router.get("/me", summary="The signed-in user")
async def read_me(user: CurrentUser) -> UserPublic:
    return UserPublic.from_row(user)
