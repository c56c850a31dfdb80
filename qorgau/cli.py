"""The `qorgau` command: one subcommand per component, plus the local stack.

Production runs each component on its own (``qorgau bridge``, ``qorgau worker``,
``qorgau api``, ``qorgau migrate``) against real infrastructure named by
``QORGAU_*`` variables; ``qorgau demo`` / ``qorgau up`` start everything on
this machine with embedded defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.catalogue import load_catalogue
from core.errors import QorgauError
from core.reference import load_reference
from core.settings import Settings
from qorgau import users as users_cli
from qorgau.logs import configure_logging

__all__ = ["main"]


def _settings() -> Settings:
    """Settings from ``QORGAU_*`` variables; what they leave unset comes from the local stack
    running in the state directory, if one does (so ``qorgau users`` finds its database)."""
    settings = Settings()
    from qorgau.launcher import read_stack_env

    running = read_stack_env(settings.state_dir)
    unset = {k: v for k, v in running.items() if f"QORGAU_{k.upper()}" not in os.environ}
    return Settings(**unset) if unset else settings  # type: ignore[arg-type]


def _require_db(settings: Settings) -> str:
    if not settings.database_url:
        raise QorgauError("set QORGAU_DATABASE_URL (e.g. postgresql://user@host:5432/qorgau)")
    return settings.database_url


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from storage.migrate import migrate
    from storage.reference import seed_reference

    dsn = _require_db(settings)
    result = migrate(dsn, timescale=settings.timescale)
    print(
        f"schema: {result.flavour} PostgreSQL; applied {len(result.applied)} migration(s)"
        f"{': ' + ', '.join(result.applied) if result.applied else ''};"
        f" {len(result.skipped)} already applied"
    )
    if not args.no_seed:
        counts = seed_reference(dsn, load_reference())
        print("reference data: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if args.admin:
        password = os.environ.get("QORGAU_ADMIN_PASSWORD", "")
        if not password:
            raise QorgauError("--admin needs the first admin's password in QORGAU_ADMIN_PASSWORD")
        made = users_cli.bootstrap_admin(dsn, args.admin, password)
        print(f"admin {args.admin}: " + ("created" if made else "exists already (left as it is)"))
    if args.service_identities:
        _service_identities(dsn)
    if args.grafana_reader:
        import psycopg

        from storage.readers import ensure_reader

        password = os.environ.get("QORGAU_GRAFANA_DB_PASSWORD", "")
        if not password:
            raise QorgauError(
                "--grafana-reader needs the reader's password in QORGAU_GRAFANA_DB_PASSWORD"
            )
        with psycopg.connect(dsn) as conn:
            made = ensure_reader(conn, args.grafana_reader, password)
        print(
            f"grafana reader {args.grafana_reader}: {'created' if made else 'updated'}"
            " (read-only: SELECT on the walls' tables)"
        )
    return 0


def _service_identities(dsn: str) -> None:
    """The services' MQTT identities, each with the secret its deployment gives it in
    ``QORGAU_MQTT_SECRET_<ROLE>`` (the same one that service's QORGAU_MQTT_URL carries)."""
    import psycopg

    from core.identities import SERVICE_RULES, IdentityKind
    from qorgau.devices import ensure_identity

    with psycopg.connect(dsn) as conn:
        for role in sorted(SERVICE_RULES):
            secret = os.environ.get(f"QORGAU_MQTT_SECRET_{role.upper()}", "")
            if len(secret) < 24:
                raise QorgauError(
                    f"QORGAU_MQTT_SECRET_{role.upper()}: the {role}'s MQTT secret"
                    " (24+ characters) is missing or too short"
                )
            ensure_identity(conn, role, secret, kind=IdentityKind.SERVICE, service=role)
            print(f"MQTT identity {role}: ready")


def cmd_bridge(settings: Settings, _args: argparse.Namespace) -> int:
    from stream.bridge import Bridge

    _require_db(settings)  # the device registry every message is checked against

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Bridge(settings).run(stop)

    asyncio.run(run())
    return 0


def cmd_notifier(settings: Settings, _args: argparse.Namespace) -> int:
    from alerts.routing import load_routing
    from stream.notifier import run_notifier

    _require_db(settings)
    catalogue = load_catalogue(settings.catalogue_path)
    routing = load_routing(settings.routing_path)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_notifier(settings, stop, catalogue=catalogue, routing=routing)

    asyncio.run(run())
    return 0


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    from core.limits import load_limits
    from stream.worker import run_worker

    _require_db(settings)
    catalogue = load_catalogue(settings.catalogue_path)
    limits = load_limits(settings.limits_path, catalogue)
    run_worker(settings, catalogue, limits, load_reference(catalogue))
    return 0


def cmd_api(settings: Settings, _args: argparse.Namespace) -> int:
    import uvicorn

    from api.main import create_app
    from core.limits import load_limits

    _require_db(settings)
    catalogue = load_catalogue(settings.catalogue_path)
    tls = settings.api_tls_cert is not None
    uvicorn.run(
        create_app(settings, catalogue, load_limits(settings.limits_path, catalogue)),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        ssl_certfile=str(settings.api_tls_cert) if tls else None,
        ssl_keyfile=str(settings.api_tls_key) if tls else None,
    )
    return 0


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from edge.simulator import Simulator

    ref = load_reference()
    wanted = set(args.enterprises.split(",")) if args.enterprises else None
    enterprises = [e for e in ref.enterprises if wanted is None or e.id in wanted]
    if not enterprises:
        raise QorgauError(f"no enterprise matches --enterprises {args.enterprises}")
    from core.limits import load_limits

    catalogue = load_catalogue(settings.catalogue_path)
    requests = _incident_requests(settings)
    requests.mkdir(parents=True, exist_ok=True)
    sim = Simulator(
        enterprises,
        catalogue,
        settings.mqtt_host,
        settings.mqtt_port,
        seed=args.seed,
        gateway_batch=args.gateway_batch,
        incident_every_s=args.incident_every,
        interval_scale=args.interval_scale,
        credentials=_read_credentials(args.credentials),
        limits=load_limits(settings.limits_path, catalogue),
        requests_dir=requests,
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_a: sim.stop())
    sim.run()
    return 0


def _incident_requests(settings: Settings) -> Path:
    return settings.state_dir / "simulate" / "requests"


def cmd_incident(settings: Settings, args: argparse.Namespace) -> int:
    import json
    import uuid

    folder = _incident_requests(settings)
    if not folder.is_dir():
        raise QorgauError(
            f"no simulator has run with state directory {settings.state_dir}:"
            " start `qorgau demo` in this directory first"
        )
    request = {"enterprise_id": args.enterprise, "kind": args.kind}
    if args.zone:
        request["zone_id"] = args.zone
    if args.sensor:
        request["sensor_id"] = args.sensor
    name = uuid.uuid4().hex
    tmp = folder / f"{name}.tmp"
    tmp.write_text(json.dumps(request))
    tmp.rename(folder / f"{name}.json")  # whole or not at all, for the simulator's glob
    done = folder / f"{name}.done"
    deadline = time.monotonic() + args.wait
    while not done.exists():
        if time.monotonic() > deadline:
            (folder / f"{name}.json").unlink(missing_ok=True)
            raise QorgauError(
                f"the simulator did not answer within {args.wait:g} s: is `qorgau demo` running"
                " in this directory?"
            )
        time.sleep(0.1)
    answer = done.read_text().strip()
    done.unlink(missing_ok=True)
    if answer.startswith("refused"):
        raise QorgauError(answer)
    print(f"{args.enterprise}: {answer}")
    return 0


def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.inbox import serve_inbox

    folder = Path(args.dir) if args.dir else settings.state_dir / "inbox"
    serve_inbox(folder, host=args.host, smtp_port=args.smtp_port, http_port=args.http_port)
    return 0


def _read_credentials(path: str | None) -> dict[str, str] | None:
    if path is None:
        return None
    import json

    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise QorgauError(f"cannot read device credentials from {path}: {exc}") from None
    return {str(k): str(v) for k, v in doc.items()}


def _run_stack(settings: Settings, *, simulate: bool, args: argparse.Namespace) -> int:
    import psycopg
    from rich.console import Console

    from qorgau.launcher import Stack

    console = Console(soft_wrap=True)
    sim_args: tuple[str, ...] = ()
    if simulate:
        sim_args = ("--incident-every", str(args.incident_every))
    stack = Stack(settings, simulate=simulate, simulate_args=sim_args, inbox=simulate)
    stopping = threading.Event()

    def on_signal(*_a: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    console.print("[bold]Qorgau[/bold]: starting the local stack…")
    t0 = time.monotonic()
    try:
        stack.start()
        s = stack.settings
        console.print(f"  MQTT broker   {s.mqtt_url}  [dim]{stack.mqtt_broker}[/dim]")
        console.print(f"  Kafka         {s.kafka_bootstrap}")
        console.print(f"  PostgreSQL    {s.database_url}")
        console.print(
            f"  API           {stack.api_url}/docs  (readings: {stack.api_url}/api/v1/enterprises)"
        )
        console.print(f"  Logs          {stack.state_dir / 'logs'}")
        assert s.database_url is not None
        if simulate:
            password = _demo_password(stack.state_dir)
            names = users_cli.demo_users(
                s.database_url,
                password,
                load_reference(),
                email_domain=DEMO_EMAIL_DOMAIN if stack.inbox_url else None,
            )
            console.print(
                f"  Sign in       admin / {password}  (every demo user has this password)"
            )
            console.print(
                f"  Wall          {stack.api_url}/wall  as control.national or control.karaganda"
            )
            console.print(
                f"  Users         {len(names)}: control.<region>, inspector.<region>,"
                " fire.<region>, officer.e001…, worker.e001…"
                " (`qorgau users list`)"
            )
            if stack.inbox_url:
                console.print(
                    f"  Inbox         {stack.inbox_url}  every e-mail the demo's users are sent"
                )
        else:
            with psycopg.connect(s.database_url) as conn:
                row = conn.execute("SELECT count(*) FROM users").fetchone()
            if row is not None and row[0] == 0:
                console.print("  Sign in       no users yet: create one with `qorgau users add`")
        console.print(f"  up in {time.monotonic() - t0:.1f} s. Ctrl-C stops everything.\n")
        reported = 0
        last_told = 0
        while not stopping.wait(5.0):
            for r in stack.restarts[reported:]:
                at = time.strftime("%H:%M:%S", time.localtime(r.at))
                if r.recycled:
                    console.print(
                        f"  {at}  the Kafka-protocol broker was restarted to free its memory"
                        f" (readings waited {r.down_s:.1f} s in the MQTT broker; none lost)"
                    )
                    continue
                code = f"exit {r.exit_code}" if r.exit_code is not None else "gone"
                console.print(
                    f"[yellow]  {at}  {r.name} died ({code}); started again after"
                    f" {r.down_s:.1f} s[/yellow]"
                )
            reported = len(stack.restarts)
            restarts = ", ".join(f"{k} {v}" for k, v in sorted(stack.restart_counts().items()))
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(s.database_url, connect_timeout=3) as conn,
            ):
                # Recent rows only (an index range): the table grows for weeks.
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE ts > now() - interval '10 seconds'),"
                    " count(DISTINCT sensor_id) FROM readings"
                    " WHERE ts > now() - interval '1 minute'"
                ).fetchone()
                rate, sensors = (int(row[0]) / 10.0, int(row[1])) if row else (0.0, 0)
                open_alerts = conn.execute(
                    "SELECT kind, count(*) FROM alerts WHERE state = 'open'"
                    " GROUP BY kind ORDER BY kind"
                ).fetchall()
                alerts = ", ".join(f"{k} {n}" for k, n in open_alerts) or "none"
                sent = conn.execute(
                    "SELECT count(*) FILTER (WHERE status = 'sent'), count(*) FROM deliveries"
                ).fetchone()
                told = conn.execute(
                    "SELECT d.id, d.recipient_name, d.channel, a.severity, a.kind,"
                    " coalesce(a.hazard, ''), a.enterprise_id"
                    " FROM deliveries d LEFT JOIN alerts a ON a.alert_key = d.alert_key"
                    " WHERE d.id > %s AND d.status = 'sent' ORDER BY d.id",
                    (last_told,),
                ).fetchall()
                for _id, who, channel, severity, kind, hazard, enterprise in told[:TOLD_LINES]:
                    what = " ".join(x for x in (severity, kind, hazard) if x) or "a digest"
                    console.print(
                        f"  [cyan]told {who} by {_CHANNEL_WORDS.get(channel, channel)}: {what}"
                        f"{f' at {enterprise}' if enterprise else ''}[/cyan]"
                    )
                if len(told) > TOLD_LINES:
                    console.print(f"  [cyan]… and {len(told) - TOLD_LINES} more[/cyan]")
                if told:
                    last_told = told[-1][0]
                console.print(
                    f"  {time.strftime('%H:%M:%S')}  {rate:,.1f} readings/s"
                    f"  sensors reporting: {sensors}  open alerts: {alerts}"
                    f"  notifications sent: {sent[0] if sent else 0:,} of {sent[1] if sent else 0:,}"
                    + (f"  restarts: {restarts}" if restarts else "")
                )
        return 0
    finally:
        console.print("stopping…")
        stack.stop()
        console.print("stopped; nothing left running.")


