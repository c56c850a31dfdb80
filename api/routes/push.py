"""Web Push: the key a browser subscribes with, and the caller's own subscriptions.

Everything here is about the signed-in person alone, whatever their role
(workers too): a browser subscribes with the VAPID application server key,
posts its ``PushSubscription`` here, and from then on alerts reach it. A
subscription is found by its endpoint, and only among the caller's own.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status

from alerts.channels.base import SendStatus
from alerts.channels.webpush import WebPushChannel
from alerts.notification import Target
from api.deps import UNAUTHORIZED, UNREADABLE_BODY, ConnDep, CurrentUser, SettingsDep, invalid
from api.schemas import (
    LOCAL_HOSTS,
    MAX_PUSH_ENDPOINT,
    PushSubscriptionPublic,
    PushSubscriptionRequest,
    PushTestPublic,
    PushTestResultPublic,
    VapidPublicKeyPublic,
)
from storage import people

__all__ = ["router"]

router = APIRouter(prefix="/push", tags=["push"], responses=UNAUTHORIZED)

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "You have no subscription at this endpoint."}
}
_MAX_USER_AGENT = 512  # enough for any real browser; the header is the client's to inflate


@router.get("/vapid-public-key", summary="The key browsers subscribe with")
async def vapid_public_key(request: Request, _: CurrentUser) -> VapidPublicKeyPublic:
    """Pass ``public_key`` as ``applicationServerKey`` to ``pushManager.subscribe``."""
    return VapidPublicKeyPublic(public_key=cast(str, request.app.state.vapid_public_key))


@router.post(
    "/subscriptions",
    summary="Subscribe this browser",
    status_code=status.HTTP_201_CREATED,
    responses=UNREADABLE_BODY,
)
async def subscribe(
    conn: ConnDep,
    user: CurrentUser,
    settings: SettingsDep,
    body: PushSubscriptionRequest,
    user_agent: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> PushSubscriptionPublic:
    """Send ``PushSubscription.toJSON()`` as it is. Subscribing an endpoint again replaces
    its keys, and makes it yours if someone else signed in on this browser before.

    The endpoint must belong to a known push service (``QORGAU_PUSH_SERVICES``): the
    server posts to it, and must not be made to post into its own network."""
    host = (urlsplit(body.endpoint).hostname or "").lower()
    local = settings.environment == "development" and host in LOCAL_HOSTS
    if not local and not any(
        host == allowed or host.endswith("." + allowed) for allowed in settings.push_services
    ):
        raise invalid(
            ("body", "endpoint"),
            f"{host!r} is not a push service Qorgau sends to (QORGAU_PUSH_SERVICES:"
            f" {', '.join(settings.push_services)})",
            body.endpoint,
        )
    row = await people.save_push_subscription(
        conn,
        user_id=user.id,
        endpoint=body.endpoint,
        p256dh=body.keys.p256dh,
        auth=body.keys.auth,
        user_agent=user_agent[:_MAX_USER_AGENT] if user_agent else None,
    )
    await conn.commit()
    return PushSubscriptionPublic.from_row(row)


@router.get("/subscriptions", summary="Your subscriptions")
async def list_subscriptions(conn: ConnDep, user: CurrentUser) -> list[PushSubscriptionPublic]:
    """Your browsers that receive alerts, oldest first."""
    rows = await people.list_push_subscriptions(conn, user_id=user.id)
    return [PushSubscriptionPublic.from_row(r) for r in rows]


@router.delete(
    "/subscriptions",
    summary="Unsubscribe a browser",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NOT_FOUND,
)
async def unsubscribe(
    conn: ConnDep,
    user: CurrentUser,
    endpoint: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_PUSH_ENDPOINT,
            description="The subscription's endpoint URL, exactly as subscribed (URL-encoded).",
        ),
    ],
) -> Response:
    """Stop alerts to one of your browsers (call it after ``PushSubscription.unsubscribe()``)."""
    if not await people.delete_push_subscription_by_endpoint(
        conn, user_id=user.id, endpoint=endpoint
    ):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "you have no subscription at this endpoint")
    await conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


_TEST_TEXT = {
    "ru": ("Qorgau: проверка", "Уведомления доходят до этого устройства."),
    "kk": ("Qorgau: тексеру", "Хабарламалар осы құрылғыға жетеді."),
}
_TEST_EVERY_S = 10.0
_last_test: dict[int, float] = {}


@router.post(
    "/test",
    summary="Send a test notification to your browsers",
    responses={
        status.HTTP_404_NOT_FOUND: {"description": "You have no subscription yet."},
        status.HTTP_429_TOO_MANY_REQUESTS: {"description": "One test every 10 s (Retry-After)."},
    },
)
async def send_test(
    request: Request, conn: ConnDep, user: CurrentUser, settings: SettingsDep
) -> PushTestPublic:
    """Through the push service to each of your subscribed browsers, as an alarm would go:
    proof that this phone can be told. A subscription the push service says is gone is
    removed."""

    now = time.monotonic()
    last = _last_test.get(user.id)
    if last is not None and now - last < _TEST_EVERY_S:
        wait = int(_TEST_EVERY_S - (now - last)) + 1
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"one test every {_TEST_EVERY_S:g} s",
            headers={"Retry-After": str(wait)},
        )
    subscriptions = await people.list_push_subscriptions(conn, user_id=user.id)
    if not subscriptions:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no browser of yours is subscribed: turn notifications on"
        )
    _last_test[user.id] = now
    title, body = _TEST_TEXT["kk" if user.language == "kk" else "ru"]
    payload = {"v": 1, "purpose": "test", "title": title, "body": body,
               "language": user.language, "hash": "#/settings"}  # fmt: skip
    channel = WebPushChannel(
        vapid_private_key=request.app.state.vapid_private_key, subject=settings.vapid_subject
    )
    results = []
    try:
        for sub in subscriptions:
            target = Target("webpush", sub.endpoint, p256dh=sub.p256dh, auth=sub.auth)
            r = await channel.send_payload(payload, target)
            if r.status is SendStatus.GONE:
                await people.delete_push_subscription_by_endpoint(
                    conn, user_id=user.id, endpoint=sub.endpoint
                )
            results.append(
                PushTestResultPublic(
                    push_service=urlsplit(sub.endpoint).hostname or "",
                    status=r.status.value,
                    http_status=r.http_status,
                    detail=r.detail[:300],
                )
            )
        await conn.commit()
    finally:
        await channel.close()
    return PushTestPublic(sent=sum(r.status == "sent" for r in results), results=results)
