"""Workers' reports: a worker's app sends SOS, man-down and hazard reports (and a photo);
people who may see the enterprise read them.

A report is not written here: it is published on the signed-in worker's MQTT report
topic (`api.mqtt.ReportPublisher`) and travels the path a phone's report travels
(bridge -> Kafka -> the worker's ``store-reports`` agent, which stores it and opens
the SOS alert). The answer is 202 once the broker has it; 503 (with Retry-After) when
it does not, so the app keeps the report and sends it again. The same ``report_id``
is one report whatever happens (`storage.detection.store_report`).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, cast

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status

from api.deps import (
    FORBIDDEN,
    UNAUTHORIZED,
    UNREADABLE_BODY,
    ConnDep,
    CurrentUser,
    ScopeDep,
    SettingsDep,
    invalid,
    page_limit,
    page_offset,
)
from api.mqtt import PublishFailed, ReportPublisher
from api.schemas import (
    ReportAcceptedPublic,
    ReportKind,
    ReportPagePublic,
    ReportPhotoPublic,
    ReportPublic,
    ReportRequest,
)
from core.access import Role
from core.identities import USERNAME
from core.limits import Limits
from storage import reports
from storage.people import UserRow

__all__ = ["MAX_PHOTO_BYTES", "PHOTO_TYPES", "router"]

router = APIRouter(prefix="/reports", tags=["reports"], responses=UNAUTHORIZED)

MAX_PHOTO_BYTES = 5 * 1024 * 1024
#: What a photo may be, told by its first bytes (the Content-Type header is not trusted).
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
RETRY_AFTER_S = 5

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No report with this id in your scope."}
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    status.HTTP_503_SERVICE_UNAVAILABLE: {
        "description": "The MQTT broker did not take the report (no connection, no "
        "acknowledgement in time): keep it and send it again after Retry-After seconds."
    }
}
_TAKEN: dict[int | str, dict[str, Any]] = {
    status.HTTP_409_CONFLICT: {
        "description": "This report_id is another report's: make a new id (a UUID)."
    }
}
ReportId = Annotated[
    str, Path(min_length=1, max_length=128, description="The report's id (the app's UUID).")
]


def _publisher(request: Request) -> ReportPublisher:
    return cast(ReportPublisher, request.app.state.publisher)


def _limits(request: Request) -> Limits:
    return cast(Limits, request.app.state.limits)


def _worker_of(user: UserRow) -> str | None:
    """Whose reports ``user`` may read: a worker only their own (None: their scope's)."""
    return user.username if user.role == Role.WORKER else None


def _require_worker(user: UserRow) -> str:
    """The worker's enterprise, or 403: only a worker's app sends reports."""
    if user.role != Role.WORKER or user.enterprise_id is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only a worker sends reports")
    if not USERNAME.match(user.username):
        # The user name is the topic's worker id; '@' or a leading '.' cannot be one.
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"the user name {user.username!r} cannot be an app's worker id"
            " (letters, digits, '.', '_' and '-'): ask an admin to rename the account",
        )
    return user.enterprise_id


def _check_ts(ts: datetime, limits: Limits) -> None:
    now = datetime.now(UTC)
    newest = now + timedelta(seconds=limits.health.future_skew_s)
    oldest = now - timedelta(seconds=limits.health.max_age_s)
    try:
        if ts > newest:
            raise invalid(("body", "ts"), "is in the future (check the phone's clock)", str(ts))
        if ts < oldest:
            days = limits.health.max_age_s / 86400
            raise invalid(("body", "ts"), f"is older than {days:g} days", str(ts))
    except OverflowError:  # a far offset at the end of the calendar
        raise invalid(("body", "ts"), "is out of range", str(ts)) from None


