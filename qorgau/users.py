"""``qorgau users``: create and manage the people who use Qorgau.

Every change is checked before it reaches the database (a role's scope, that
regions and enterprises exist, password length) and reported in one line; a
password is read from a prompt (twice), from standard input with
``--password-stdin``, or generated with ``--generate-password`` and printed once.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from api.schemas import activation_link
from api.security import MIN_PASSWORD_LENGTH, hash_password
from core.access import Role, Scope
from core.activation import CODE_VALID_FOR, code_key
from core.errors import ConfigError, QorgauError
from core.reference import ReferenceData
from core.roster import MAX_BYTES, Roster, RosterRefused, parse_roster
from core.settings import Settings
from core.types import Region
from storage import accounts, people

__all__ = ["DemoUser", "add_parser", "bootstrap_admin", "cmd_users", "demo_cast", "demo_users"]

_CHANNELS = ("email", "webhook", "apprise")


def add_parser(sub: Any) -> None:
    users = sub.add_parser("users", help="create and manage users (roles, scopes, channels)")
    us = users.add_subparsers(dest="users_command", required=True, metavar="USERS_COMMAND")

    def scope_args(p: argparse.ArgumentParser, *, required_role: bool) -> None:
        p.add_argument(
            "--role", required=required_role, choices=[r.value for r in Role], help="the role"
        )
        p.add_argument(
            "--region",
            action="append",
            dest="regions",
            metavar="KZ-XX",
            help="a region the user covers (repeatable; inspectors, control room)",
        )
        p.add_argument("--enterprise", help="the user's enterprise (safety officer, worker)")
        p.add_argument(
            "--tag", action="append", dest="tags", help="escalation position, e.g. duty, head"
        )
        p.add_argument("--name", help="full name")
        p.add_argument("--email")
        p.add_argument("--phone")
        p.add_argument("--language", choices=["ru", "kk"], help="language of messages")

    def password_args(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--password-stdin", action="store_true", help="read it from stdin")
        g.add_argument(
            "--generate-password", action="store_true", help="make one up and print it once"
        )

    add = us.add_parser("add", help="create a user")
    add.add_argument("username")
    scope_args(add, required_role=True)
    password_args(add)

    lst = us.add_parser("list", help="list users")
    lst.add_argument("--role", choices=[r.value for r in Role])

    st = us.add_parser("set", help="change a user's role, scope or contact details")
    st.add_argument("username")
    scope_args(st, required_role=False)

    pw = us.add_parser("passwd", help="set a new password (ends the user's sessions)")
    pw.add_argument("username")
    password_args(pw)

    for name, text in (("disable", "stop a user signing in"), ("enable", "let them again")):
        us.add_parser(name, help=text).add_argument("username")

    ch = us.add_parser("channel", help="where a user is told: e-mail, webhook, apprise URL")
    ch.add_argument("action", choices=["add", "remove", "list"])
    ch.add_argument("username")
    ch.add_argument("channel", nargs="?", choices=_CHANNELS)
    ch.add_argument("address", nargs="?", help="e-mail address, webhook URL or apprise URL")
    ch.add_argument("--secret", help="webhook HMAC key (default: QORGAU_WEBHOOK_SECRET)")

    imp = us.add_parser(
        "import-workers",
        help="create and update an enterprise's workers from a CSV roster, with activation codes",
        description="Columns name, personnel_number, zone, phone (or ФИО, Табельный номер,"
        " Участок, Телефон); UTF-8, commas or semicolons. Every bad line is reported with its"
        " number and left out; the good ones are written in one transaction. Exit status 0"
        " when every line was taken, 3 when some were refused (the rest imported), 1 when"
        " nothing was written.",
    )
    imp.add_argument("file", type=Path, help="the roster, a .csv file")
    imp.add_argument("--enterprise", required=True, help="the workers' enterprise id")
    imp.add_argument("--dry-run", action="store_true", help="check and count; write nothing")
    imp.add_argument(
        "--codes-out",
        type=Path,
        help="write the new workers' activation codes to this CSV file (created, mode 0600);"
        " without it they are printed",
    )


def _read_password(args: argparse.Namespace) -> tuple[str, bool]:
    """``(password, generated)``."""
    if args.generate_password:
        return secrets.token_urlsafe(15), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for a password: use --password-stdin or --generate")
    first = getpass.getpass(f"password (at least {MIN_PASSWORD_LENGTH} characters): ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the two passwords differ")
    return first, False


def _hash(password: str) -> str:
    try:
        return hash_password(password)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _check_scope(
    conn: psycopg.Connection[Any], role: Role, regions: list[str], enterprise: str | None
) -> None:
    Scope.for_role(role, regions=regions, enterprise_id=enterprise)
    if regions:
        known = {
            r for (r,) in conn.execute("SELECT id FROM regions WHERE id = ANY(%s)", (regions,))
        }
        missing = sorted(set(regions) - known)
        if missing:
            raise ConfigError(f"no such region: {', '.join(missing)} (see GET /api/v1/regions)")
    if (
        enterprise
        and conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (enterprise,)).fetchone()
        is None
    ):
        raise ConfigError(f"no such enterprise: {enterprise}")


def _describe(u: people.UserRow) -> str:
    state = "" if u.active else " (disabled)"
    tags = f", tags {', '.join(u.tags)}" if u.tags else ""
    return f"{u.username}: {u.role} of {u.scope.describe()}{tags}{state}"


def _get(conn: psycopg.Connection[Any], username: str) -> people.UserRow:
    user = people.get_user_by_username(conn, username=username)
    if user is None:
        raise ConfigError(f"no user {username!r} (see `qorgau users list`)")
    return user


def cmd_users(dsn: str, args: argparse.Namespace, *, settings: Settings) -> int:
    if args.users_command == "import-workers":
        return import_workers(dsn, args, settings)
    with psycopg.connect(dsn) as conn:
        return _run(conn, args)


def import_workers(dsn: str, args: argparse.Namespace, settings: Settings) -> int:
    """``qorgau users import-workers``: the same reading and writing as the API's import."""
    path: Path = args.file
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: over {MAX_BYTES // (1024 * 1024)} MiB: split it")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    codes_out: int | None = None
    if args.codes_out is not None and not args.dry_run:
        try:  # made before anything is written: codes with nowhere to go would be lost
            codes_out = os.open(args.codes_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"{args.codes_out} exists: give a new file (its codes may not be handed out yet)"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot create {args.codes_out}: {exc.strerror}") from None
    try:
        roster, outcome = asyncio.run(_import(dsn, args, settings, data))
    except BaseException:
        if codes_out is not None:
            os.close(codes_out)
            os.unlink(args.codes_out)
        raise
    _print_report(path, roster, outcome, dry_run=args.dry_run)
    if outcome.created:
        text = _codes_csv(outcome.created, settings.public_url)
        if codes_out is not None:
            with os.fdopen(codes_out, "w", encoding="utf-8-sig", newline="") as f:
                f.write(text)
            print(f"{len(outcome.created)} activation code(s) written to {args.codes_out}")
        else:
            print("activation codes (shown once; hand each to its worker):")
            print(text, end="")
    elif codes_out is not None:
        os.close(codes_out)
        os.unlink(args.codes_out)  # nothing to hand out; no empty file left behind
    refused = {e.line for e in (*roster.errors, *outcome.errors)}
    return 3 if refused else 0


async def _import(
    dsn: str, args: argparse.Namespace, settings: Settings, data: bytes
) -> tuple[Roster, accounts.ImportOutcome]:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT 1 FROM enterprises WHERE id = %s", (args.enterprise,))
        if await cur.fetchone() is None:
            raise ConfigError(f"no such enterprise: {args.enterprise}")
        zones = await accounts.enterprise_zones(conn, enterprise_id=args.enterprise)
        try:
            roster = parse_roster(data, zones=zones)
        except RosterRefused as exc:
            raise ConfigError(f"{args.file}: {exc} (nothing imported)") from None
        outcome = await accounts.import_roster(
            conn,
            enterprise_id=args.enterprise,
            rows=roster.rows,
            key=code_key(settings.jwt_secret.get_secret_value()),
            valid_for=CODE_VALID_FOR,
            issued_by="qorgau users import-workers",
            dry_run=args.dry_run,
        )
        await conn.commit()
        return roster, outcome


def _print_report(
    path: Path, roster: Roster, outcome: accounts.ImportOutcome, *, dry_run: bool
) -> None:
    errors, refused = outcome.report(roster.errors)
    for e in errors:
        where = f"{path}:{e.line}" + (f", {e.column}" if e.column else "")
        shown = f" {e.value!r}" if e.value else ""
        print(f"{where}:{shown} {e.message}")
    verb = "would be " if dry_run else ""
    print(
        f"{roster.rows_read} line(s) read: {outcome.created_count} {verb}created,"
        f" {outcome.updated} {verb}updated, {outcome.unchanged} unchanged,"
        f" {refused} refused" + (" (dry run: nothing written)" if dry_run else "")
    )


def _codes_csv(codes: tuple[accounts.IssuedCode, ...], public_url: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["line", "username", "name", "personnel_number", "code", "link", "expires_at"])
    for c in codes:
        writer.writerow(
            [
                c.line,
                c.username,
                c.full_name,
                c.personnel_number,
                c.code,
                activation_link(public_url, c.code),
                c.expires_at.isoformat(timespec="seconds"),
            ]
        )
    return out.getvalue()


def _run(conn: psycopg.Connection[Any], args: argparse.Namespace) -> int:
    cmd = args.users_command
    if cmd == "add":
        role = Role(args.role)
        regions = args.regions or []
        _check_scope(conn, role, regions, args.enterprise)
        password, generated = _read_password(args)
        try:
            user = people.create_user(
                conn,
                username=args.username,
                role=role,
                password_hash=_hash(password),
                regions=regions,
                enterprise_id=args.enterprise,
                full_name=args.name or "",
                tags=args.tags or [],
                language=args.language or "ru",
                email=args.email,
                phone=args.phone,
            )
        except psycopg.errors.UniqueViolation as exc:
            raise ConfigError(f"user {args.username!r} already exists") from exc
        except psycopg.errors.CheckViolation as exc:
            raise ConfigError(
                f"user name {args.username!r}: use 3-64 of A-Z a-z 0-9 . _ @ -"
            ) from exc
        print(f"created {_describe(user)}")
        if generated:
            print(f"password: {password}  (shown once; give it to {user.username} securely)")
        return 0
    if cmd == "list":
        rows = people.list_users(conn, role=Role(args.role) if args.role else None)
        for u in rows:
            print(_describe(u))
        print(f"{len(rows)} user(s)")
        return 0
    if cmd == "set":
        user = _get(conn, args.username)
        changes: dict[str, Any] = {}
        for field, value in (
            ("full_name", args.name),
            ("email", args.email),
            ("phone", args.phone),
            ("language", args.language),
            ("tags", args.tags),
        ):
            if value is not None:
                changes[field] = value
        if args.role or args.regions is not None or args.enterprise is not None:
            role = Role(args.role or user.role)
            regions = (
                args.regions
                if args.regions is not None
                else (user.regions if role.regional else [])
            )
            enterprise = (
                args.enterprise
                if args.enterprise is not None
                else (user.enterprise_id if role.of_enterprise else None)
            )
            _check_scope(conn, role, regions, enterprise)
            changes.update(role=role.value, regions=regions, enterprise_id=enterprise)
        if not changes:
            raise ConfigError("nothing to change: give --role, --region, --email, ...")
        updated = people.update_user(conn, username=args.username, **changes)
        assert updated is not None
        print(f"updated {_describe(updated)}")
        return 0
    if cmd == "passwd":
        _get(conn, args.username)
        password, generated = _read_password(args)
        people.update_user(conn, username=args.username, password_hash=_hash(password))
        print(f"new password set for {args.username}; their sessions have ended")
        if generated:
            print(f"password: {password}  (shown once)")
        return 0
    if cmd in ("disable", "enable"):
        _get(conn, args.username)
        people.update_user(conn, username=args.username, active=cmd == "enable")
        print(f"{args.username} {cmd}d")
        return 0
    if cmd == "channel":
        user = _get(conn, args.username)
        if args.action == "list":
            for c in people.list_channels(conn, user_id=user.id):
                secret = " (own secret)" if c.secret else ""
                print(f"{c.channel} {c.address}{secret}")
            return 0
        if not args.channel or not args.address:
            raise ConfigError("give the channel (email, webhook, apprise) and its address")
        if args.action == "add":
            _check_address(args.channel, args.address)
            people.add_channel(
                conn,
                user_id=user.id,
                channel=args.channel,
                address=args.address,
                secret=args.secret,
            )
            print(f"{args.username} is told by {args.channel} at {args.address}")
            return 0
        if not people.remove_channel(
            conn, user_id=user.id, channel=args.channel, address=args.address
        ):
            raise ConfigError(f"{args.username} has no {args.channel} {args.address}")
        print(f"removed {args.channel} {args.address} from {args.username}")
        return 0
    raise QorgauError(f"unknown users command {cmd!r}")


def _check_address(channel: str, address: str) -> None:
    if channel == "email" and ("@" not in address or " " in address):
        raise ConfigError(f"{address!r} is not an e-mail address")
    if channel == "webhook" and not address.startswith(("https://", "http://")):
        raise ConfigError(f"a webhook needs an http(s):// URL, not {address!r}")
    if channel == "apprise" and "://" not in address:
        raise ConfigError(f"an apprise URL looks like tgram://token/chat, not {address!r}")


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    role: Role
    full_name: str
    regions: tuple[str, ...] = ()
    enterprise: str | None = None
    tags: tuple[str, ...] = ()


def _slug(region: Region, taken: set[str]) -> str:
    name = region.name_en.removesuffix(" Region").lower().replace(" ", "-")
    return f"{name}-city" if region.kind == "city" and name in taken else name


def demo_cast(reference: ReferenceData) -> list[DemoUser]:
    """The people of `qorgau demo`: for every region with a simulated enterprise its duty
    labour and fire inspectors and its control room; for every enterprise its safety officer and a worker; a national control room
    and an admin. The simulator's incidents happen at all of these enterprises, so every
    alarm reaches somebody."""
    region_slugs = {r.name_en.removesuffix(" Region").lower() for r in reference.regions}
    cast = [
        DemoUser("admin", Role.ADMIN, "Administrator"),
        DemoUser("control.national", Role.CONTROL_ROOM, "National control room"),
    ]
    used = {e.region_id for e in reference.enterprises}
    for region in (r for r in reference.regions if r.id in used):
        slug = _slug(region, region_slugs if region.kind == "city" else set())
        where = (region.id,)
        cast += [
            DemoUser(
                f"control.{slug}", Role.CONTROL_ROOM, f"Control room, {region.name_en}", where
            ),
            DemoUser(
                f"inspector.{slug}",
                Role.LABOUR_INSPECTOR,
                f"Labour inspector on duty, {region.name_en}",
                where,
                tags=("duty",),
            ),
            DemoUser(
                f"fire.{slug}",
                Role.FIRE_INSPECTOR,
                f"Fire inspector on duty, {region.name_en}",
                where,
                tags=("duty",),
            ),
        ]
    for e in reference.enterprises:
        n = e.id.lower()
        cast += [
            DemoUser(
                f"officer.{n}", Role.SAFETY_OFFICER, f"Safety officer, {e.name}", enterprise=e.id
            ),
            DemoUser(f"worker.{n}", Role.WORKER, f"Worker, {e.name}", enterprise=e.id),
        ]
    return cast


def demo_users(
    dsn: str, password: str, reference: ReferenceData, *, email_domain: str | None = None
) -> list[str]:
    """Create the demo users that do not exist yet (all with ``password``); their names.

    With ``email_domain`` (the demo's own inbox) everyone but workers, whose phones are
    told over MQTT, gets ``username@email_domain`` as their e-mail address.
    """
    hashed = _hash(password)
    made = []
    with psycopg.connect(dsn) as conn:
        for u in demo_cast(reference):
            email = (
                f"{u.username}@{email_domain}" if email_domain and u.role != Role.WORKER else None
            )
            if people.get_user_by_username(conn, username=u.username) is None:
                people.create_user(
                    conn,
                    username=u.username,
                    role=u.role,
                    password_hash=hashed,
                    full_name=u.full_name,
                    regions=list(u.regions),
                    enterprise_id=u.enterprise,
                    tags=list(u.tags),
                    email=email,
                )
            elif email:
                people.update_user(conn, username=u.username, email=email)
            made.append(u.username)
    return made


def bootstrap_admin(dsn: str, username: str, password: str) -> bool:
    """The first admin of a deployment: created when no user of that name exists (True),
    left as it is otherwise (False) — so a deployment's setup job can run every time."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"the first admin's password needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    with psycopg.connect(dsn) as conn:
        if people.get_user_by_username(conn, username=username) is not None:
            return False
        people.create_user(conn, username=username, role=Role.ADMIN, password_hash=_hash(password))
    return True
