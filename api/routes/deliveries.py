"""The delivery log, for admins: who was told what, on which channel, and every attempt.

Addresses are redacted (`core.redaction.redact_address`): webhook and apprise URLs
carry their tokens in the path, query or even the host, and a push endpoint is
a capability; the log shows where a message went, never how to send another.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, status

from alerts.delivery import DeliveryStatus
from api.deps import FORBIDDEN, MAX_ID, UNAUTHORIZED, AdminUser, ConnDep, page_limit, page_offset
from api.schemas import DeliveryAttemptPublic, DeliveryDetailPublic, DeliveryPublic
from storage import deliveries

__all__ = ["router"]

router = APIRouter(
    prefix="/deliveries", tags=["deliveries"], responses={**UNAUTHORIZED, **FORBIDDEN}
)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No delivery with this id."}
}


@router.get("", summary="The delivery log")
async def list_deliveries(
    conn: ConnDep,
    _: AdminUser,
    alert_key: Annotated[str | None, Query(description="Only for this alert key.")] = None,
    channel: Annotated[
        str | None, Query(description="Only this channel: webpush, email, webhook, mqtt, apprise.")
    ] = None,
    status_: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only this status.")
    ] = None,
    limit: Annotated[int, page_limit("deliveries")] = 100,
    offset: Annotated[int, page_offset("deliveries")] = 0,
) -> list[DeliveryPublic]:
    """Deliveries, newest first."""
    rows = await deliveries.list_deliveries(
        conn,
        alert_key=alert_key,
        channel=channel,
        status=status_.value if status_ else None,
        limit=limit,
        offset=offset,
    )
    return [DeliveryPublic.from_row(r) for r in rows]


@router.get("/{delivery_id}", summary="One delivery and its attempts", responses=_NOT_FOUND)
async def get_delivery(
    conn: ConnDep,
    _: AdminUser,
    delivery_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The delivery's number.")],
) -> DeliveryDetailPublic:
    row = await deliveries.get_delivery_by_id(conn, delivery_id=delivery_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"delivery {delivery_id} not found")
    attempts = await deliveries.list_delivery_attempts(conn, delivery_id=row.id)
    return DeliveryDetailPublic(
        delivery=DeliveryPublic.from_row(row),
        attempts=[
            DeliveryAttemptPublic.from_row(a, address=row.address, channel=row.channel)
            for a in attempts
        ],
    )
