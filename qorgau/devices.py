"""``qorgau devices``: MQTT identities for sensors, gateways, workers' apps and services.

Each identity gets a random secret, shown once (only its hash is kept); the
broker learns who may connect and what each may do from a password file and
an ACL file that ``qorgau devices sync`` renders from the database
(`core.identities`). Every change made here is applied at once when this
process can reach those files (``QORGAU_MQTT_AUTH_DIR``, which the local stack
sets), or by ``qorgau devices sync --watch`` (the ``mqtt-auth`` service of a
deployment) within a second; the command says which happened.

Revoking or rotating takes effect when the broker reloads its files: Mosquitto
then disconnects every client whose credentials are no longer valid.
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import structlog

from core.errors import ConfigError, QorgauError
from core.identities import SERVICE_RULES, USERNAME, IdentityKind, acl_rules, mosquitto_hash
from core.settings import Settings
from core.statefiles import random_secret, write_private
from storage import devices

__all__ = ["SyncResult", "add_parser", "cmd_devices", "ensure_identity", "sync_broker_auth"]

log = structlog.get_logger("qorgau.devices")

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
CHANNEL = "qorgau_mqtt_identities"


# --- the broker's files ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncResult:
    identities: int
    changed: bool


def sync_broker_auth(dsn: str, auth_dir: Path, reload_command: str | None) -> SyncResult:
    """Render the broker's password and ACL files from the database into ``auth_dir``;
    when they changed, run ``reload_command`` (e.g. ``kill -HUP <pid>``) so the broker
    reads them."""
    with psycopg.connect(dsn) as conn:
        identities = devices.active_identities(conn)
        passwd, acl, digest = devices.auth_files(identities)
        auth_dir.mkdir(parents=True, exist_ok=True)
        old = [p.read_text(encoding="utf-8") if p.exists() else None for p in _files(auth_dir)]
        changed = old != [passwd, acl]
        if changed:
            write_private(auth_dir / PASSWORD_FILE, passwd)
            write_private(auth_dir / ACL_FILE, acl)
            if reload_command:
                done = subprocess.run(reload_command, shell=True, capture_output=True, check=False)
                if done.returncode != 0:
                    raise ConfigError(
                        f"broker reload ({reload_command!r}) failed with"
                        f" {done.returncode}: {done.stderr.decode(errors='replace')[:300]}"
                    )
            log.info("broker auth files written", identities=len(identities), dir=str(auth_dir))
        devices.mark_synced(conn, identities=len(identities), digest=digest)
    return SyncResult(len(identities), changed)


def _files(auth_dir: Path) -> tuple[Path, Path]:
    return auth_dir / PASSWORD_FILE, auth_dir / ACL_FILE


def watch_broker_auth(
    dsn: str,
    auth_dir: Path,
    reload_command: str | None,
    *,
    stopping: Callable[[], bool],
    every_s: float = 60.0,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Keep the broker's files in step with the database until ``stopping()``: at once
    after any change (LISTEN), and every ``every_s`` seconds in any case."""
    while not stopping():
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                sync_broker_auth(dsn, auth_dir, reload_command)
                if on_ready is not None:
                    on_ready()
                last = time.monotonic()
                while not stopping():
                    ready = select.select([conn.fileno()], [], [], 1.0)[0]
                    woke = False
                    if ready:
                        for _ in conn.notifies(timeout=0.0):
                            woke = True
                    if woke:
                        time.sleep(0.3)  # a burst of changes makes one reload
                        for _ in conn.notifies(timeout=0.0):
                            pass
                    if woke or time.monotonic() - last > every_s:
                        sync_broker_auth(dsn, auth_dir, reload_command)
                        last = time.monotonic()
        except psycopg.OperationalError as exc:
            log.error("database unavailable; retrying in 2 s", error=str(exc))
            time.sleep(2.0)


# --- provisioning ---------------------------------------------------------------------------


def ensure_identity(
    conn: psycopg.Connection[Any],
    username: str,
    secret: str,
    *,
    kind: IdentityKind,
    enterprise_id: str | None = None,
    sensor_ids: list[str] | None = None,
    all_sensors: bool = False,
    service: str | None = None,
) -> None:
    """Make ``username`` an identity with ``secret`` (created, or its secret set): how the
    local stack gives its own services and simulated devices the secrets it keeps."""
    hashed = mosquitto_hash(secret)
    if not devices.set_secret_hash(conn, username=username, password_hash=hashed, reinstate=True):
        devices.add_identity(
            conn,
            username=username,
            kind=kind,
            password_hash=hashed,
            enterprise_id=enterprise_id,
            sensor_ids=sensor_ids,
            all_sensors=all_sensors,
            service=service,
            note="local stack",
        )


