"""Workers' accounts over the real API and a real PostgreSQL: a roster of 5,000 with bad
lines, re-imported, a failure inside the write, arbitrary bytes as a roster, and the
one-time activation codes (once, expiry, re-issue, guessing locked out)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import create_app
from core.access import Role
from core.activation import code_key
from core.roster import parse_roster
from core.settings import Settings
from storage import accounts
from tests.asgi import serve
from tests.conftest import seeded_database
from tests.people import bearer, ensure_user

_on_loop = pytest.mark.asyncio(loop_scope="session")

HEADER = "name,personnel_number,zone,phone"


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """A database of this module's own: it counts every worker of an enterprise."""
    with seeded_database() as url:
        yield url


@pytest.fixture(scope="module")
def app_settings(own_db: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=own_db,
        state_dir=tmp_path_factory.mktemp("workers-state"),
        public_url="https://qorgau.example.kz/",
    )


@pytest.fixture(scope="module")
async def client(app_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app_settings) as c:
        yield c


def _officer(settings: Settings, enterprise: str) -> dict[str, str]:
    user = ensure_user(
        str(settings.database_url),
        f"t-w-officer-{enterprise.lower()}",
        Role.SAFETY_OFFICER,
        [],
        enterprise,
    )
    return bearer(settings, user)


