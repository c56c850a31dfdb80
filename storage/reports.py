"""Workers' reports as people read them, and their photos.

The worker's ``store-reports`` agent writes ``reports`` (`storage.detection.store_report`);
here they are read, within a scope like every enterprise's data: officers their
enterprise, inspectors and control rooms their regions, and a worker only their
own (``worker_id``). A photo is one row of ``report_photos`` per report (migration
0017), kept in the database; the report's ``photo_ref`` names where the API serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

from core.access import Scope
from storage.queries import SCOPED_ENTERPRISES

__all__ = [
    "PhotoRow",
    "ReportRow",
    "count_reports",
    "get_photo",
    "get_report",
    "list_reports",
    "report_owner",
    "save_photo",
]


@dataclass(frozen=True, slots=True)
class ReportRow:
    report_id: str
    enterprise_id: str
    worker_id: str
    kind: str
    ts: datetime
    zone_id: str | None
    text: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    photo_ref: str | None
    received_at: datetime
    has_photo: bool


@dataclass(frozen=True, slots=True)
class PhotoRow:
    report_id: str
    content_type: str
    data: bytes
    sha256: str
    uploaded_at: datetime


_COLUMNS = """
SELECT r.report_id, r.enterprise_id, r.worker_id, r.kind, r.ts, r.zone_id, r.text,
       r.lat, r.lon, r.accuracy_m, r.photo_ref, r.received_at,
       EXISTS (SELECT 1 FROM report_photos p WHERE p.report_id = r.report_id) AS has_photo
FROM reports r
"""

# A worker (``worker`` set) sees their own reports only; everyone else their scope's.
# Composed of constants only (no input), hence the noqa.
_WHERE = (
    "WHERE r.enterprise_id IN "
    + SCOPED_ENTERPRISES
    + " AND (%(worker)s::text IS NULL OR r.worker_id = %(worker)s)"
    " AND (%(kinds)s::text[] IS NULL OR r.kind = ANY(%(kinds)s::text[]))"
    " AND (%(enterprise_id)s::text IS NULL OR r.enterprise_id = %(enterprise_id)s)"
)

_COUNT = "SELECT count(*) FROM reports r " + _WHERE  # noqa: S608


def _params(
    scope: Scope, worker: str | None, kinds: tuple[str, ...], enterprise_id: str | None
) -> dict[str, object]:
    return {
        **scope.sql_params(),
        "worker": worker,
        "kinds": list(kinds) or None,
        "enterprise_id": enterprise_id,
    }


async def list_reports(
    conn: psycopg.AsyncConnection,
    *,
    scope: Scope,
    worker: str | None,
    kinds: tuple[str, ...] = (),
    enterprise_id: str | None = None,
    limit: int,
    offset: int,
) -> list[ReportRow]:
    """Reports in ``scope`` (and of ``worker`` alone when given), newest first."""
    async with conn.cursor(row_factory=class_row(ReportRow)) as cur:
        await cur.execute(
            _COLUMNS
            + _WHERE
            + " ORDER BY r.ts DESC, r.report_id LIMIT %(limit)s OFFSET %(offset)s",
            {**_params(scope, worker, kinds, enterprise_id), "limit": limit, "offset": offset},
        )
        return await cur.fetchall()


async def count_reports(
    conn: psycopg.AsyncConnection,
    *,
    scope: Scope,
    worker: str | None,
    kinds: tuple[str, ...] = (),
    enterprise_id: str | None = None,
) -> int:
    cur = await conn.execute(_COUNT, _params(scope, worker, kinds, enterprise_id))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def get_report(
    conn: psycopg.AsyncConnection, *, scope: Scope, worker: str | None, report_id: str
) -> ReportRow | None:
    """One report, if it is in ``scope`` (and ``worker``'s own when given)."""
    async with conn.cursor(row_factory=class_row(ReportRow)) as cur:
        await cur.execute(
            _COLUMNS + _WHERE + " AND r.report_id = %(report_id)s",
            {**_params(scope, worker, (), None), "report_id": report_id},
        )
        return await cur.fetchone()


async def report_owner(conn: psycopg.AsyncConnection, *, report_id: str) -> tuple[str, str] | None:
    """``(enterprise_id, worker_id)`` of a stored report, whoever asks (for idempotency
    checks only: never shown to anyone)."""
    cur = await conn.execute(
        "SELECT enterprise_id, worker_id FROM reports WHERE report_id = %s", (report_id,)
    )
    row = await cur.fetchone()
    return (str(row[0]), str(row[1])) if row else None


async def save_photo(
    conn: psycopg.AsyncConnection,
    *,
    report_id: str,
    content_type: str,
    data: bytes,
    sha256: str,
    photo_ref: str,
) -> datetime:
    """The report's photo, replacing one sent before; the report's ``photo_ref`` is set
    to ``photo_ref``. Returns when it was stored."""
    cur = await conn.execute(
        "INSERT INTO report_photos (report_id, content_type, data, sha256)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (report_id) DO UPDATE"
        " SET content_type = EXCLUDED.content_type, data = EXCLUDED.data,"
        " sha256 = EXCLUDED.sha256, uploaded_at = now() RETURNING uploaded_at",
        (report_id, content_type, data, sha256),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "UPDATE reports SET photo_ref = %s WHERE report_id = %s", (photo_ref, report_id)
    )
    return row[0]  # type: ignore[no-any-return]


async def get_photo(conn: psycopg.AsyncConnection, *, report_id: str) -> PhotoRow | None:
    """The photo of a report (the caller has checked the report is in scope)."""
    async with conn.cursor(row_factory=class_row(PhotoRow)) as cur:
        await cur.execute(
            "SELECT report_id, content_type, data, sha256, uploaded_at FROM report_photos"
            " WHERE report_id = %s",
            (report_id,),
        )
        return await cur.fetchone()
