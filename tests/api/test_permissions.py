"""The permission matrix: every data endpoint, asked by every role and scope, leaks nothing.

Each endpoint of the API is either public (health, sign-in), about the caller
alone, or listed in `MATRIX` with how to ask it for an object of a given
enterprise (or, for admins' pages, `AdminOnly`). For every test user and every
seeded enterprise, an object inside the user's scope answers 200 and one
outside answers 404 — never the object; a list holds only objects inside the
scope; an admin-only endpoint answers 200 to the admin and 403 to every other
role. A new endpoint that is not added to the matrix fails
`test_every_endpoint_is_in_the_matrix`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest

from alerts.lifecycle import apply_machine_events
from api import create_app
from core.access import Role, Scope
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.settings import Settings
from storage.deliveries import AttemptRecord, create_delivery, finish_attempt
from storage.detection import ReportRecord, store_report
from storage.reports import save_photo
from tests.alerts.conftest import free_port
from tests.asgi import serve
from tests.people import SCOPED_USERS, bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

Json = Any


@dataclass(frozen=True)
class Item:
    """An endpoint about one object; ``url`` gives the URL of one object of an enterprise."""

    url: Callable[[str], str]
    method: str = "GET"
    body: Callable[[str], Json] | None = None
    # Statuses that mean "you were let in" (a write may answer 409 on a second try).
    allowed: frozenset[int] = frozenset({200})
    # Roles refused whatever the object (403: the answer depends on the role alone).
    refused: frozenset[Role] = frozenset()
    # A body that is not JSON (a CSV roster, a photo's bytes), and its content type.
    content: Callable[[str], bytes] | None = None
    content_type: str = "text/csv"


@dataclass(frozen=True)
class Listing:
    """An endpoint returning many objects; ``enterprises`` reads their enterprises off the body."""

    url: str
    enterprises: Callable[[Json], list[str]]
    params: dict[str, str] = field(default_factory=dict)
    # Whether the list must hold *every* enterprise of the scope (not just none outside it).
    complete: bool = True


@dataclass(frozen=True)
class RoleOnly:
    """An endpoint about the caller's own enterprise (none in its URL) that only ``roles``
    may call: ``allowed`` for them, 403 for the rest."""

    url: str
    roles: frozenset[Role]
    allowed: frozenset[int]
    method: str = "GET"
    body: Callable[[], Json] | None = None


@dataclass(frozen=True)
class AdminOnly:
    """An endpoint for admins alone, whatever the object: 200 for an admin, 403 for the rest."""

    url: Callable[[], str]


# One alert per enterprise, opened by the `alerts_everywhere` fixture: enterprise -> id.
ALERT_OF: dict[str, int] = {}
# One report per enterprise (with a photo), stored by the `reports_everywhere` fixture;
# E003's is t-worker-e003's own, every other one another worker's.
REPORT_OF: dict[str, str] = {}
_JPEG = bytes.fromhex("ffd8ffe000104a46494600") + bytes(64)
_ONLY_WORKERS = frozenset(Role) - {Role.WORKER}
# One logged delivery, made by the `a_delivery` fixture.
DELIVERY: dict[str, int] = {}
_ACTS = frozenset({200, 409})  # done, or already done by someone before
_NOT_WORKERS = frozenset({Role.WORKER})
# Workers' accounts are kept by their enterprise's safety officers and by admins.
_NOT_KEEPERS = frozenset(
    {Role.LABOUR_INSPECTOR, Role.FIRE_INSPECTOR, Role.CONTROL_ROOM, Role.WORKER}
)


def _roster(enterprise: str) -> bytes:
    """One worker of ``enterprise``, in its first zone: imported by whoever may."""
    return f"name,personnel_number,zone,phone\nMatrix Worker,m-1,{enterprise}-Z01,\n".encode()


# (method, path template) -> how to probe it.
MATRIX: dict[tuple[str, str], Item | Listing | RoleOnly | AdminOnly] = {
    ("GET", "/api/v1/regions"): Listing(
        "/api/v1/regions",
        # A region's count is the number of enterprises of the scope in it.
        lambda body: [r["id"] for r in body for _ in range(r["enterprise_count"])],
        complete=False,
    ),
    ("GET", "/api/v1/enterprises"): Listing(
        "/api/v1/enterprises", lambda body: [e["id"] for e in body]
    ),
    ("GET", "/api/v1/enterprises/{enterprise_id}"): Item(lambda e: f"/api/v1/enterprises/{e}"),
    ("GET", "/api/v1/enterprises/{enterprise_id}/sensors"): Item(
        lambda e: f"/api/v1/enterprises/{e}/sensors"
    ),
    ("GET", "/api/v1/sensors/{sensor_id}"): Item(lambda e: f"/api/v1/sensors/{e}-S01"),
    ("GET", "/api/v1/sensors/{sensor_id}/readings"): Item(
        lambda e: f"/api/v1/sensors/{e}-S01/readings"
    ),
    ("GET", "/api/v1/alerts"): Listing(
        "/api/v1/alerts",
        lambda body: [a["enterprise_id"] for a in body["items"]],
        # The matrix's own alerts: opened at the fixture's instant.
        params={"since": "2026-01-05T09:00:00Z", "until": "2026-01-05T09:00:01Z", "limit": "500"},
    ),
    ("GET", "/api/v1/alerts/{alert_id}"): Item(lambda e: f"/api/v1/alerts/{ALERT_OF[e]}"),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): Item(
        lambda e: f"/api/v1/alerts/{ALERT_OF[e]}/acknowledge", "POST", None, _ACTS, _NOT_WORKERS
    ),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): Item(
        lambda e: f"/api/v1/alerts/{ALERT_OF[e]}/resolve",
        "POST",
        lambda e: {"reason": "drill", "comment": "permission matrix"},
        _ACTS,
        _NOT_WORKERS,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/comments"): Item(
        lambda e: f"/api/v1/alerts/{ALERT_OF[e]}/comments",
        "POST",
        lambda e: {"text": "seen"},
        frozenset({200}),
        _NOT_WORKERS,
    ),
    ("POST", "/api/v1/enterprises/{enterprise_id}/workers/import"): Item(
        lambda e: f"/api/v1/enterprises/{e}/workers/import",
        "POST",
        refused=_NOT_KEEPERS,
        content=_roster,
    ),
    ("GET", "/api/v1/enterprises/{enterprise_id}/workers"): Item(
        lambda e: f"/api/v1/enterprises/{e}/workers", refused=_NOT_KEEPERS
    ),
    # The worker the import above made (entries are asked in this order).
    ("POST", "/api/v1/enterprises/{enterprise_id}/workers/{username}/activation"): Item(
        lambda e: f"/api/v1/enterprises/{e}/workers/{e.lower()}.m-1/activation",
        "POST",
        refused=_NOT_KEEPERS,
    ),
    ("POST", "/api/v1/reports"): RoleOnly(
        "/api/v1/reports",
        frozenset({Role.WORKER}),
        # No broker in this module: a worker is let in, and told to send it again.
        frozenset({202, 503}),
        "POST",
        lambda: {
            "report_id": str(uuid.uuid4()),
            "kind": "sos",
            "ts": datetime.now(UTC).isoformat(),
        },
    ),
    ("GET", "/api/v1/reports"): Listing(
        "/api/v1/reports",
        lambda body: [r["enterprise_id"] for r in body["items"]],
        params={"kind": "near_miss", "limit": "500"},
    ),
    ("GET", "/api/v1/reports/{report_id}"): Item(lambda e: f"/api/v1/reports/{REPORT_OF[e]}"),
    ("GET", "/api/v1/reports/{report_id}/photo"): Item(
        lambda e: f"/api/v1/reports/{REPORT_OF[e]}/photo"
    ),
    ("POST", "/api/v1/reports/{report_id}/photo"): Item(
        lambda e: f"/api/v1/reports/{REPORT_OF[e]}/photo",
        "POST",
        allowed=frozenset({201}),
        refused=_ONLY_WORKERS,
        content=lambda _e: _JPEG,
        content_type="image/jpeg",
    ),
    ("GET", "/api/v1/me/workplace"): RoleOnly(
        "/api/v1/me/workplace", frozenset({Role.WORKER}), frozenset({200})
    ),
    ("GET", "/api/v1/deliveries"): AdminOnly(lambda: "/api/v1/deliveries"),
    ("GET", "/api/v1/deliveries/{delivery_id}"): AdminOnly(
        lambda: f"/api/v1/deliveries/{DELIVERY['id']}"
    ),
}
# Streams are probed by their own test (test_live_feed_is_scoped in test_alerts.py).
STREAMS = {("GET", "/api/v1/alerts/feed")}

# Endpoints anyone may call, and those about the signed-in caller alone.
PUBLIC = {
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/ready"),
    ("POST", "/api/v1/login/access-token"),
    ("POST", "/api/v1/login/refresh"),
    # A one-time code is the credential (tests/api/test_workers.py).
    ("POST", "/api/v1/login/activate"),
}
SELF = {
    ("GET", "/api/v1/users/me"),
    # Ends the caller's own session (tests/api/test_auth.py: only that one).
    ("POST", "/api/v1/login/sign-out"),
    # Each caller's own browsers (tests/api/test_push.py: nobody reaches another's).
    ("GET", "/api/v1/push/vapid-public-key"),
    ("GET", "/api/v1/push/subscriptions"),
    ("POST", "/api/v1/push/subscriptions"),
    ("DELETE", "/api/v1/push/subscriptions"),
    ("POST", "/api/v1/push/test"),
    # Whether the caller's own scope is live (tests/api/test_status.py: another region's
    # fresh reading does not count).
    ("GET", "/api/v1/status"),
}


def _settings(database_url: str) -> Settings:
    # No MQTT broker: nothing any caller does here may be published anywhere.
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
    )


def _routes(settings: Settings) -> set[tuple[str, str]]:
    """Every (method, path) the app serves under /api, as its OpenAPI document lists them."""
    paths = create_app(settings).openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    }


@pytest.fixture(scope="module")
def enterprises(database_url: str) -> dict[str, str]:
    """Every seeded enterprise and its region."""
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT id, region_id FROM enterprises ORDER BY id").fetchall())


@pytest.fixture(scope="module")
async def alerts_everywhere(database_url: str, enterprises: dict[str, str]) -> dict[str, int]:
    """An open alert in every enterprise, on sensors only this module uses."""
    t = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    events = [
        AlertEvent(
            action=AlertAction.OPEN,
            key=f"{e}-matrix|threshold|{t.isoformat()}",
            kind=AlertKind.THRESHOLD,
            severity=Severity.CRITICAL,
            enterprise_id=e,
            sensor_id=f"{e}-matrix",
            hazard="co",
            ts=t,
            value=90.0,
            message="CO 90 mg/m3",
            details={"source": "rule"},
        )
        for e in enterprises
    ]
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await apply_machine_events(conn, events)
        cur = await conn.execute(
            "SELECT enterprise_id, id FROM alerts WHERE sensor_id LIKE '%%-matrix'"
        )
        ALERT_OF.update(dict(await cur.fetchall()))
    assert set(ALERT_OF) == set(enterprises)
    return ALERT_OF


@pytest.fixture(scope="module")
async def reports_everywhere(database_url: str, enterprises: dict[str, str]) -> dict[str, str]:
    """A near-miss report with a photo in every enterprise; E003's by t-worker-e003."""
    t = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for e in enterprises:
            report_id = str(uuid.uuid4())
            worker = "t-worker-e003" if e == "E003" else f"matrix-worker-{e.lower()}"
            await store_report(
                conn,
                ReportRecord(
                    report_id, e, worker, "near_miss", t, None, "matrix", None, None, None
                ),
            )
            await save_photo(
                conn,
                report_id=report_id,
                content_type="image/jpeg",
                data=_JPEG,
                sha256="0" * 64,
                photo_ref=f"/api/v1/reports/{report_id}/photo",
            )
            REPORT_OF[e] = report_id
        await conn.commit()
    return REPORT_OF