def add_parser(sub: Any) -> None:
    dev = sub.add_parser(
        "devices",
        help="MQTT identities: sensors, gateways, workers' apps, services",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ds = dev.add_subparsers(dest="devices_command", required=True, metavar="DEVICES_COMMAND")

    def secrets_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--secrets-file",
            type=Path,
            help="write the new secrets to this JSON file (mode 0600) instead of printing them",
        )

    p = ds.add_parser("add-sensor", help="an identity per sensor (it publishes its own topics)")
    p.add_argument("sensors", nargs="*", metavar="SENSOR_ID")
    p.add_argument("--enterprise", help="with --all: every sensor of this enterprise")
    p.add_argument("--all", action="store_true", help="every sensor of --enterprise")
    p.add_argument("--note", default="")
    secrets_arg(p)

    p = ds.add_parser("add-gateway", help="a gateway publishing for sensors of one enterprise")
    p.add_argument("name")
    p.add_argument("--enterprise", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--sensor", action="append", dest="sensors", help="a sensor behind it")
    g.add_argument("--all-sensors", action="store_true", help="every sensor of the enterprise")
    p.add_argument("--note", default="")
    secrets_arg(p)

    p = ds.add_parser("add-app", help="a worker's app (reports, evacuation notices)")
    p.add_argument("worker", help="the worker's user name (role worker)")
    p.add_argument("--note", default="")
    secrets_arg(p)

    p = ds.add_parser("add-service", help="a service identity (bridge, notifier, api)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=sorted(SERVICE_RULES))
    p.add_argument("--note", default="")
    secrets_arg(p)

    p = ds.add_parser("list", help="list identities and what each may do")
    p.add_argument("--enterprise")
    p.add_argument("--kind", choices=[k.value for k in IdentityKind])
    p.add_argument("--revoked", action="store_true", help="include revoked identities")

    p = ds.add_parser("rotate", help="a new secret (the old one stops working)")
    p.add_argument("name")
    secrets_arg(p)

    ds.add_parser("revoke", help="disconnect and refuse an identity for good").add_argument("name")

    p = ds.add_parser("sync", help="write the broker's password and ACL files from the database")
    p.add_argument(
        "--out", type=Path, help="directory of the files (default: QORGAU_MQTT_AUTH_DIR)"
    )
    p.add_argument("--watch", action="store_true", help="keep them in step (a service)")


def cmd_devices(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.database_url:
        raise QorgauError("set QORGAU_DATABASE_URL (or start the local stack: qorgau up)")
    dsn = settings.database_url
    command = args.devices_command
    if command == "sync":
        out = args.out or settings.mqtt_auth_dir
        if out is None:
            raise QorgauError(
                "say where the broker's files live: --out DIR or QORGAU_MQTT_AUTH_DIR"
            )
        if args.watch:
            _watch_until_signalled(dsn, out, settings)
            return 0
        result = sync_broker_auth(dsn, out, settings.mqtt_reload_command)
        print(
            f"{result.identities} identities; broker files in {out}"
            + (" updated" if result.changed else " already up to date")
        )
        return 0
    if command == "list":
        return _list(dsn, args)
    started = datetime.now(UTC)
    with psycopg.connect(dsn) as conn:
        made = _change(conn, args)
    if made:
        _hand_out(made, getattr(args, "secrets_file", None))
    _apply(settings, dsn, started)
    return 0


def _change(conn: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, str]:
    """Make the change ``args`` asks for; the new secrets by user name."""
    command = args.devices_command
    name: str = getattr(args, "name", "")
    if command == "revoke":
        if not devices.revoke_identity(conn, username=name):
            raise QorgauError(f"no active identity {name!r}")
        print(f"{name}: revoked (disconnected once the broker reloads)")
        return {}
    if command == "rotate":
        secret = random_secret()
        if not devices.set_secret_hash(conn, username=name, password_hash=mosquitto_hash(secret)):
            raise QorgauError(f"no active identity {name!r}")
        print(f"{name}: new secret (the old one stops working once the broker reloads)")
        return {name: secret}
    if command == "add-sensor":
        return _add_sensors(conn, args)
    if command == "add-gateway":
        return _add_gateway(conn, args)
    if command == "add-app":
        return _add_app(conn, args)
    return _add(conn, args.name, kind=IdentityKind.SERVICE, service=args.role, note=args.note)


def _add(conn: psycopg.Connection[Any], username: str, **fields: Any) -> dict[str, str]:
    if not USERNAME.match(username):
        raise QorgauError(
            f"{username!r}: a name is 1-64 of A-Z a-z 0-9 _ . - (not starting with one of _ . -)"
        )
    secret = random_secret()
    try:
        with conn.transaction():
            row = devices.add_identity(
                conn, username=username, password_hash=mosquitto_hash(secret), **fields
            )
    except psycopg.errors.UniqueViolation:
        raise QorgauError(
            f"{username!r} exists already (see `qorgau devices list --revoked`;"
            " `rotate` gives it a new secret)"
        ) from None
    rules = acl_rules(row.identity())
    what = ", ".join(f"{a} {t}" for a, t in rules) or "connect only"
    print(
        f"{row.kind} {username}"
        + (f" of {row.enterprise_id}" if row.enterprise_id else "")
        + f": {what}"
    )
    return {username: secret}


def _add_sensors(conn: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, str]:
    if args.all:
        if not args.enterprise:
            raise QorgauError("--all needs --enterprise")
        rows = conn.execute(
            "SELECT id, enterprise_id FROM sensors WHERE enterprise_id = %s ORDER BY id",
            (args.enterprise,),
        ).fetchall()
        if not rows:
            raise QorgauError(f"enterprise {args.enterprise!r} has no sensors (or does not exist)")
        taken = {r.username for r in devices.list_identities(conn, include_revoked=True)}
        rows = [r for r in rows if r[0] not in taken]
    else:
        if not args.sensors:
            raise QorgauError("name the sensors, or use --enterprise E --all")
        found = dict(
            conn.execute(
                "SELECT id, enterprise_id FROM sensors WHERE id = ANY(%s)", (args.sensors,)
            ).fetchall()
        )
        missing = [s for s in args.sensors if s not in found]
        if missing:
            raise QorgauError(f"not in the registry: {', '.join(missing)} (see qorgau migrate)")
        rows = [(s, found[s]) for s in args.sensors]
    made: dict[str, str] = {}
    for sensor_id, enterprise_id in rows:
        made |= _add(
            conn,
            sensor_id,
            kind=IdentityKind.SENSOR,
            enterprise_id=enterprise_id,
            sensor_ids=[sensor_id],
            note=args.note,
        )
    return made


def _add_gateway(conn: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, str]:
    sensors = args.sensors or []
    if sensors:
        found = {
            r[0]
            for r in conn.execute(
                "SELECT id FROM sensors WHERE enterprise_id = %s AND id = ANY(%s)",
                (args.enterprise, sensors),
            ).fetchall()
        }
        missing = [s for s in sensors if s not in found]
        if missing:
            raise QorgauError(f"not sensors of {args.enterprise}: {', '.join(missing)}")
    elif (
        conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (args.enterprise,)).fetchone()
        is None
    ):
        raise QorgauError(f"no enterprise {args.enterprise!r}")
    return _add(
        conn,
        args.name,
        kind=IdentityKind.GATEWAY,
        enterprise_id=args.enterprise,
        sensor_ids=sensors,
        all_sensors=args.all_sensors,
        note=args.note,
    )


def _add_app(conn: psycopg.Connection[Any], args: argparse.Namespace) -> dict[str, str]:
    row = conn.execute(
        "SELECT role, enterprise_id, active FROM users WHERE username = %s", (args.worker,)
    ).fetchone()
    if row is None or row[0] != "worker" or not row[2]:
        raise QorgauError(f"{args.worker!r} is not an active user with the role worker")
    return _add(conn, args.worker, kind=IdentityKind.APP, enterprise_id=row[1], note=args.note)


def _hand_out(secrets: dict[str, str], path: Path | None) -> None:
    """The new secrets, once: into a file only the operator can read, or on the terminal."""
    if path is not None:
        existing: dict[str, str] = {}
        if path.exists():
            existing = json.loads(path.read_text(encoding="utf-8"))
        write_private(path, json.dumps(existing | secrets, indent=2) + "\n")
        print(
            f"{len(secrets)} secret(s) written to {path} (mode 0600); they are not kept anywhere else"
        )
        return
    for username, secret in secrets.items():
        print(f"  user name {username}\n  secret    {secret}")
    print("  (the secret is shown only now: put it in the device; only its hash is kept)")


def _apply(settings: Settings, dsn: str, since: datetime) -> None:
    """Bring the broker up to date now, or say whether the mqtt-auth service did."""
    if settings.mqtt_auth_dir is not None:
        sync_broker_auth(dsn, settings.mqtt_auth_dir, settings.mqtt_reload_command)
        print("broker: updated")
        return
    deadline = time.monotonic() + 15.0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            synced = devices.synced_at(conn)
            if synced is not None and synced >= since:
                print("broker: updated by the mqtt-auth service")
                return
            time.sleep(0.25)
    print(
        "broker: NOT updated yet. Run `qorgau devices sync --out DIR` where the broker's"
        " files are, or start the mqtt-auth service (`qorgau devices sync --watch`)."
    )


def _list(dsn: str, args: argparse.Namespace) -> int:
    with psycopg.connect(dsn) as conn:
        rows = devices.list_identities(
            conn,
            enterprise_id=args.enterprise,
            kind=IdentityKind(args.kind) if args.kind else None,
            include_revoked=args.revoked,
        )
    for r in rows:
        state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
        scope = r.enterprise_id or r.service or ""
        extent = (
            "all sensors"
            if r.all_sensors
            else (", ".join(r.sensor_ids) if r.kind == "gateway" else "")
        )
        print(f"{r.username:<24} {r.kind:<8} {scope:<10} {state:<24} {extent}")
    print(f"{len(rows)} identit{'y' if len(rows) == 1 else 'ies'}")
    return 0


def _watch_until_signalled(dsn: str, out: Path, settings: Settings) -> None:
    import signal
    import threading

    from stream.readiness import mark_ready

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: stop.set())
    watch_broker_auth(
        dsn,
        out,
        settings.mqtt_reload_command,
        stopping=stop.is_set,
        on_ready=lambda: mark_ready(settings.state_dir, "mqtt-auth"),
    )
