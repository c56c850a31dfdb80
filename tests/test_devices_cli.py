"""``qorgau devices`` against a real database: provisioning, the broker's files, rotation,
revocation and clear errors. (The files' effect on a real Mosquitto is in
``tests/e2e/test_mqtt_security.py``.)"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest
import structlog

from core.identities import verify_secret
from qorgau.cli import main
from storage import devices


@pytest.fixture
def run(  # type: ignore[no-untyped-def]
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("QORGAU_DATABASE_URL", database_url)
    monkeypatch.setenv("QORGAU_MQTT_AUTH_DIR", str(tmp_path / "auth"))
    monkeypatch.setenv("QORGAU_MQTT_RELOAD_COMMAND", f"touch {tmp_path / 'reloaded'}")
    monkeypatch.setenv("QORGAU_STATE_DIR", str(tmp_path / "state"))

    def _run(*argv: str) -> tuple[int, str, str]:
        code = main(["devices", *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    yield _run
    structlog.reset_defaults()


def _hash(database_url: str, username: str) -> str:
    with psycopg.connect(database_url) as conn:
        row = devices.get_identity(conn, username=username)
    assert row is not None
    return row.password_hash


def _new_sensor(database_url: str, enterprise: str = "E001") -> str:
    sensor = f"{enterprise}-C{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO sensors (id, enterprise_id, zone_id, hazard, interval_s)"
            " SELECT %s, %s, min(id), 'co', 10 FROM zones WHERE enterprise_id = %s",
            (sensor, enterprise, enterprise),
        )
    return sensor


def test_a_sensor_gets_a_secret_once_and_the_broker_files_name_its_topics(  # type: ignore[no-untyped-def]
    run, database_url: str, tmp_path: Path
) -> None:
    sensor = _new_sensor(database_url)
    code, out, err = run("add-sensor", sensor)
    assert code == 0, err
    secret = out.split("secret")[1].split()[0]
    assert len(secret) >= 40 and "shown only now" in out
    assert verify_secret(secret, _hash(database_url, sensor))
    assert "broker: updated" in out and (tmp_path / "reloaded").exists()
    passwd = (tmp_path / "auth" / "passwd").read_text()
    acl = (tmp_path / "auth" / "acl").read_text()
    assert f"{sensor}:$7$101$" in passwd and secret not in passwd
    assert f"user {sensor}\ntopic write qorgau/v1/E001/sensors/{sensor}/reading\n" in acl
    assert oct((tmp_path / "auth" / "passwd").stat().st_mode & 0o777) == "0o600"


def test_rotate_replaces_the_secret_and_revoke_removes_the_identity(  # type: ignore[no-untyped-def]
    run, database_url: str, tmp_path: Path
) -> None:
    sensor = _new_sensor(database_url)
    secrets_file = tmp_path / "secrets.json"
    assert run("add-sensor", sensor, "--secrets-file", str(secrets_file))[0] == 0
    first = json.loads(secrets_file.read_text())[sensor]
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    code, out, _ = run("rotate", sensor, "--secrets-file", str(secrets_file))
    assert code == 0 and "old one stops working" in out
    second = json.loads(secrets_file.read_text())[sensor]
    assert second != first
    assert verify_secret(second, _hash(database_url, sensor))
    assert not verify_secret(first, _hash(database_url, sensor))
    code, out, _ = run("revoke", sensor)
    assert code == 0 and "revoked" in out
    assert f"{sensor}:" not in (tmp_path / "auth" / "passwd").read_text()
    code, out, _ = run("list", "--enterprise", "E001", "--revoked")
    assert any(line.startswith(sensor) and "revoked" in line for line in out.splitlines())
    code, _, err = run("revoke", sensor)
    assert code == 1 and "no active identity" in err


def test_gateways_apps_and_services(run, database_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:6]
    code, out, err = run("add-gateway", f"gw-{tag}", "--enterprise", "E002", "--all-sensors")
    assert code == 0, err
    assert "write qorgau/v1/E002/sensors/+/reading" in out
    code, _, err = run("add-gateway", f"gw2-{tag}", "--enterprise", "E002", "--sensor", "E001-S01")
    assert code == 1 and "not sensors of E002: E001-S01" in err
    code, _, err = run("add-app", "admin")
    assert code == 1 and "not an active user with the role worker" in err
    code, out, err = run("add-service", f"bridge-{tag}", "--role", "bridge")
    assert code == 0, err
    assert "read qorgau/v1/+/app/+/report" in out
    acl = (tmp_path / "auth" / "acl").read_text()
    assert f"user bridge-{tag}\ntopic read qorgau/v1/+/sensors/+/reading" in acl


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("add-sensor", "NO-SUCH-SENSOR"), "not in the registry: NO-SUCH-SENSOR"),
        (("add-service", "bad name", "--role", "api"), "a name is 1-64 of"),
        (("add-service", "x/#", "--role", "api"), "a name is 1-64 of"),
        (("add-sensor", "--all"), "--all needs --enterprise"),
        (("rotate", "never-made"), "no active identity"),
    ],
)
def test_mistakes_are_named(run, argv: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(*argv)
    assert code == 1 and message in err


def test_a_name_is_taken_once(run, database_url: str) -> None:  # type: ignore[no-untyped-def]
    sensor = _new_sensor(database_url)
    assert run("add-sensor", sensor)[0] == 0
    code, _, err = run("add-sensor", sensor)
    assert code == 1 and "exists already" in err
