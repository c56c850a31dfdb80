"""``docker-compose.yml`` as ``docker compose config`` would take it, and as an operator would
hit it: no Docker engine runs here, so the file is interpolated from ``deploy/example.env``
and checked against the Compose Specification's JSON schema, then for what the schema
cannot know (data paths, shared settings, start order, health checks, secrets)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
QORGAU_SERVICES = ("setup", "mqtt-auth", "bridge", "worker", "notifier", "api", "tools")


def example_env() -> dict[str, str]:
    env = {}
    for line in (ROOT / "deploy" / "example.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and not value:
            return arg
        return value or ""

    return _VAR.sub(one, text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    text = interpolate((ROOT / "docker-compose.yml").read_text(), example_env())
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    return doc


def test_the_file_is_valid_by_the_compose_specification(compose: dict[str, Any]) -> None:
    jsonschema.validate(compose, SCHEMA)


def test_every_required_variable_is_in_the_example_env() -> None:
    raw = (ROOT / "docker-compose.yml").read_text()
    required = {m.group(1) for m in _VAR.finditer(raw) if m.group(2) in (":?", "?")}
    assert required <= set(example_env()), required - set(example_env())
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw, {})  # an operator who forgot .env is told what is missing


def test_postgresql_18_keeps_its_data_on_the_volume(compose: dict[str, Any]) -> None:
    db = compose["services"]["timescaledb"]
    assert "timescale-data:/var/lib/postgresql" in db["volumes"]
    assert "pg18" in db["image"]


def test_kafka_keeps_its_data_on_its_volume(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"]
    assert f"kafka-data:{log_dirs}" in kafka["volumes"]
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_every_qorgau_service_keeps_the_shared_settings(compose: dict[str, Any]) -> None:
    # YAML merges are shallow: a service's own `environment` must merge the shared one.
    shared = {"QORGAU_DATABASE_URL", "QORGAU_KAFKA_BOOTSTRAP", "QORGAU_JWT_SECRET",
              "QORGAU_ENVIRONMENT", "QORGAU_PUBLIC_URL", "QORGAU_STATE_DIR"}  # fmt: skip
    for name in QORGAU_SERVICES:
        env = compose["services"][name]["environment"]
        assert shared <= set(env), (name, shared - set(env))
        assert env["QORGAU_ENVIRONMENT"] == "production"
        assert env["QORGAU_PUBLIC_URL"].startswith("https://")


def test_services_start_after_a_successful_setup_and_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in ("mqtt-auth", "bridge", "worker", "notifier", "api"):
        depends = services[name]["depends_on"]
        assert depends["setup"] == {"condition": "service_completed_successfully"}, name
    assert services["setup"]["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    assert services["setup"]["restart"] == "no"
    assert services["setup"]["command"][:1] == ["migrate"]
    assert "--admin" in services["setup"]["command"]  # the first admin
    for name, service in services.items():
        if name != "setup" and "tools" not in service.get("profiles", []):
            assert "healthcheck" in service, f"{name} has no health check"


def test_the_broker_is_authenticated_tls_and_persistent(compose: dict[str, Any]) -> None:
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    lines = {line.strip() for line in conf.splitlines()}
    assert {"allow_anonymous false", "use_username_as_clientid true", "persistence true",
            "listener 8883", "set_tcp_nodelay true"} <= lines  # fmt: skip
    assert "allow_anonymous true" not in lines
    broker = compose["services"]["mosquitto"]
    assert broker["ports"] == ["8883:8883"]  # only the TLS listener leaves the host
    assert "./deploy/mosquitto.conf:/mosquitto/config/mosquitto.conf:ro" in broker["volumes"]
    auth = compose["services"]["mqtt-auth"]
    assert auth["pid"] == "service:mosquitto"
    assert auth["environment"]["QORGAU_MQTT_AUTH_DIR"] == "/mosquitto/auth"


def test_each_service_connects_to_mqtt_as_itself(compose: dict[str, Any]) -> None:
    env = example_env()
    for name, role in (("bridge", "BRIDGE"), ("notifier", "NOTIFIER"), ("api", "API")):
        url = compose["services"][name]["environment"]["QORGAU_MQTT_URL"]
        assert url == f"mqtt://{name}:{env[f'QORGAU_MQTT_SECRET_{role}']}@mosquitto:1883"
    api = compose["services"]["api"]["environment"]
    assert api["QORGAU_API_TLS_CERT"] and api["QORGAU_API_TLS_KEY"]


def test_grafana_brings_the_walls_up_from_the_provisioning(compose: dict[str, Any]) -> None:
    from dashboards.build import DASHBOARDS_PATH, DATASOURCE_ENV

    grafana = compose["services"]["grafana"]
    image, _, tag = grafana["image"].partition(":")
    assert image == "grafana/grafana-oss" and re.fullmatch(r"12\.\d+\.\d+", tag), tag
    assert grafana["ports"] == ["3000:3000"]
    assert grafana["depends_on"]["timescaledb"] == {"condition": "service_healthy"}
    assert grafana["depends_on"]["setup"] == {"condition": "service_completed_successfully"}
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode)
    generated = ROOT / "deploy" / "grafana"
    for sub in ("datasources", "dashboards"):
        source, mode = mounts[f"/etc/grafana/provisioning/{sub}"]
        assert mode == ["ro"] and (ROOT / source).resolve() == generated / "provisioning" / sub
        assert (ROOT / source / "qorgau.yaml").is_file()
    source, mode = mounts[DASHBOARDS_PATH]  # where the provider reads the walls
    assert mode == ["ro"] and (ROOT / source).resolve() == generated / "dashboards"
    assert sorted(p.name for p in (ROOT / source).glob("*.json")) == [
        "qorgau-enterprise.json",
        "qorgau-national.json",
        "qorgau-region.json",
        "qorgau-sensor.json",
    ]
    # The data source's variables point at the compose database, with the database's password.
    env = grafana["environment"]
    assert set(DATASOURCE_ENV.values()) <= set(env)
    assert env[DATASOURCE_ENV["host"]] == "timescaledb:5432"
    # ...as the read-only role the setup job keeps, with the password the job gives it.
    assert env[DATASOURCE_ENV["user"]] == "grafana"
    assert env[DATASOURCE_ENV["password"]] == example_env()["GRAFANA_DB_PASSWORD"]
    setup = compose["services"]["setup"]
    command = setup["command"]
    assert command[command.index("--grafana-reader") + 1] == "grafana"
    assert (
        setup["environment"]["QORGAU_GRAFANA_DB_PASSWORD"] == example_env()["GRAFANA_DB_PASSWORD"]
    )
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == example_env()["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
