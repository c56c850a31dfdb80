"""``qorgau users`` against a real database: create, change, disable, channels, clear errors."""

from __future__ import annotations

import csv
import io
import sys

import psycopg
import pytest
import structlog

from api.security import verify_password
from qorgau.cli import main
from storage import people


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("QORGAU_DATABASE_URL", database_url)

    def _run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["users", *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    yield _run
    # main() pointed the loggers at the captured stderr, which is closed after this test.
    structlog.reset_defaults()


def _user(database_url: str, username: str) -> people.UserRow:
    with psycopg.connect(database_url) as conn:
        row = people.get_user_by_username(conn, username=username)
    assert row is not None
    return row


def test_add_inspector_with_password_from_stdin(run, database_url: str) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(
        "add", "t-cli-insp", "--role", "labour_inspector", "--region", "KZ-35",
        "--region", "KZ-55", "--tag", "duty", "--email", "insp@example.kz", "--language", "kk",
        "--password-stdin", stdin="a long enough password\n",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "created t-cli-insp: labour_inspector of regions KZ-35, KZ-55, tags duty"
    user = _user(database_url, "t-cli-insp")
    assert (user.role, user.regions, user.language, user.email) == (
        "labour_inspector",
        ["KZ-35", "KZ-55"],
        "kk",
        "insp@example.kz",
    )
    assert user.password_hash.startswith("$argon2id$")
    assert verify_password("a long enough password", user.password_hash)[0]
    assert not verify_password("a wrong password!!", user.password_hash)[0]


def test_generated_password_is_printed_once_and_works(run, database_url: str) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run(
        "add", "t-cli-officer", "--role", "safety_officer", "--enterprise", "E004",
        "--generate-password",
    )  # fmt: skip
    assert code == 0
    password = out.split("password: ")[1].split()[0]
    assert verify_password(password, _user(database_url, "t-cli-officer").password_hash)[0]
    before = _user(database_url, "t-cli-officer").token_version
    code, out, _ = run("passwd", "t-cli-officer", "--generate-password")
    assert code == 0 and "sessions have ended" in out
    assert _user(database_url, "t-cli-officer").token_version == before + 1


@pytest.mark.parametrize(
    ("argv", "stdin", "error"),
    [
        (("--role", "fire_inspector"), "x" * 12, "a fire_inspector needs one or more regions"),
        (
            ("--role", "safety_officer", "--enterprise", "E999"),
            "x" * 12,
            "no such enterprise: E999",
        ),
        (("--role", "labour_inspector", "--region", "KZ-00"), "x" * 12, "no such region: KZ-00"),
        (("--role", "worker", "--enterprise", "E001"), "short", "at least 10 characters"),
        (("--role", "admin", "--region", "KZ-35"), "x" * 12, "an admin sees the whole country"),
        (
            ("--role", "control_room", "--region", "KZ-35", "--region", "KZ-55"),
            "x" * 12,
            "one region",
        ),
    ],
)
def test_bad_input_is_a_clear_error_and_creates_nothing(
    run, database_url: str, argv, stdin, error
) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run("add", "t-cli-bad", *argv, "--password-stdin", stdin=stdin)
    assert code == 1
    assert error in err
    with psycopg.connect(database_url) as conn:
        assert people.get_user_by_username(conn, username="t-cli-bad") is None


def test_change_scope_disable_and_channels(run, database_url: str) -> None:  # type: ignore[no-untyped-def]
    assert run("add", "t-cli-room", "--role", "control_room", "--generate-password")[0] == 0
    code, out, _ = run("set", "t-cli-room", "--region", "KZ-23")
    assert code == 0 and out.strip() == "updated t-cli-room: control_room of regions KZ-23"
    code, out, _ = run("set", "t-cli-room", "--role", "safety_officer", "--enterprise", "E002")
    assert out.strip() == "updated t-cli-room: safety_officer of enterprise E002"
    code, _, err = run("set", "t-cli-room", "--role", "labour_inspector")
    assert code == 1 and "needs one or more regions" in err

    assert run("disable", "t-cli-room")[0] == 0
    assert not _user(database_url, "t-cli-room").active
    assert run("enable", "t-cli-room")[0] == 0
    assert _user(database_url, "t-cli-room").active

    assert run("channel", "add", "t-cli-room", "email", "room@example.kz")[0] == 0
    code, _, err = run("channel", "add", "t-cli-room", "webhook", "ftp://nowhere")
    assert code == 1 and "http(s)://" in err
    assert (
        run("channel", "add", "t-cli-room", "webhook", "https://h.example/q", "--secret", "s")[0]
        == 0
    )
    code, out, _ = run("channel", "list", "t-cli-room")
    assert out.splitlines() == ["email room@example.kz", "webhook https://h.example/q (own secret)"]
    assert run("channel", "remove", "t-cli-room", "email", "room@example.kz")[0] == 0
    code, _, err = run("channel", "remove", "t-cli-room", "email", "room@example.kz")
    assert code == 1 and "has no email" in err

    code, out, _ = run("list", "--role", "safety_officer")
    assert "t-cli-room: safety_officer of enterprise E002" in out
    code, _, err = run("disable", "t-cli-nobody")
    assert code == 1 and "no user 't-cli-nobody'" in err


def test_import_workers_reports_lines_and_writes_codes_to_a_private_file(  # type: ignore[no-untyped-def]
    run, database_url: str, tmp_path
) -> None:
    with psycopg.connect(database_url) as conn:
        zone, zone_name = conn.execute(
            "SELECT id, name FROM zones WHERE enterprise_id = 'E009' ORDER BY id LIMIT 1"
        ).fetchone()
    roster = tmp_path / "roster.csv"
    roster.write_bytes(
        "\ufeffФИО;Табельный номер;Участок;Телефон\n"
        f"Ерлан Касымов;cli-1;{zone};8 701 111 22 33\n"
        f"Айгуль Ахметова;cli-2;{zone_name};\n"
        f"Нет Участка;cli-3;Луна;\n".encode()
    )
    codes = tmp_path / "codes.csv"

    code, out, err = run("import-workers", str(roster), "--enterprise", "E009", "--dry-run")
    assert code == 3, err
    assert f"{roster}:4, zone: 'Луна' no zone 'Луна' at this enterprise" in out
    assert "3 line(s) read: 2 would be created, 0 would be updated, 0 unchanged, 1 refused" in out
    assert not codes.exists()

    code, out, err = run(
        "import-workers", str(roster), "--enterprise", "E009", "--codes-out", str(codes)
    )
    assert code == 3, err
    assert "2 created, 0 updated, 0 unchanged, 1 refused" in out
    assert f"2 activation code(s) written to {codes}" in out
    assert codes.stat().st_mode & 0o777 == 0o600
    rows = list(csv.DictReader(io.StringIO(codes.read_text("utf-8-sig"))))
    assert [(r["line"], r["username"], r["personnel_number"]) for r in rows] == [
        ("2", "e009.cli-1", "cli-1"),
        ("3", "e009.cli-2", "cli-2"),
    ]
    assert rows[0]["link"].endswith(f"/app/#activate={rows[0]['code']}")
    assert _user(database_url, "e009.cli-1").phone == "+77011112233"
    assert _user(database_url, "e009.cli-2").zone_id == zone

    # An existing codes file is never overwritten (its codes may not be handed out yet).
    code, _, err = run(
        "import-workers", str(roster), "--enterprise", "E009", "--codes-out", str(codes)
    )
    assert code == 1 and "exists" in err
    # Again into a new file: nothing changes, no code is made, no file is left.
    again = tmp_path / "again.csv"
    code, out, err = run(
        "import-workers", str(roster), "--enterprise", "E009", "--codes-out", str(again)
    )
    assert code == 3, err
    assert "0 created, 0 updated, 2 unchanged, 1 refused" in out
    assert not again.exists()


def test_import_workers_refuses_a_file_it_cannot_read_and_writes_nothing(  # type: ignore[no-untyped-def]
    run, database_url: str, tmp_path
) -> None:
    roster = tmp_path / "roster.csv"
    roster.write_bytes("ФИО;Табельный номер;Участок\nИван;cli-9;X\n".encode("cp1251"))
    codes = tmp_path / "codes.csv"
    code, _, err = run(
        "import-workers", str(roster), "--enterprise", "E009", "--codes-out", str(codes)
    )
    assert code == 1
    assert "line 1: the file is not UTF-8" in err and "nothing imported" in err
    assert not codes.exists()
    code, _, err = run("import-workers", str(roster), "--enterprise", "E999")
    assert code == 1 and "no such enterprise: E999" in err