DEMO_EMAIL_DOMAIN = "qorgau.example"  # RFC 2606: never a real mail domain
TOLD_LINES = 5  # notifications listed per status line; the inbox page has them all
_CHANNEL_WORDS = {"email": "e-mail", "webpush": "push", "mqtt": "their app (MQTT)"}


def _demo_password(state_dir: Path) -> str:
    """The demo users' password: made up on the first demo, kept in the state directory."""
    path = state_dir / "demo-password"
    if path.exists():
        return path.read_text().strip()
    password = secrets.token_urlsafe(12)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    return _run_stack(settings, simulate=True, args=args)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    return _run_stack(settings, simulate=False, args=args)


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from core.limits import load_limits
    from stream.detection.detector import Detector
    from stream.replay import replay

    catalogue = load_catalogue(args.catalogue or settings.catalogue_path)
    limits = load_limits(args.limits or settings.limits_path, catalogue)
    reference = load_reference(catalogue, args.reference)
    detector = Detector(catalogue, limits, reference)
    models = None
    if settings.models and not args.no_models:
        from stream.detection.models import ModelBank, ModelSettings

        models = ModelBank(catalogue, limits, ModelSettings.from_settings(settings), reference)
    source = Path(args.input)
    if not source.is_file():
        raise QorgauError(f"no such input file: {source}")
    err = Console(stderr=True, soft_wrap=True)
    out = open(args.output, "wb") if args.output != "-" else sys.stdout.buffer  # noqa: SIM115
    try:
        with Progress(
            "replaying",
            BarColumn(),
            MofNCompleteColumn(),
            "readings",
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("replay", total=None)
            summary = replay(
                source,
                out,
                detector,
                models=models,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    for example in summary.examples:
        err.print(f"[yellow]skipped[/yellow] {example}")
    rejected = sum(summary.rejected.values())
    opened = ", ".join(f"{k} {v}" for k, v in sorted(summary.opened.items())) or "none"
    err.print(
        f"{summary.readings:,} readings from {summary.lines:,} lines in"
        f" {summary.seconds:.2f} s ({summary.readings_per_s:,.0f} readings/s);"
        f" {rejected:,} skipped"
        + (
            f" ({', '.join(f'{k} {v}' for k, v in sorted(summary.rejected.items()))})"
            if rejected
            else ""
        )
        + f"; alerts opened: {opened}"
    )
    return 0


def _params(pairs: list[str]) -> dict[str, float | int | str]:
    out: dict[str, float | int | str] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise QorgauError(f"--param takes NAME=VALUE, got {pair!r}")
        value: float | int | str = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def cmd_ml(settings: Settings, args: argparse.Namespace) -> int:
    import csv
    from datetime import datetime
    from pathlib import Path

    from online_ml import make_detector
    from online_ml.runner import score_series

    params = _params(args.param)
    try:
        make_detector(args.detector, **params)
    except ValueError as exc:
        raise QorgauError(str(exc)) from None

    def factory() -> Any:
        return make_detector(args.detector, **params)

    if args.ml_command == "score":
        source = Path(args.input)
        if not source.is_file():
            raise QorgauError(f"no such input file: {source}")
        times: list[float] = []
        values: list[float] = []
        stamps: list[str] = []
        with open(source, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"timestamp", "value"} <= set(reader.fieldnames):
                raise QorgauError(f"{source}: needs a header with timestamp,value")
            for line, row in enumerate(reader, start=2):
                try:
                    ts = datetime.fromisoformat(row["timestamp"])
                    values.append(float(row["value"]))
                except (TypeError, ValueError) as exc:
                    raise QorgauError(f"{source}:{line}: {exc}") from None
                times.append(ts.timestamp())
                stamps.append(row["timestamp"])
        scores = score_series(factory, times, values)
        out = open(args.output, "w", newline="") if args.output != "-" else sys.stdout  # noqa: SIM115
        try:
            writer = csv.writer(out)
            writer.writerow(["timestamp", "value", "anomaly_score"])
            for stamp, value, score in zip(stamps, values, scores, strict=True):
                writer.writerow([stamp, value, f"{score:.6f}"])
        finally:
            if out is not sys.stdout:
                out.close()
        print(f"{len(values):,} rows scored with {args.detector}", file=sys.stderr)
        return 0
    from online_ml.evaluate import run_nab

    nab = Path(args.nab)
    if not (nab / "labels" / "combined_windows.json").is_file() or not (nab / "data").is_dir():
        raise QorgauError(
            f"{nab}: not a NAB folder (needs data/ and labels/combined_windows.json;"
            " git clone https://github.com/numenta/NAB)"
        )
    return run_nab(
        nab,
        detector=args.detector,
        params=params,
        jobs=args.jobs,
        as_json=args.json,
        loco=args.loco,
    )


def cmd_bench(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.bench import run_bench, run_detection_bench

    if args.models:
        from qorgau.bench_models import run_models_bench

        return run_models_bench(args.readings, as_json=args.json)
    if args.detection:
        run_detection_bench(args.readings, as_json=args.json)
        return 0
    if args.escalation:
        from qorgau.bench_alerts import run_escalation_bench

        run_escalation_bench(settings, args.escalation, as_json=args.json)
        return 0
    if args.app:
        from qorgau.bench_app import run_app_bench

        run_app_bench(settings, args)
        return 0
    if args.wall:
        from qorgau.bench_wall import run_wall_bench

        wall = run_wall_bench(settings, args)
        return 0 if all(p.missing == 0 for p in wall.phases) else 1
    if args.alerts:
        from qorgau.bench_alerts import print_alert_bench, run_alert_bench

        result = run_alert_bench(settings, args)
        print_alert_bench(result, as_json=args.json)
        return 0 if result.missing == 0 else 1
    return run_bench(settings, args)


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    return users_cli.cmd_users(_require_db(settings), args, settings=settings)


def cmd_certs(_settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.certs import cmd_certs as run

    return run(args)


def cmd_secrets(_settings: Settings, _args: argparse.Namespace) -> int:
    from qorgau.certs import env_secrets

    print(env_secrets(), end="")
    return 0


def cmd_chaos(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.chaos import cmd_chaos as run

    return run(settings, args)


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.plant_eval import cmd_eval as run

    return run(settings, args)


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.dashboards_cli import cmd_dashboards as run

    return run(settings, args)


def cmd_devices(settings: Settings, args: argparse.Namespace) -> int:
    from qorgau.devices import cmd_devices as run

    return run(settings, args)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qorgau", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "demo",
        help="start everything on this machine, with simulated enterprises",
        description="`qorgau up` plus a simulator of the 12 seeded enterprises (192 sensors, each"
        " connecting to MQTT as itself) and one demo user per role; prints how to sign in.",
    ).add_argument(
        "--incident-every",
        type=float,
        default=120.0,
        help="mean seconds between injected incidents (0 = none)",
    )
    sub.add_parser(
        "up",
        help="start everything on this machine, without the simulator",
        description="Start the local stack: an embedded PostgreSQL (unless QORGAU_DATABASE_URL),"
        " Mosquitto with per-identity passwords and ACLs (unless QORGAU_MQTT_URL), Tansu (unless"
        " QORGAU_KAFKA_BOOTSTRAP), then the bridge, worker(s), notifier and API, each supervised:"
        " a component that dies is started again. State lives in QORGAU_STATE_DIR (.qorgau/)."
        " Ctrl-C stops everything.",
    )
    mig = sub.add_parser("migrate", help="apply database migrations and seed reference data")
    mig.add_argument(
        "--no-seed", action="store_true", help="do not upsert regions/industries/enterprises"
    )
    mig.add_argument(
        "--admin",
        metavar="NAME",
        help="create this first admin if missing (password from QORGAU_ADMIN_PASSWORD)",
    )
    mig.add_argument(
        "--service-identities",
        action="store_true",
        help="give the bridge, notifier and API their MQTT identities"
        " (secrets from QORGAU_MQTT_SECRET_BRIDGE, _NOTIFIER, _API)",
    )
    mig.add_argument(
        "--grafana-reader",
        metavar="ROLE",
        help="create or update Grafana's read-only database role (password from"
        " QORGAU_GRAFANA_DB_PASSWORD): SELECT on what the walls show, nothing else",
    )
    sub.add_parser(
        "bridge",
        help="run the MQTT -> Kafka bridge",
        description="Subscribe to readings, statuses and app reports on QORGAU_MQTT_URL (QoS 1,"
        " persistent session, the service identity in the URL), check each message against the"
        " device registry in QORGAU_DATABASE_URL, pack readings into Kafka messages on"
        " QORGAU_KAFKA_BOOTSTRAP and acknowledge MQTT only once Kafka has them. Refused"
        " messages go to the dead-letter topic with the reason. Run N replicas with"
        " QORGAU_BRIDGE_SHARED_GROUP, each with its own MQTT identity.",
    )
    sub.add_parser(
        "worker",
        help="run a Faust stream worker",
        description="Consume readings and app reports from Kafka (QORGAU_KAFKA_BOOTSTRAP),"
        " store them in QORGAU_DATABASE_URL, run the safety rules and the online models,"
        " publish alert changes, and commit offsets only after the database did. Run up to"
        " QORGAU_KAFKA_PARTITIONS replicas (QORGAU_INSTANCE names each).",
    )
    sub.add_parser(
        "api",
        help="run the HTTP API",
        description="Serve the HTTP API on QORGAU_API_HOST:QORGAU_API_PORT (HTTPS with"
        " QORGAU_API_TLS_CERT/QORGAU_API_TLS_KEY) from QORGAU_DATABASE_URL; OpenAPI at /docs.",
    )
    sub.add_parser(
        "notifier",
        help="tell people: route alert changes, escalate, send digests",
        description="Consume alert changes from Kafka, record one delivery per person and"
        " channel (Web Push, e-mail, webhook, MQTT to workers' apps, apprise) by the routing"
        " file, retry and log them; escalate unacknowledged critical alerts and send digests."
        " Any number of replicas (deliveries are idempotent), each with its own MQTT identity.",
    )
    inc = sub.add_parser(
        "incident",
        help="ask the running demo's simulator for a major incident (a critical alarm)",
        description="The demo's simulator starts, within a second, a gas leak whose readings"
        " cross the critical limit (or a fire: heat, smoke and CO in one zone) at ENTERPRISE,"
        " so the alarm can be followed to the wall, the inbox and the API.",
    )
    inc.add_argument("enterprise", help="an enterprise id of the demo, e.g. E001")
    inc.add_argument("--kind", choices=["gas", "fire"], default="gas")
    inc.add_argument("--zone", help="a zone id of that enterprise (default: the first fitting)")
    inc.add_argument("--sensor", help="the gas sensor (default: the first of the zone)")
    inc.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the answer")
    inbox = sub.add_parser(
        "inbox",
        help="the demo's local mail server and a page to read what it received",
        description="Accept e-mail over SMTP on HOST:SMTP_PORT into a Maildir (default"
        " STATE/inbox) and list it at http://HOST:HTTP_PORT/ — how `qorgau demo` shows the"
        " notifications it sends. A development tool: deployments use a real mail server.",
    )
    inbox.add_argument("--host", default="127.0.0.1")
    inbox.add_argument("--smtp-port", type=int, default=8025)
    inbox.add_argument("--http-port", type=int, default=8026)
    inbox.add_argument("--dir", help="the Maildir (default: STATE/inbox)")
    sim = sub.add_parser("simulate", help="publish simulated sensor readings over MQTT")
    sim.add_argument("--enterprises", help="comma-separated enterprise ids (default: all)")
    sim.add_argument("--seed", type=int, default=42)
    sim.add_argument(
        "--gateway-batch", type=int, default=10, help="readings per gateway batch message"
    )
    sim.add_argument(
        "--incident-every",
        type=float,
        default=120.0,
        help="mean seconds between injected incidents (0 = none)",
    )
    sim.add_argument(
        "--credentials",
        help="JSON file of sensor id -> MQTT secret (each sensor connects as itself)",
    )
    sim.add_argument(
        "--interval-scale",
        type=float,
        default=1.0,
        help="multiply every sensor's reporting interval",
    )
    rep = sub.add_parser(
        "replay", help="run safety detection and the online models over a JSON Lines file"
    )
    rep.add_argument(
        "input", help="readings, one JSON object per line (payload + enterprise_id, sensor_id)"
    )
    rep.add_argument(
        "-o", "--output", default="-", help="alerts opened, JSON Lines (default: stdout)"
    )
    rep.add_argument("--limits", help="limits file (default: the packaged core/data/limits.toml)")
    rep.add_argument("--catalogue", help="hazard catalogue (default: the packaged one)")
    rep.add_argument(
        "--reference",
        help="enterprises, zones and sensors (default: the packaged core/data/enterprises.toml;"
        " e.g. the enterprises.toml of qorgau eval plant)",
    )
    rep.add_argument(
        "--no-models",
        action="store_true",
        help="safety rules only, without the online anomaly models (QORGAU_MODELS=false)",
    )
    ml = sub.add_parser("ml", help="online anomaly models: score a series, evaluate on NAB")
    ml_sub = ml.add_subparsers(dest="ml_command", required=True, metavar="ML_COMMAND")
    ml_score = ml_sub.add_parser("score", help="score a timestamp,value CSV with a fresh model")
    ml_score.add_argument("input")
    ml_score.add_argument("-o", "--output", default="-", help="CSV out (default: stdout)")
    ml_eval = ml_sub.add_parser("evaluate", help="NAB scores over a NAB-layout folder")
    ml_eval.add_argument("--nab", required=True, help="folder with data/ and labels/")
    ml_eval.add_argument("--jobs", type=int, default=2, help="processes scoring series")
    ml_eval.add_argument("--json", action="store_true")
    ml_eval.add_argument(
        "--loco",
        action="store_true",
        help="also leave one category out: each scored at the threshold chosen on the others",
    )
    for ml_parser in (ml_score, ml_eval):
        ml_parser.add_argument(
            "--detector", default="default", help="detector name (see online_ml)"
        )
        ml_parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="detector parameter, repeatable",
        )
    users_cli.add_parser(sub)
    from qorgau.devices import add_parser as add_devices_parser

    add_devices_parser(sub)
    from qorgau.chaos import add_parser as add_chaos_parser

    add_chaos_parser(sub)
    from qorgau.plant_eval import add_parser as add_eval_parser

    add_eval_parser(sub)
    from qorgau.certs import add_parser as add_certs_parser
    from qorgau.dashboards_cli import add_parser as add_dashboards_parser

    add_dashboards_parser(sub)

    add_certs_parser(sub)
    sub.add_parser(
        "secrets",
        help="print a .env for docker-compose.yml with every secret made at random",
    )
    bench = sub.add_parser("bench", help="measure end-to-end throughput, latency, loss")
    bench.add_argument("-n", "--readings", type=int, default=100_000)
    bench.add_argument(
        "--batch",
        type=int,
        nargs="+",
        default=[1, 50],
        help="readings per MQTT message; one run per value",
    )
    bench.add_argument("--sensors", type=int, default=200)
    bench.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="publish at this many readings/s (0 = as fast as possible)",
    )
    bench.add_argument("--publishers", type=int, default=2, help="publishing processes")
    bench.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for every reading to be stored",
    )
    bench.add_argument("--json", action="store_true", help="print the results as JSON")
    bench.add_argument(
        "--detection",
        action="store_true",
        help="measure safety detection alone on one core (no brokers)",
    )
    bench.add_argument(
        "--alerts",
        action="store_true",
        help="latency from a critical reading to Web Push accepted by a local push service, "
        "under the --readings/--rate load (default rate 5000/s)",
    )
    bench.add_argument("--probes", type=int, default=60, help="critical readings (--alerts)")
    bench.add_argument(
        "--escalation",
        type=int,
        default=0,
        metavar="N",
        help="time the notifier's tick with N unacknowledged critical alerts open",
    )
    bench.add_argument(
        "--probe-every", type=float, default=1.0, help="seconds between probes (--alerts)"
    )
    bench.add_argument(
        "--app",
        action="store_true",
        help="the people's app on a throttled phone in headless Chromium: time to interactive,"
        " page weight, sign-in to alarms",
    )
    bench.add_argument(
        "--wall",
        type=int,
        default=0,
        metavar="N",
        help="the control room's wall in headless Chromium with N alarms open: time to the "
        "first render, cost per update, memory",
    )
    bench.add_argument(
        "--updates", type=int, default=200, help="changes per phase, steady and burst (--wall)"
    )
    bench.add_argument(
        "--update-rate",
        type=float,
        default=2.0,
        help="changes/s of the steady phase (--wall); the burst goes as fast as they commit",
    )
    bench.add_argument(
        "--models",
        action="store_true",
        help="measure every online anomaly detector: CPU per reading, memory, checkpoint size",
    )
    return p


COMMANDS = {
    "demo": cmd_demo,
    "up": cmd_up,
    "migrate": cmd_migrate,
    "bridge": cmd_bridge,
    "worker": cmd_worker,
    "notifier": cmd_notifier,
    "api": cmd_api,
    "simulate": cmd_simulate,
    "inbox": cmd_inbox,
    "incident": cmd_incident,
    "bench": cmd_bench,
    "replay": cmd_replay,
    "ml": cmd_ml,
    "users": cmd_users,
    "devices": cmd_devices,
    "dashboards": cmd_dashboards,
    "chaos": cmd_chaos,
    "eval": cmd_eval,
    "certs": cmd_certs,
    "secrets": cmd_secrets,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = _settings()
    except ValidationError as exc:
        print(f"qorgau: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json, component=args.command)
    try:
        return COMMANDS[args.command](settings, args)
    except QorgauError as exc:
        print(f"qorgau {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `qorgau replay ... | head`: whoever read our output has stopped; not an error.
        # Point stdout at /dev/null so that the final flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