def _payload(body: ReportRequest, zone_id: str | None) -> bytes:
    """The report as the app's MQTT contract has it (docs/ARCHITECTURE.md)."""
    message: dict[str, Any] = {
        "type": body.kind.value,
        "id": str(body.report_id),
        "ts": body.ts.isoformat(),
        "text": body.text,
    }
    if body.lat is not None and body.lon is not None:
        location: dict[str, float] = {"lat": body.lat, "lon": body.lon}
        if body.accuracy_m is not None:
            location["accuracy_m"] = body.accuracy_m
        message["location"] = location
    if zone_id is not None:
        message["zone_id"] = zone_id
    return orjson.dumps(message)


@router.post(
    "",
    summary="Send a report (SOS, man-down, hazard) from the worker's app",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**FORBIDDEN, **_TAKEN, **_UNAVAILABLE, **UNREADABLE_BODY},
)
async def send_report(
    request: Request,
    conn: ConnDep,
    user: CurrentUser,
    settings: SettingsDep,
    body: ReportRequest,
    response: Response,
) -> ReportAcceptedPublic:
    """Workers only. Answers 202 once the MQTT broker has the report (QoS 1): it is stored
    and, for sos and man_down, a critical alert opened, within a second or two. On 503
    keep the report and send it again, with the same ``report_id``: the same id is always
    one report and one alert, however often it is sent."""
    enterprise_id = _require_worker(user)
    _check_ts(body.ts, _limits(request))
    if (body.lat is None) != (body.lon is None):
        raise invalid(
            ("body", "lon" if body.lon is None else "lat"), "give lat and lon, or neither"
        )
    if body.accuracy_m is not None and body.lat is None:
        raise invalid(("body", "accuracy_m"), "is the accuracy of lat/lon: give them too")
    if not body.kind.urgent and not body.text.strip():
        raise invalid(("body", "text"), f"a {body.kind.value} report needs a description")
    report_id = str(body.report_id)
    owner = await reports.report_owner(conn, report_id=report_id)
    if owner == (enterprise_id, user.username):
        return ReportAcceptedPublic(report_id=body.report_id, status="stored")
    if owner is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, "this report_id is taken: make a new one")
    await conn.rollback()  # hold no transaction while waiting for the broker
    topic = f"qorgau/v1/{enterprise_id}/app/{user.username}/report"
    # When users carry their zone (users.zone_id), an SOS says where: one line here.
    zone_id = cast(str | None, getattr(user, "zone_id", None))
    try:
        await _publisher(request).publish(
            topic, _payload(body, zone_id), timeout_s=settings.api_publish_timeout_s
        )
    except PublishFailed as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the report was not sent: {exc.reason}; send it again",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    return ReportAcceptedPublic(report_id=body.report_id, status="sent")


@router.get("", summary="List reports")
async def list_reports(
    conn: ConnDep,
    user: CurrentUser,
    scope: ScopeDep,
    kind: Annotated[
        list[ReportKind] | None, Query(description="Only these kinds (repeatable).")
    ] = None,
    enterprise_id: Annotated[str | None, Query(description="Only this enterprise.")] = None,
    limit: Annotated[int, page_limit("reports")] = 100,
    offset: Annotated[int, page_offset("reports")] = 0,
) -> ReportPagePublic:
    """Reports in your scope, newest first: officers their enterprise's, inspectors and
    control rooms their regions', a worker their own."""
    kinds = tuple(k.value for k in kind or ())
    worker = _worker_of(user)
    rows = await reports.list_reports(
        conn,
        scope=scope,
        worker=worker,
        kinds=kinds,
        enterprise_id=enterprise_id,
        limit=limit,
        offset=offset,
    )
    total = await reports.count_reports(
        conn, scope=scope, worker=worker, kinds=kinds, enterprise_id=enterprise_id
    )
    return ReportPagePublic(total=total, items=[ReportPublic.from_row(r) for r in rows])


async def _visible(conn: ConnDep, user: UserRow, report_id: str) -> reports.ReportRow:
    row = await reports.get_report(
        conn, scope=user.scope, worker=_worker_of(user), report_id=report_id
    )
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"report {report_id!r} not found")
    return row


