"""Workers' accounts of an enterprise: the roster imported from a CSV file, the list of
workers with whether each has activated, and a new activation code for one of them.

For the enterprise's safety officers and admins (`api.deps.AccountKeeper`); any other
role is refused (403), and an enterprise outside the caller's scope answers 404.
"""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, HTTPException, Path, Query, Request, status

from api.deps import (
    FORBIDDEN,
    UNAUTHORIZED,
    AccountKeeper,
    ConnDep,
    SettingsDep,
    invalid,
    page_limit,
    page_offset,
)
from api.schemas import IssuedCodePublic, RosterImportPublic, RowErrorPublic, WorkerPublic
from core.access import Scope
from core.activation import CODE_VALID_FOR, code_key
from core.roster import MAX_BYTES, MAX_ROWS, RosterRefused, parse_roster
from storage import accounts, queries

__all__ = ["router"]

router = APIRouter(prefix="/enterprises", tags=["workers"], responses={**UNAUTHORIZED, **FORBIDDEN})
log = structlog.get_logger("qorgau.api.workers")

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "No enterprise with this id in your scope."}
}
Username = Annotated[str, Path(min_length=1, max_length=64, description="The worker's user name.")]


async def _in_scope(conn: ConnDep, scope: Scope, enterprise_id: str) -> None:
    if await queries.get_enterprise(conn, scope=scope, enterprise_id=enterprise_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"enterprise {enterprise_id!r} not found")


async def _read_capped(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes `MAX_BYTES`: never held whole."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BYTES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"a roster may have at most {MAX_BYTES // (1024 * 1024)} MiB: split it",
            )
        chunks.append(chunk)
    return b"".join(chunks)


_CSV_BODY = {
    "requestBody": {
        "required": True,
        "description": (
            "The roster as a CSV file (send the file's bytes as they are, `Content-Type:"
            " text/csv`): a header row naming the columns name, personnel_number, zone and"
            " optionally phone — or ФИО, Табельный номер, Участок, Телефон — then one worker"
            " per line. UTF-8 with or without a byte-order mark; commas or semicolons (as"
            f" Excel writes in a Russian locale). At most {MAX_BYTES // (1024 * 1024)} MiB"
            f" and {MAX_ROWS:,} workers. A zone is its id or its name; a phone is written"
            " any usual way and stored as E.164."
        ),
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "name,personnel_number,zone,phone\n"
                "Иванов Иван Иванович,10417,E001-Z01,8 701 234 56 78\n",
            }
        },
    }
}


@router.post(
    "/{enterprise_id}/workers/import",
    summary="Import workers from a CSV roster",
    openapi_extra=_CSV_BODY,
    responses={
        **_NOT_FOUND,
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The file is over 10 MiB."},
    },
)
async def import_workers(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    user: AccountKeeper,
    enterprise_id: str,
    dry_run: Annotated[
        bool, Query(description="Check the file and count what would change; write nothing.")
    ] = False,
) -> RosterImportPublic:
    """Creates the workers new to the enterprise — each with a user name of their own, no
    password and a one-time activation code, valid 14 days, returned **only here** — and
    updates the name, zone and phone of those whose personnel number it has already.

    Each bad line is reported with its line number and left out; the good ones are written
    in one transaction (all or none of them). Importing the same file again changes
    nothing and makes no new code. A file that cannot be read at all (no header we know,
    not UTF-8, too many rows) is a 422 and nothing is written.
    """
    await _in_scope(conn, user.scope, enterprise_id)
    data = await _read_capped(request)
    zones = await accounts.enterprise_zones(conn, enterprise_id=enterprise_id)
    try:
        roster = parse_roster(data, zones=zones)
    except RosterRefused as exc:
        raise invalid(("body",), str(exc)) from exc
    outcome = await accounts.import_roster(
        conn,
        enterprise_id=enterprise_id,
        rows=roster.rows,
        key=code_key(settings.jwt_secret.get_secret_value()),
        valid_for=CODE_VALID_FOR,
        issued_by=user.username,
        dry_run=dry_run,
    )
    await conn.commit()
    errors, refused = outcome.report(roster.errors)
    log.info(
        "roster imported",
        enterprise=enterprise_id,
        by=user.username,
        dry_run=dry_run,
        rows=roster.rows_read,
        created=outcome.created_count,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
        refused=refused,
    )
    return RosterImportPublic(
        dry_run=dry_run,
        rows_read=roster.rows_read,
        created=outcome.created_count,
        updated=outcome.updated,
        unchanged=outcome.unchanged,
        refused=refused,
        errors=[RowErrorPublic.from_error(e) for e in errors],
        codes=[IssuedCodePublic.from_issued(c, settings.public_url) for c in outcome.created],
    )


@router.get(
    "/{enterprise_id}/workers", summary="List an enterprise's workers", responses=_NOT_FOUND
)
async def list_workers(
    conn: ConnDep,
    user: AccountKeeper,
    enterprise_id: str,
    limit: Annotated[int, page_limit("workers")] = 100,
    offset: Annotated[int, page_offset("workers")] = 0,
) -> list[WorkerPublic]:
    """The enterprise's workers by user name, each with whether they have activated their
    account and, if a code is out, when it expires."""
    await _in_scope(conn, user.scope, enterprise_id)
    rows = await accounts.list_workers(
        conn, enterprise_id=enterprise_id, limit=limit, offset=offset
    )
    return [WorkerPublic.from_row(row) for row in rows]


@router.post(
    "/{enterprise_id}/workers/{username}/activation",
    summary="Issue a new activation code to a worker",
    responses={
        status.HTTP_404_NOT_FOUND: {
            "description": "No enterprise with this id in your scope, or no worker of it with"
            " this user name."
        }
    },
)
async def issue_activation(
    conn: ConnDep,
    settings: SettingsDep,
    user: AccountKeeper,
    enterprise_id: str,
    username: Username,
) -> IssuedCodePublic:
    """A new one-time code (valid 14 days) for a worker who lost theirs, or forgot their
    password: their previous code stops working at once. Activating it sets a new
    password and ends the worker's sessions."""
    await _in_scope(conn, user.scope, enterprise_id)
    issued = await accounts.issue_code(
        conn,
        enterprise_id=enterprise_id,
        username=username,
        key=code_key(settings.jwt_secret.get_secret_value()),
        valid_for=CODE_VALID_FOR,
        issued_by=user.username,
    )
    if issued is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no worker {username!r} at {enterprise_id}")
    await conn.commit()
    log.info("activation code issued", enterprise=enterprise_id, worker=username, by=user.username)
    return IssuedCodePublic.from_issued(issued, settings.public_url)
