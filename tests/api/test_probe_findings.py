"""What a black-box probe of the API found (issue 10, part 5), each asked again.

Every answer here is a documented 4xx or a 200 with finite numbers, never a 500;
the lockout says nothing about which user names exist; a token signed with the
key earlier versions published is worth nothing.
"""

from __future__ import annotations

import importlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import psycopg
import pytest

from alerts.lifecycle import apply_machine_events
from api.security import hash_password
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.reference import load_reference
from core.settings import Settings
from storage import people
from storage.reference import seed_reference
from tests.asgi import serve
from tests.people import PASSWORD, bearer, ensure_user

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Published as the development key in the source of earlier versions.
OLD_PUBLISHED_KEY = "qorgau-development-secret-do-not-use-in-production"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The demo's settings: development, nothing configured, its own state directory."""
    return Settings(_env_file=None, database_url=database_url, state_dir=tmp_path)  # type: ignore[call-arg]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as c:
        yield c


async def test_a_token_signed_with_the_old_published_key_is_refused(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    admin = ensure_user(database_url, "t-probe-admin", Role.ADMIN)
    now = int(time.time())
    claims = {
        "iss": "qorgau",
        "sub": str(admin.id),
        "ver": admin.token_version,
        "typ": "access",
        "iat": now,
        "exp": now + 600,
    }
    forged = jwt.encode(claims, OLD_PUBLISHED_KEY, algorithm="HS256")
    r = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401, r.text
    assert r.json()["detail"].startswith("invalid token")
    # The stack's own key, from its state directory, is what signs.
    assert (await client.get("/api/v1/users/me", headers=bearer(settings, admin))).is_success
    assert settings.jwt_secret.get_secret_value() == (settings.state_dir / "jwt-secret").read_text()


# --- numbers out of range -----------------------------------------------------------------

HUGE = "99999999999999999999"  # past int64


async def test_numbers_past_what_postgresql_holds_are_a_422(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    headers = bearer(settings, ensure_user(database_url, "t-probe-admin", Role.ADMIN))
    probes = [
        ("/api/v1/alerts", {"offset": HUGE}, ("query", "offset")),
        ("/api/v1/alerts", {"offset": str(2**63 - 1)}, ("query", "offset")),
        ("/api/v1/alerts", {"limit": HUGE}, ("query", "limit")),
        ("/api/v1/enterprises", {"offset": HUGE}, ("query", "offset")),
        ("/api/v1/deliveries", {"offset": HUGE}, ("query", "offset")),
        (f"/api/v1/alerts/{HUGE}", {}, ("path", "alert_id")),
        (f"/api/v1/alerts/{2**63}", {}, ("path", "alert_id")),
        ("/api/v1/alerts/0", {}, ("path", "alert_id")),
        (f"/api/v1/deliveries/{HUGE}", {}, ("path", "delivery_id")),
        ("/api/v1/alerts/feed", {"after": HUGE}, ("query", "after")),
        ("/api/v1/sensors/E001-S01/readings", {"max_points": HUGE}, ("query", "max_points")),
        # Instants Python cannot shift by an hour, or convert to UTC
        ("/api/v1/sensors/E001-S01/readings", {"end": "0001-01-01T00:00:00Z"}, ("query", "end")),
        ("/api/v1/alerts", {"since": "0001-01-01T00:00:00+05:00"}, ("query", "since")),
        ("/api/v1/alerts", {"until": "9999-12-31T23:59:59-14:00"}, ("query", "until")),
    ]
    for url, params, loc in probes:
        r = await client.get(url, params=params, headers=headers)
        assert r.status_code == 422, (url, params, r.status_code, r.text)
        [error] = r.json()["detail"]
        assert tuple(error["loc"]) == loc, (url, error)
        assert error["msg"], error
    r = await client.get("/api/v1/alerts", params={"offset": HUGE}, headers=headers)
    assert r.json()["detail"][0]["msg"] == "Input should be less than or equal to 1000000"
    # The largest offset allowed is answered, empty.
    r = await client.get("/api/v1/alerts", params={"offset": 1_000_000}, headers=headers)
    assert r.status_code == 200 and r.json()["items"] == []


async def test_every_numeric_parameter_has_bounds(client: httpx.AsyncClient) -> None:
    """A new route cannot forget: every integer parameter says its least and most."""
    doc = (await client.get("/openapi.json")).json()
    unbounded = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for param in operation.get("parameters", []):
                schema = param["schema"]
                alternatives = schema.get("anyOf", [schema])
                for alt in alternatives:
                    has_min = "minimum" in alt or "exclusiveMinimum" in alt
                    has_max = "maximum" in alt or "exclusiveMaximum" in alt
                    if alt.get("type") in ("integer", "number") and not (has_min and has_max):
                        unbounded.append((method, path, param["name"]))
    assert not unbounded, unbounded


# --- NUL characters -----------------------------------------------------------------------


def _nul_refusal(r: httpx.Response, loc: tuple[str | int, ...]) -> None:
    assert r.status_code == 422, (r.status_code, r.text)
    errors = r.json()["detail"]
    assert any(tuple(e["loc"]) == loc for e in errors), errors
    error = next(e for e in errors if tuple(e["loc"]) == loc)
    assert error["type"] == "string_nul"
    assert "NUL" in error["msg"]


async def test_a_nul_character_anywhere_is_a_422(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    # The unauthenticated sign-in form: URL-encoded (%00) and multipart.
    for name, password in (("t-probe\x00admin", "x"), ("t-probe-admin", "pass\x00word")):
        r = await client.post(
            "/api/v1/login/access-token", data={"username": name, "password": password}
        )
        _nul_refusal(r, ("body", "username" if "\x00" in name else "password"))
    r = await client.post(
        "/api/v1/login/access-token",
        files={"username": (None, "a\x00b"), "password": (None, "secret")},
    )
    _nul_refusal(r, ("body", "username"))
    r = await client.post(
        "/api/v1/login/access-token",
        content=b"username=a%00b&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _nul_refusal(r, ("body", "username"))
    # JSON: the escape \u0000, in a value or a key.
    r = await client.post(
        "/api/v1/login/refresh",
        content=b'{"refresh_token": "a\\u0000b"}',
        headers={"Content-Type": "application/json"},
    )
    _nul_refusal(r, ("body", "refresh_token"))

    headers = bearer(settings, ensure_user(database_url, "t-probe-admin", Role.ADMIN))
    _nul_refusal(
        await client.get("/api/v1/alerts", params={"region_id": "KZ\x0035"}, headers=headers),
        ("query", "region_id"),
    )
    _nul_refusal(
        await client.get("/api/v1/deliveries?alert_key=%00", headers=headers),
        ("query", "alert_key"),
    )
    _nul_refusal(
        await client.get("/api/v1/enterprises/E0%0001", headers=headers), ("path", "enterprise_id")
    )
    _nul_refusal(
        await client.get("/api/v1/sensors/E001-S01%00/readings", headers=headers),
        ("path", "sensor_id"),
    )
    _nul_refusal(
        await client.delete("/api/v1/push/subscriptions?endpoint=https://x/%00", headers=headers),
        ("query", "endpoint"),
    )
    r = await client.post(
        "/api/v1/alerts/1/comments",
        content=b'{"text": "seen\\u0000", "x\\u0000": 1}',
        headers={**headers, "Content-Type": "application/json"},
    )
    _nul_refusal(r, ("body", "text"))
    _nul_refusal(r, ("body", "x\x00"))
    # An ordinary request still passes.
    assert (
        await client.get("/api/v1/alerts", params={"region_id": "KZ-35"}, headers=headers)
    ).is_success


async def test_a_lone_surrogate_in_json_is_a_422(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    """JSON's \\ud800 escape is no character: PostgreSQL (and UTF-8) cannot hold it."""
    headers = bearer(settings, ensure_user(database_url, "t-probe-admin", Role.ADMIN))
    for url, body, loc in (
        ("/api/v1/alerts/1/comments", b'{"text": "seen \\ud800"}', ("body", "text")),
        ("/api/v1/login/refresh", b'{"refresh_token": "\\udfff"}', ("body", "refresh_token")),
        (
            "/api/v1/push/subscriptions",
            b'{"endpoint": "https://fcm.googleapis.com/\\ud800", "keys": {}}',
            ("body", "endpoint"),
        ),
    ):
        r = await client.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (url, r.status_code, r.text)
        [error] = [e for e in r.json()["detail"] if tuple(e["loc"]) == loc]
        assert error["type"] == "string_surrogate", error
        assert "surrogate" in error["msg"]


async def test_nan_or_infinity_in_a_json_body_is_a_422_that_is_json(
    client: httpx.AsyncClient, settings: Settings, database_url: str
) -> None:
    """Python's JSON parser takes NaN and Infinity; echoing one back must not fail."""

    def strict(text: str) -> object:
        def refuse(constant: str) -> object:
            raise AssertionError(f"{constant} in an answer")

        return json.loads(text, parse_constant=refuse)

    headers = bearer(settings, ensure_user(database_url, "t-probe-admin", Role.ADMIN))
    for url, body in (
        ("/api/v1/alerts/1/comments", b'{"text": NaN}'),
        ("/api/v1/alerts/1/resolve", b'{"reason": Infinity}'),
        (
            "/api/v1/push/subscriptions",
            b'{"endpoint": "https://fcm.googleapis.com/x",'
            b' "expirationTime": -Infinity, "keys": {"p256dh": 1e999, "auth": "x"}}',
        ),
        ("/api/v1/login/refresh", b'{"refresh_token": -Infinity}'),
    ):
        r = await client.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, (url, r.status_code, r.text)
        strict(r.text)


# --- numbers that are not finite -----------------------------------------------------------

INF, NAN = float("inf"), float("nan")
# The module (`storage.migrate` the attribute is its function, re-exported by `storage`).
migrations = importlib.import_module("storage.migrate")


def _migrate_before(url: str, version: str) -> None:
    """Migrate ``url`` with the migrations older than ``version`` only (a database as an
    earlier release left it)."""
    older = [m for m in migrations.available_migrations() if m.version < version]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(migrations, "available_migrations", lambda: older)
        migrations.migrate(url)


def _event(sensor: str, ts: datetime, value: float, limit: float) -> AlertEvent:
    return AlertEvent(
        action=AlertAction.OPEN,
        key=f"{sensor}|threshold|{ts.isoformat()}",
        kind=AlertKind.THRESHOLD,
        severity=Severity.CRITICAL,
        enterprise_id=sensor.split("-")[0],
        sensor_id=sensor,
        hazard="co",
        ts=ts,
        value=value,
        limit=limit,
        message="CO beyond anything",
        details={"source": "rule"},
    )


async def _store(
    url: str, *events: AlertEvent, readings: list[tuple[str, datetime, float]]
) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await apply_machine_events(conn, list(events))
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO readings (sensor_id, ts, enterprise_id, hazard, value, unit,"
                " raw_value, raw_unit) VALUES (%s, %s, 'E001', 'co', %s, 'mg/m3', %s, 'ppm')",
                [(s, ts, v, v) for s, ts, v in readings],
            )


def _strict_json(r: httpx.Response) -> Any:
    def refuse(constant: str) -> object:
        raise AssertionError(f"{constant} in {r.request.url}")

    assert r.status_code == 200, (r.request.url, r.status_code, r.text)
    return json.loads(r.text, parse_constant=refuse)


async def test_stored_infinities_are_null_never_a_500(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A 1.7e308 ppm reading became +inf mg/m3. Whatever is stored (readings cannot be
    null; other paths may still store one) is sent as null, in lists, details, a
    refusal's body and a downsampled series, and such a reading is not plausible."""
    url = empty_database_url
    migrations.migrate(url)
    seed_reference(url, load_reference())
    now = datetime.now(UTC).replace(microsecond=0)
    before = now - timedelta(minutes=20)
    await _store(
        url,
        _event("E001-S01", before, INF, INF),
        _event("E001-S02", now - timedelta(minutes=5), NAN, -INF),
        readings=[
            ("E001-S01", before, INF),
            ("E001-S01", before + timedelta(seconds=10), 5.0),
            ("E001-S02", now - timedelta(minutes=5), -INF),
            ("E001-S01", now, NAN),
        ],
    )

    settings = Settings(_env_file=None, database_url=url, state_dir=tmp_path)  # type: ignore[call-arg]
    admin = ensure_user(url, "t-probe-inf-admin", Role.ADMIN)
    async with serve(settings, headers=bearer(settings, admin)) as client:
        page = _strict_json(await client.get("/api/v1/alerts"))
        assert page["total"] == 2
        assert {(a["value"], a["limit"]) for a in page["items"]} == {(None, None)}
        for alert in page["items"]:
            detail = _strict_json(await client.get(f"/api/v1/alerts/{alert['id']}"))
            assert detail["alert"]["value"] is None
            assert all(h["value"] is None for h in detail["history"])
            points = detail["readings"]["points"]
            assert points and all(p["plausible"] is False for p in points if p["value"] is None), (
                points
            )
        # A refusal carries the alert as it is: acknowledged twice, the 409 is JSON too.
        first = page["items"][0]["id"]
        assert (await client.post(f"/api/v1/alerts/{first}/acknowledge")).status_code == 200
        r = await client.post(f"/api/v1/alerts/{first}/acknowledge")
        assert r.status_code == 409
        assert json.loads(r.text, parse_constant=float)["alert"]["value"] is None
        # Sensors and their series: raw, and downsampled into buckets.
        sensor = _strict_json(await client.get("/api/v1/sensors/E001-S01"))
        assert sensor["last_value"] is None
        listed = _strict_json(await client.get("/api/v1/enterprises/E001/sensors"))
        assert {s["id"]: s["last_value"] for s in listed}["E001-S02"] is None
        series = _strict_json(
            await client.get(
                "/api/v1/sensors/E001-S01/readings",
                params={"start": (now - timedelta(hours=1)).isoformat()},
            )
        )
        assert [(p["value"], p["plausible"]) for p in series["points"]] == [
            (None, False),
            (5.0, True),
            (None, False),
        ]
        # Fifteen readings of E001-S03, one infinite, downsampled into buckets.
        start = now - timedelta(minutes=30)
        await _store(
            url,
            readings=[
                ("E001-S03", start + timedelta(seconds=10 * i), INF if i == 7 else 1.0 + i)
                for i in range(15)
            ],
        )
        wide = _strict_json(
            await client.get(
                "/api/v1/sensors/E001-S03/readings",
                params={"start": start.isoformat(), "max_points": 10},
            )
        )
        assert wide["downsampled"] is True
        broken = [p for p in wide["points"] if p["value"] is None]
        assert len(broken) == 1 and broken[0]["max"] is None and broken[0]["plausible"] is False
        assert all(p["plausible"] for p in wide["points"] if p["value"] is not None)


# --- the sign-in lockout ------------------------------------------------------------------


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/login/access-token", data={"username": username, "password": password}
    )


async def test_the_lockout_answers_alike_for_names_nobody_has(
    client: httpx.AsyncClient, database_url: str
) -> None:
    """Wrong passwords lock a name that does not exist exactly like a real one: the same
    401s, then the same 429 with the same Retry-After; a new password lifts a real lock."""
    from api.routes.login import MAX_FAILED_SIGN_INS

    real = f"t-probe-real-{uuid.uuid4().hex[:8]}"
    ensure_user(database_url, real, Role.SAFETY_OFFICER, [], "E004")
    nobody = f"t-probe-nobody-{uuid.uuid4().hex[:8]}"
    answers: dict[str, list[httpx.Response]] = {real: [], nobody: []}
    for _ in range(MAX_FAILED_SIGN_INS + 2):
        for name in (real, nobody):
            answers[name].append(await _sign_in(client, name, "a wrong password"))
    for mine, theirs in zip(answers[real], answers[nobody], strict=True):
        assert mine.status_code == theirs.status_code
        assert mine.json() == theirs.json()
        assert set(mine.headers) == set(theirs.headers)
        if mine.status_code == 429:
            assert abs(int(mine.headers["retry-after"]) - int(theirs.headers["retry-after"])) <= 1
    assert [r.status_code for r in answers[nobody]] == [401] * MAX_FAILED_SIGN_INS + [429] * 2
    assert 14 * 60 < int(answers[nobody][-1].headers["retry-after"]) <= 15 * 60
    # Even the right password waits, for the real name; until an admin sets a new one.
    assert (await _sign_in(client, real, PASSWORD)).status_code == 429
    with psycopg.connect(database_url) as conn:
        user = people.get_user_by_username(conn, username=real)
        assert user is not None
        people.update_user(conn, username=real, password_hash=user.password_hash)
    assert (await _sign_in(client, real, PASSWORD)).status_code == 200
    assert (await _sign_in(client, nobody, PASSWORD)).status_code == 429


async def test_a_name_nobody_has_costs_the_same_work(
    client: httpx.AsyncClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same steps, in the same order, for a wrong password of a real name and of a
    made-up one: a lock check, a lookup, one Argon2 check, one count (so no timing tells
    them apart)."""
    from api.routes import login

    calls: list[str] = []

    def spy(name: str, fn: Any) -> Any:
        if name == "verify_password":  # run in a thread: a plain function

            def sync_spy(*args: Any) -> Any:
                calls.append(name)
                return fn(*args)

            return sync_spy

        async def async_spy(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return await fn(*args, **kwargs)

        return async_spy

    for name in ("sign_in_lock", "find_user", "record_failed_sign_in"):
        monkeypatch.setattr(login.people, name, spy(name, getattr(people, name)))
    monkeypatch.setattr(login, "verify_password", spy("verify_password", login.verify_password))

    real = f"t-probe-steps-{uuid.uuid4().hex[:8]}"
    ensure_user(database_url, real, Role.WORKER, [], "E004")
    for name in (real, f"t-probe-ghost-{uuid.uuid4().hex[:8]}"):
        calls.clear()
        assert (await _sign_in(client, name, "a wrong password")).status_code == 401
        assert calls == [
            "sign_in_lock",
            "find_user",
            "verify_password",
            "record_failed_sign_in",
        ], (name, calls)


async def test_sign_in_fields_are_bounded(client: httpx.AsyncClient) -> None:
    r = await _sign_in(client, "x" * 65, "password")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "username"]
    r = await _sign_in(client, "t-probe-admin", "p" * 1025)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"]


async def test_a_names_wrong_passwords_are_forgotten_a_day_later(database_url: str) -> None:
    name = f"t-probe-forgotten-{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        for _ in range(3):
            await people.record_failed_sign_in(
                conn,
                username=name,
                limit=3,
                lock_for=timedelta(minutes=15),
                forget_after=timedelta(days=1),
            )
        assert await people.sign_in_lock(conn, username=name) is not None
        # Two days on, the lock long over: the name starts again from nothing.
        await conn.execute(
            "UPDATE sign_in_failures SET last_failed_at = now() - interval '2 days',"
            " locked_until = now() - interval '2 days' WHERE username = %s",
            (name,),
        )
        locked = await people.record_failed_sign_in(
            conn,
            username=name,
            limit=3,
            lock_for=timedelta(minutes=15),
            forget_after=timedelta(days=1),
        )
        assert locked is None
        cur = await conn.execute(
            "SELECT failures FROM sign_in_failures WHERE username = %s", (name,)
        )
        assert await cur.fetchone() == (1,)


async def test_migration_0012_repairs_infinities_and_keeps_locks(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A database as the release before left it: non-finite alert values become null,
    and a user locked on their row stays locked, now by name."""
    url = empty_database_url
    _migrate_before(url, "0012")
    with psycopg.connect(url) as conn:
        # Today's reference data carries a column a later migration (0017) adds, as it will.
        conn.execute("ALTER TABLE enterprises ADD COLUMN IF NOT EXISTS emergency_phone text")
    seed_reference(url, load_reference())
    await _store(
        url,
        _event("E001-S01", datetime.now(UTC) - timedelta(minutes=3), INF, NAN),
        readings=[],
    )
    with psycopg.connect(url) as conn:
        # Written as that release's schema holds a user (today's code reads later columns).
        conn.execute(
            "INSERT INTO users (username, role, enterprise_id, password_hash, failed_sign_ins,"
            " locked_until) VALUES ('t-probe-was-locked', 'worker', 'E001', %s, 10,"
            " now() + interval '10 minutes')",
            (hash_password(PASSWORD),),
        )
    migrations.migrate(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT value, limit_value FROM alerts").fetchall() == [(None, None)]
        assert conn.execute("SELECT value FROM alert_history").fetchall() == [(None,)]
        assert conn.execute("SELECT value FROM alert_events").fetchall() == [(None,)]
    settings = Settings(_env_file=None, database_url=url, state_dir=tmp_path)  # type: ignore[call-arg]
    async with serve(settings) as client:
        r = await _sign_in(client, "t-probe-was-locked", PASSWORD)
        assert r.status_code == 429
        assert 9 * 60 < int(r.headers["retry-after"]) <= 10 * 60