@router.get("/{report_id}", summary="One report", responses=_NOT_FOUND)
async def get_report(conn: ConnDep, user: CurrentUser, report_id: ReportId) -> ReportPublic:
    """Also how the app learns that a report it sent is stored (404 until then)."""
    return ReportPublic.from_row(await _visible(conn, user, report_id))


def photo_type(data: bytes) -> str | None:
    """The image type ``data`` starts like, of `PHOTO_TYPES`; None for anything else.

    >>> photo_type(bytes.fromhex("ffd8ff") + b"rest"), photo_type(b"RIFF1234WEBPVP8 ")
    ('image/jpeg', 'image/webp')
    >>> photo_type(b"GIF89a"), photo_type(b"<svg")
    (None, None)
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def _read_photo(request: Request) -> bytes:
    """The body, refused as soon as it is known to be over `MAX_PHOTO_BYTES`."""
    too_large = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"a photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MiB ({MAX_PHOTO_BYTES} bytes)",
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_PHOTO_BYTES:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_PHOTO_BYTES:
            raise too_large
    return bytes(data)


_PHOTO_BODY = {
    "requestBody": {
        "required": True,
        "description": f"The photo's bytes: JPEG, PNG or WebP, at most {MAX_PHOTO_BYTES} bytes.",
        "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in PHOTO_TYPES},
    }
}


@router.post(
    "/{report_id}/photo",
    summary="Attach a photo to your report",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_PHOTO_BODY,
    responses={
        **FORBIDDEN,
        status.HTTP_404_NOT_FOUND: {
            "description": "You have no stored report with this id (yet: a report sent a"
            " moment ago is stored within seconds; send the photo again after Retry-After)."
        },
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "Over 5 MiB."},
        status.HTTP_422_UNPROCESSABLE_CONTENT: {
            "description": "Not a JPEG, PNG or WebP image (by its first bytes)."
        },
    },
)
async def upload_photo(
    request: Request, conn: ConnDep, user: CurrentUser, report_id: ReportId
) -> ReportPhotoPublic:
    """Only the worker who made the report; one photo per report (sending another replaces
    it). The report must be stored first: send the report, then its photo."""
    _require_worker(user)
    row = await reports.get_report(
        conn, scope=user.scope, worker=user.username, report_id=report_id
    )
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"you have no stored report {report_id!r} (yet): send the photo again shortly",
            headers={"Retry-After": "2"},
        )
    data = await _read_photo(request)
    kind = photo_type(data)
    if kind is None:
        raise invalid(("body",), "not a JPEG, PNG or WebP image (by its first bytes)")
    digest = hashlib.sha256(data).hexdigest()
    url = f"{request.app.url_path_for('get_photo', report_id=report_id)}"
    uploaded = await reports.save_photo(
        conn, report_id=report_id, content_type=kind, data=data, sha256=digest, photo_ref=url
    )
    await conn.commit()
    return ReportPhotoPublic(
        report_id=report_id,
        content_type=kind,
        size_bytes=len(data),
        sha256=digest,
        uploaded_at=uploaded,
        url=url,
    )


@router.get(
    "/{report_id}/photo",
    summary="A report's photo",
    response_class=Response,
    responses={
        status.HTTP_200_OK: {
            "description": "The photo's bytes.",
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in PHOTO_TYPES},
        },
        status.HTTP_404_NOT_FOUND: {
            "description": "No report with this id in your scope, or it has no photo."
        },
    },
)
async def get_photo(conn: ConnDep, user: CurrentUser, report_id: ReportId) -> Response:
    """For those who may see the report (a worker: their own)."""
    await _visible(conn, user, report_id)
    photo = await reports.get_photo(conn, report_id=report_id)
    if photo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"report {report_id!r} has no photo")
    return Response(
        content=photo.data,
        media_type=photo.content_type,
        headers={
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{photo.sha256}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