def _zones(dsn: str, enterprise: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return dict(
            conn.execute(
                "SELECT id, name FROM zones WHERE enterprise_id = %s ORDER BY id", (enterprise,)
            ).fetchall()
        )


def _count(dsn: str, query: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


async def _import(
    client: httpx.AsyncClient, enterprise: str, data: bytes, headers: dict[str, str], **params: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/enterprises/{enterprise}/workers/import",
        content=data,
        params=params,
        headers={**headers, "Content-Type": "text/csv"},
    )


def _roster_of_5000(zones: dict[str, str]) -> tuple[bytes, dict[int, str | None]]:
    """5,000 workers (zones by id and by name, phones written several ways) and among
    them bad lines of every kind: line -> the column its error names."""
    ids = sorted(zones)
    lines = [HEADER.encode()]
    for i in range(5000):
        zone = ids[i % len(ids)] if i % 2 else zones[ids[i % len(ids)]]
        phone = f"8 701 {i:07d}" if i % 3 else f"+7 (777) {i:07d}"
        lines.append(f"Работник Номер {i},{100000 + i},{zone},{phone}".encode())
    bad: dict[int, str | None] = {}

    def put(line: int, raw: bytes, column: str | None) -> None:
        lines[line - 1] = raw
        bad[line] = column

    put(101, f"Unknown Zone,{100099},Nowhere,".encode(), "zone")
    put(502, f"Bad Phone,{100500},{ids[0]},12-34".encode(), "phone")
    put(1203, f"Dup One,777777,{ids[0]},".encode(), "personnel_number")
    put(4004, f"Dup Two,777777,{ids[0]},".encode(), "personnel_number")
    put(2005, f",{102003},{ids[0]},".encode(), "name")
    put(3006, f"Too Many,{103004},{ids[0]},,extra".encode(), None)
    put(3507, f'"Broken quote,{103505},{ids[0]},'.encode(), None)
    put(4508, b"Caf\xe9 Latin1," + f"{104506},{ids[0]},".encode(), None)
    return b"\n".join(lines) + b"\n", bad


@_on_loop
async def test_5000_workers_with_bad_lines_then_again_unchanged(
    client: httpx.AsyncClient, app_settings: Settings, own_db: str
) -> None:
    headers = _officer(app_settings, "E002")
    data, bad = _roster_of_5000(_zones(own_db, "E002"))

    r = await _import(client, "E002", data, headers, dry_run="true")
    assert r.status_code == 200, r.text
    dry = r.json()
    assert (dry["dry_run"], dry["created"], dry["codes"]) == (True, 5000 - len(bad), [])
    assert (
        _count(
            own_db, "SELECT count(*) FROM users WHERE enterprise_id = 'E002' AND role = 'worker'"
        )
        == 0
    )

    started = time.perf_counter()
    r = await _import(client, "E002", data, headers)
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    body = r.json()
    print(f"import of 5,000 lines through the API: {elapsed:.2f} s")
    assert body["rows_read"] == 5000
    assert body["created"] == 5000 - len(bad) == len(body["codes"])
    assert (body["updated"], body["unchanged"], body["refused"]) == (0, 0, len(bad))
    assert [(e["line"], e["column"]) for e in body["errors"]] == sorted(bad.items())
    # The rows' line numbers are the file's: line 2 is the first worker.
    first = next(c for c in body["codes"] if c["line"] == 2)
    assert first["username"] == "e002.100000"
    assert first["link"] == f"https://qorgau.example.kz/app/#activate={first['code']}"
    assert len({c["code"] for c in body["codes"]}) == len(body["codes"])
    workers = "SELECT count(*) FROM users WHERE enterprise_id = 'E002' AND role = 'worker'"
    assert _count(own_db, workers) == 5000 - len(bad)
    assert _count(
        own_db,
        "SELECT count(*) FROM users u JOIN activation_codes c ON c.user_id = u.id"
        " WHERE u.enterprise_id = 'E002' AND u.password_hash IS NULL"
        " AND c.expires_at BETWEEN now() + interval '13 days 23 hours' AND now() + interval '14 days'",
    ) == 5000 - len(bad)
    # No code is stored in clear.
    assert (
        _count(own_db, "SELECT count(*) FROM activation_codes WHERE code_hash = %s", first["code"])
        == 0
    )

    with psycopg.connect(own_db) as conn:
        hashes_before = conn.execute(
            "SELECT user_id, code_hash FROM activation_codes ORDER BY 1"
        ).fetchall()
    r = await _import(client, "E002", data, headers)
    again = r.json()
    assert (again["created"], again["updated"], again["unchanged"], again["codes"]) == (
        0,
        0,
        5000 - len(bad),
        [],
    )
    assert [(e["line"], e["column"]) for e in again["errors"]] == sorted(bad.items())
    with psycopg.connect(own_db) as conn:
        assert (
            conn.execute("SELECT user_id, code_hash FROM activation_codes ORDER BY 1").fetchall()
            == hashes_before
        )

    # The bad lines mended, one worker moved and renamed: two created, one updated.
    fixed = (
        data.replace(b"Nowhere", _zones(own_db, "E002").popitem()[0].encode())
        .replace(b"12-34", b"+77010000000")
        .replace("Работник Номер 7,".encode(), "Работница Номер 7,".encode())
    )
    r = await _import(client, "E002", fixed, headers)
    mended = r.json()
    assert (mended["created"], mended["updated"]) == (2, 1), mended["errors"]
    assert {c["line"] for c in mended["codes"]} == {101, 502}


@_on_loop
async def test_a_roster_that_cannot_be_read_is_a_422_and_writes_nothing(
    client: httpx.AsyncClient, app_settings: Settings, own_db: str
) -> None:
    headers = _officer(app_settings, "E004")
    for data in (b"", b"name;zone\nA;B\n", "ФИО;Табельный номер;Участок\n".encode("cp1251")):
        r = await _import(client, "E004", data, headers)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body"]
        assert "line" in r.json()["detail"][0]["msg"] or "empty" in r.json()["detail"][0]["msg"]
    r = await _import(client, "E004", b"x" * (10 * 1024 * 1024 + 1), headers)
    assert r.status_code == 413, r.text
    assert (
        _count(
            own_db, "SELECT count(*) FROM users WHERE enterprise_id = 'E004' AND role = 'worker'"
        )
        == 0
    )


@_on_loop
@pytest.mark.parametrize("how", ["error raised", "connection killed"])
async def test_a_failure_inside_the_write_leaves_nothing(own_db: str, how: str) -> None:
    """The codes are written last: a failure on the first of them (a real database error
    from a trigger, or the connection itself killed) must take the new workers, and the
    update of an existing one, with it."""
    zones = _zones(own_db, "E006")
    zone = next(iter(zones))
    key = code_key("test secret")
    async with await psycopg.AsyncConnection.connect(own_db) as conn:
        before = parse_roster(f"{HEADER}\nKept Name,k-1,{zone},\n".encode(), zones=zones)
        await accounts.import_roster(
            conn,
            enterprise_id="E006",
            rows=before.rows,
            key=key,
            valid_for=timedelta(days=1),
            issued_by="t",
        )
        await conn.commit()
    action = (
        "RAISE EXCEPTION 'disk full (simulated)'"
        if how == "error raised"
        else "PERFORM pg_terminate_backend(pg_backend_pid())"
    )
    with psycopg.connect(own_db, autocommit=True) as admin:
        admin.execute(
            f"CREATE OR REPLACE FUNCTION t_fail_codes() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN {action}; RETURN NEW; END $$"
        )
        admin.execute(
            "CREATE TRIGGER t_fail_codes BEFORE INSERT ON activation_codes FOR EACH ROW"
            " WHEN (NEW.issued_by = 'doomed') EXECUTE FUNCTION t_fail_codes()"
        )
    try:
        roster = parse_roster(
            (
                f"{HEADER}\nRenamed,k-1,{zone},\n"
                + "".join(f"New {i},n-{i},{zone},\n" for i in range(50))
            ).encode(),
            zones=zones,
        )
        async with await psycopg.AsyncConnection.connect(own_db) as conn:
            with pytest.raises((psycopg.errors.RaiseException, psycopg.OperationalError)):
                await accounts.import_roster(
                    conn,
                    enterprise_id="E006",
                    rows=roster.rows,
                    key=key,
                    valid_for=timedelta(days=1),
                    issued_by="doomed",
                )
                await conn.commit()
    finally:
        with psycopg.connect(own_db, autocommit=True) as admin:
            admin.execute("DROP TRIGGER t_fail_codes ON activation_codes")
    assert (
        _count(
            own_db, "SELECT count(*) FROM users WHERE enterprise_id = 'E006' AND role = 'worker'"
        )
        == 1
    )
    assert _count(own_db, "SELECT count(*) FROM users WHERE full_name = 'Kept Name'") == 1
    assert _count(own_db, "SELECT count(*) FROM users WHERE personnel_number LIKE 'n-%%'") == 0


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(
    body=st.binary(max_size=300)
    | st.lists(
        st.sampled_from(
            [HEADER.encode(), b"\n", b",", b";", b'"', b"\r", b"\x00", b"\xd0", b"E007-Z01",
             b"Name", b"42", b"+77012345678", b"\xef\xbb\xbf", b"  "]
        ),
        max_size=40,
    ).map(b"".join)
)  # fmt: skip
def test_arbitrary_bytes_never_a_500_nor_half_a_worker(
    body: bytes, own_db: str, app_settings: Settings
) -> None:
    headers = _officer(app_settings, "E007")
    with TestClient(create_app(app_settings), raise_server_exceptions=True) as c:
        r = c.post(
            "/api/v1/enterprises/E007/workers/import",
            content=body,
            headers={**headers, "Content-Type": "text/csv"},
        )
    assert r.status_code in (200, 422), r.text
    with psycopg.connect(own_db) as conn:
        half = conn.execute(
            "SELECT count(*) FROM users WHERE enterprise_id = 'E007' AND role = 'worker' AND"
            " (full_name = '' OR personnel_number IS NULL OR zone_id IS NULL"
            "  OR NOT EXISTS (SELECT 1 FROM zones z WHERE z.id = zone_id AND z.enterprise_id = 'E007')"
            "  OR (password_hash IS NULL AND NOT EXISTS"
            "      (SELECT 1 FROM activation_codes c WHERE c.user_id = users.id)))"
        ).fetchone()
    assert half == (0,)


# --- activation ---------------------------------------------------------------------------


@pytest.fixture
async def one_worker(
    client: httpx.AsyncClient, app_settings: Settings, own_db: str
) -> dict[str, Any]:
    """A worker of E003 just imported, with their code; guessing counts forgotten."""
    with psycopg.connect(own_db) as conn:
        conn.execute("DELETE FROM activation_failures")
        n = conn.execute("SELECT count(*) FROM users").fetchone()
    assert n is not None
    zone = next(iter(_zones(own_db, "E003")))
    r = await _import(
        client,
        "E003",
        f"{HEADER}\nAct Worker {n[0]},act-{n[0]},{zone},\n".encode(),
        _officer(app_settings, "E003"),
    )
    assert r.status_code == 200, r.text
    (issued,) = r.json()["codes"]
    return dict(issued)


async def _activate(
    client: httpx.AsyncClient, code: str, password: str = "a brand new password"
) -> httpx.Response:
    return await client.post("/api/v1/login/activate", json={"code": code, "password": password})


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/login/access-token", data={"username": username, "password": password}
    )


@_on_loop
async def test_a_code_works_once_and_the_worker_then_signs_in(
    client: httpx.AsyncClient, one_worker: dict[str, Any]
) -> None:
    name = one_worker["username"]
    # Not activated: no password works, and the answer is a wrong password's.
    nobody = await _sign_in(client, "t-no-such-user-at-all", "whatever it is")
    r = await _sign_in(client, name, "whatever it is")
    assert (r.status_code, r.json()) == (nobody.status_code, nobody.json()) == (401, nobody.json())

    r = await _activate(client, one_worker["code"], "short")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "password"], r.text
    r = await _activate(client, "not a code")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "code"], r.text

    typed = one_worker["code"].lower().replace("-", " ")  # as typed from a slip
    r = await _activate(client, typed)
    assert r.status_code == 200, r.text
    me = await client.get(
        "/api/v1/users/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert (me.status_code, me.json()["username"], me.json()["role"]) == (200, name, "worker")

    r = await _activate(client, one_worker["code"], "another new password")
    assert r.status_code == 401, r.text
    assert (await _sign_in(client, name, "another new password")).status_code == 401
    assert (await _sign_in(client, name, "a brand new password")).status_code == 200


@_on_loop
async def test_an_expired_code_is_refused(
    client: httpx.AsyncClient, one_worker: dict[str, Any], own_db: str
) -> None:
    with psycopg.connect(own_db) as conn:
        conn.execute(
            "UPDATE activation_codes SET expires_at = now() - interval '1 second'"
            " WHERE user_id = (SELECT id FROM users WHERE username = %s)",
            (one_worker["username"],),
        )
    r = await _activate(client, one_worker["code"])
    assert r.status_code == 401 and "expired" in r.json()["detail"], r.text
    assert (
        await _sign_in(client, one_worker["username"], "a brand new password")
    ).status_code == 401


@_on_loop
async def test_a_new_code_replaces_the_old_and_workers_are_listed(
    client: httpx.AsyncClient, one_worker: dict[str, Any], app_settings: Settings
) -> None:
    officer = _officer(app_settings, "E003")
    url = f"/api/v1/enterprises/E003/workers/{one_worker['username']}/activation"
    r = await client.post(url, headers=officer)
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["code"] != one_worker["code"] and fresh["line"] is None
    assert (await _activate(client, one_worker["code"])).status_code == 401
    listed = (
        await client.get("/api/v1/enterprises/E003/workers", params={"limit": 500}, headers=officer)
    ).json()
    mine = next(w for w in listed if w["username"] == one_worker["username"])
    assert (mine["activated"], mine["code_expires_at"] is not None) == (False, True)
    assert (await _activate(client, fresh["code"])).status_code == 200
    listed = (
        await client.get("/api/v1/enterprises/E003/workers", params={"limit": 500}, headers=officer)
    ).json()
    mine = next(w for w in listed if w["username"] == one_worker["username"])
    assert (mine["activated"], mine["code_expires_at"]) == (True, None)
    # Another enterprise's officer: as if there were no such enterprise.
    r = await client.post(url, headers=_officer(app_settings, "E001"))
    assert r.status_code == 404
    # A user name the enterprise has no worker of.
    r = await client.post(
        "/api/v1/enterprises/E003/workers/t-w-officer-e003/activation", headers=officer
    )
    assert r.status_code == 404


@_on_loop
async def test_guessing_codes_is_locked_out(
    client: httpx.AsyncClient, one_worker: dict[str, Any], own_db: str
) -> None:
    from api.routes.login import MAX_FAILED_ACTIVATIONS

    try:
        for i in range(MAX_FAILED_ACTIVATIONS):
            r = await _activate(client, f"0000-0000-{i:04d}")
            assert r.status_code == 401, (i, r.text)
        r = await _activate(client, one_worker["code"])  # even the right one, while locked
        assert r.status_code == 429, r.text
        assert 0 < int(r.headers["retry-after"]) <= 15 * 60
        # The right code is not used up by the refusal: once the lock ends, it works.
        with psycopg.connect(own_db) as conn:
            conn.execute("UPDATE activation_failures SET locked_until = now() - interval '1 s'")
        assert (await _activate(client, one_worker["code"])).status_code == 200
        assert _count(own_db, "SELECT count(*) FROM activation_failures") == 0
    finally:
        with psycopg.connect(own_db) as conn:
            conn.execute("DELETE FROM activation_failures")


@_on_loop
async def test_activation_survives_concurrent_use_of_one_code(
    client: httpx.AsyncClient, one_worker: dict[str, Any]
) -> None:
    answers = await asyncio.gather(*(_activate(client, one_worker["code"]) for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 401, 401, 401]


def test_the_migration_holds_zones_to_the_workers_enterprise(own_db: str) -> None:
    with psycopg.connect(own_db) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            "INSERT INTO users (username, role, enterprise_id, zone_id, personnel_number)"
            " VALUES ('t-w-zone', 'worker', 'E001', 'E002-Z01', 'z-1')"
        )
    with psycopg.connect(own_db) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO users (username, role) VALUES ('t-w-nopass', 'admin')")