@pytest.fixture(scope="module")
async def a_delivery(database_url: str) -> int:
    """One delivery in the log, for the admin-only endpoints."""
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        row = await create_delivery(
            conn,
            change_id=f"matrix-{uuid.uuid4().hex}|open",
            alert_key="matrix",
            recipient="user:matrix",
            recipient_name="matrix",
            language="ru",
            channel="email",
            address="matrix@example.kz",
            target_secret=None,
            p256dh=None,
            auth=None,
            subscription_id=None,
            notification={"message": "CO 90 mg/m3"},
            now=now,
            claimed_by="matrix",
            claimed_until=now,
        )
        assert row is not None
        # Finished, so that no deliverer of a later test picks it up as due.
        done = await finish_attempt(
            conn,
            delivery_id=row.id,
            claimed_by="matrix",
            attempt=AttemptRecord(1, now, "sent", 5.0),
            status="sent",
        )
        assert done is not None
    DELIVERY["id"] = row.id
    return row.id


@pytest.fixture(scope="module")
async def app_client(database_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = _settings(database_url)
    async with serve(settings) as c:
        yield c, settings


@pytest.mark.asyncio(loop_scope="session")
async def test_every_endpoint_is_in_the_matrix(database_url: str) -> None:
    routes = _routes(_settings(database_url))
    unlisted = routes - PUBLIC - SELF - STREAMS - set(MATRIX)
    assert not unlisted, f"add these endpoints to the permission matrix: {sorted(unlisted)}"
    stale = (set(MATRIX) | PUBLIC | SELF | STREAMS) - routes
    assert not stale, f"the matrix lists endpoints that no longer exist: {sorted(stale)}"


async def test_data_endpoints_refuse_callers_without_a_token(
    app_client: tuple[httpx.AsyncClient, Settings],
    alerts_everywhere: dict[str, int],
    reports_everywhere: dict[str, str],
    a_delivery: int,
) -> None:
    client, _ = app_client
    for (method, _path), probe in MATRIX.items():
        if isinstance(probe, Listing | RoleOnly):
            url = probe.url
        elif isinstance(probe, AdminOnly):
            url = probe.url()
        else:
            url = probe.url("E001")
        r = await client.request(method, url)
        assert r.status_code == 401, (method, url, r.status_code)
        assert r.headers["www-authenticate"] == "Bearer"
        r = await client.request(method, url, headers={"Authorization": "Bearer not-a-token"})
        assert r.status_code == 401, (method, url, r.status_code)


@pytest.mark.parametrize("username", sorted(SCOPED_USERS))
async def test_no_object_leaks_out_of_scope(
    username: str,
    database_url: str,
    enterprises: dict[str, str],
    app_client: tuple[httpx.AsyncClient, Settings],
    alerts_everywhere: dict[str, int],
    reports_everywhere: dict[str, str],
    a_delivery: int,
) -> None:
    client, settings = app_client
    role, regions, enterprise = SCOPED_USERS[username]
    user = ensure_user(database_url, username, role, regions, enterprise)
    headers = bearer(settings, user)
    scope = Scope.for_role(role, regions=regions, enterprise_id=enterprise)
    visible = {e for e, region in enterprises.items() if scope.covers(region, e)}
    assert visible, "every test user should see something"
    assert scope.national or len(visible) < len(enterprises)

    for (method, path), probe in MATRIX.items():
        if isinstance(probe, AdminOnly):
            r = await client.request(method, probe.url(), headers=headers)
            expected = 200 if role is Role.ADMIN else 403
            assert r.status_code == expected, (username, method, path, r.status_code, r.text)
            if expected == 403:
                assert set(r.json()) == {"detail"}, r.text
            continue
        if isinstance(probe, RoleOnly):
            body = probe.body() if probe.body else None
            r = await client.request(method, probe.url, json=body, headers=headers)
            if role in probe.roles:
                assert r.status_code in probe.allowed, (username, method, path, r.text)
            else:
                assert r.status_code == 403, (username, method, path, r.status_code, r.text)
            continue
        if isinstance(probe, Listing):
            r = await client.request(method, probe.url, params=probe.params, headers=headers)
            assert r.status_code == 200, (username, path, r.text)
            seen = probe.enterprises(r.json())
            leaked = (
                {e if e in enterprises else f"{e} (region)" for e in seen}
                - visible
                - {f"{r_} (region)" for r_ in set(enterprises.values())}
            )
            if path == "/api/v1/regions":
                # Count per region: the enterprises of the scope in that region, exactly.
                expected = sorted(enterprises[e] for e in visible)
                assert sorted(seen) == expected, (username, path)
                continue
            assert not leaked, (username, path, sorted(leaked))
            assert set(seen) <= visible, (username, path, sorted(set(seen) - visible))
            if probe.complete:
                assert set(seen) == visible, (username, path)
            continue
        for ent in enterprises:
            url = probe.url(ent)
            if probe.content is not None:
                r = await client.request(
                    method,
                    url,
                    content=probe.content(ent),
                    headers={**headers, "Content-Type": probe.content_type},
                )
            else:
                body = probe.body(ent) if probe.body else None
                r = await client.request(method, url, json=body, headers=headers)
            if role in probe.refused:
                assert r.status_code == 403, (username, method, url, r.status_code, r.text)
            elif ent in visible:
                assert r.status_code in probe.allowed, (username, method, url, r.text)
            else:
                assert r.status_code == 404, (username, method, url, r.status_code, r.text)
                # The refusal says nothing about the object beyond the id asked for.
                assert set(r.json()) == {"detail"}, r.text
