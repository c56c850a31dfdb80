"""Settings for every component, read from ``QORGAU_*`` environment variables (or a ``.env`` file).

Built only by the composition root (`qorgau`), never at import time.

>>> s = Settings(_env_file=None, database_url="postgresql://db/qorgau")
>>> s.kafka_partitions, s.readings_topic
(8, 'qorgau.readings')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError
from core.statefiles import local_secret

__all__ = [
    "JWT_SECRET_FILE",
    "MIN_SECRET_LENGTH",
    "WEBHOOK_SECRET_FILE",
    "LocalSecret",
    "Settings",
]

# Where a local stack keeps the secrets nobody configured (development only).
JWT_SECRET_FILE = "jwt-secret"
WEBHOOK_SECRET_FILE = "webhook-secret"
_LOCAL_SECRETS = {"jwt_secret": JWT_SECRET_FILE, "webhook_secret": WEBHOOK_SECRET_FILE}
MIN_SECRET_LENGTH = 32
# Earlier versions published their development key in this file; whoever read it could
# sign tokens for any demo. It is refused everywhere, whatever the environment.
_PUBLISHED_SECRETS = frozenset({"qorgau-development-secret-do-not-use-in-production"})
_DEFAULT_STATE_DIR = Path(".qorgau")


class LocalSecret(SecretStr):
    """A secret nobody configured: the local stack's own, made at random on first use.

    It is read from (or made in) ``state_dir / name`` only when its value is asked for
    (`core.statefiles.local_secret`), so settings can be built, printed and compared
    without touching the disk, and every process of one stack shares the value. A file
    holding fewer than `MIN_SECRET_LENGTH` characters is refused (`ConfigError`).
    """

    def __init__(self, state_dir: Path, name: str) -> None:
        super().__init__("")
        self.path = state_dir / name

    def get_secret_value(self) -> str:
        value = local_secret(self.path.parent, self.path.name)
        if len(value) < MIN_SECRET_LENGTH:  # emptied or edited by hand: anyone could sign
            raise ConfigError(
                f"{self.path} holds no usable secret (fewer than {MIN_SECRET_LENGTH}"
                " characters); delete it and a new one is made"
            )
        return value

    def _display(self) -> str:
        return "**********"

    def __repr__(self) -> str:
        return f"LocalSecret({str(self.path)!r})"

    def __len__(self) -> int:
        return len(self.get_secret_value())


def _configured(value: Any) -> bool:
    """Whether a raw setting holds a secret (an empty one is none)."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return bool(value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QORGAU_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    log_level: str = "INFO"
    log_json: bool = False

    # Infrastructure. `qorgau demo`/`up` fill these in for the embedded stack.
    database_url: str | None = Field(
        default=None, description="libpq DSN; unset means an embedded PostgreSQL for demo/up"
    )
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    kafka_bootstrap: str = "127.0.0.1:9092"
    timescale: Literal["auto", "on", "off"] = "auto"
    mqtt_ca_file: Path | None = Field(
        default=None,
        description="CA certificate that signed the broker's (mqtts://); default: system CAs",
    )
    mqtt_auth_dir: Path | None = Field(
        default=None,
        description="where `qorgau devices sync` writes the broker's password and ACL files",
    )
    mqtt_reload_command: str | None = Field(
        default=None,
        description="run after those files change so the broker reads them (e.g. kill -HUP 1)",
    )

    # Kafka topics. Partitions are declared explicitly (brokers' defaults differ).
    kafka_partitions: int = Field(default=8, ge=1)
    readings_topic: str = "qorgau.readings"
    status_topic: str = "qorgau.status"
    reports_topic: str = "qorgau.reports"
    deadletter_topic: str = "qorgau.deadletter"
    alerts_topic: str = "qorgau.alerts"

    # Bridge: MQTT -> Kafka.
    bridge_client_id: str = "qorgau-bridge"
    bridge_shared_group: str | None = Field(
        default=None, description="MQTT 5 shared-subscription group to spread load over replicas"
    )
    bridge_linger_ms: float = Field(default=5.0, ge=0, description="pack window per enterprise")
    bridge_max_pack: int = Field(default=500, ge=1, description="readings per Kafka message")
    bridge_max_inflight: int = Field(default=20000, ge=1)
    bridge_registry_refresh_s: float = Field(
        default=30.0, gt=0, description="seconds between reloads of the device registry"
    )
    bridge_kafka_replay_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description=(
            "seconds of Kafka messages before a crash that the bridge sends again when the"
            " stack's memory-only Kafka-protocol broker restarts empty (0: a real Kafka keeps"
            " what it acknowledged)"
        ),
    )

    # Worker: Kafka -> storage.
    worker_app_id: str = "qorgau-worker"
    worker_batch_messages: int = Field(default=200, ge=1)
    worker_batch_within_s: float = Field(default=0.05, gt=0)
    worker_concurrency: int = Field(
        default=1, ge=1, description="agent instances per worker (2 overlaps parsing and writing)"
    )
    worker_pool_size: int = Field(
        default=3, ge=1, description="most PostgreSQL connections one worker process holds"
    )
    worker_fetch_max_wait_ms: int = Field(
        default=100, ge=1, description="longest a Kafka fetch may wait for data (ms)"
    )
    workers: int = Field(
        default=1, ge=1, description="worker processes `qorgau demo`/`up`/`bench` start"
    )
    instance: str = Field(
        default="", description="names this process among replicas (ready marker, Faust datadir)"
    )
    worker_checkpoint_s: float = Field(
        default=5.0, gt=0, description="seconds between detection checkpoints per enterprise"
    )
    worker_idle_s: float = Field(
        default=60.0,
        gt=0,
        description="seconds without any reading before event time advances by the wall clock",
    )
    models: bool = Field(
        default=True, description="run the online anomaly models after the safety rules"
    )
    model_detector: str = Field(default="departure", description="online model (see online_ml)")
    model_budget: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="anomaly alerts a sensor may raise per 100 days of normal operation",
    )
    model_warmup: int = Field(
        default=1000, ge=0, description="readings of a sensor before its model may alert"
    )
    model_resolution_s: float = Field(
        default=10.0,
        ge=0,
        description="the models see one mean per window this long, per sensor (0: every reading)",
    )
    model_threshold: float | None = Field(
        default=None, gt=0, le=1, description="anomaly alert threshold (default: the model's own)"
    )
    model_checkpoint_s: float = Field(
        default=300.0, gt=0, description="seconds between model checkpoints per enterprise"
    )
    limits_path: Path | None = Field(
        default=None, description="limits file (default: the packaged core/data/limits.toml)"
    )
    catalogue_path: Path | None = Field(
        default=None, description="hazard catalogue (default: the packaged one)"
    )
    worker_web_port: int | None = None

    # API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_tls_cert: Path | None = Field(
        default=None, description="serve HTTPS with this certificate (PEM; see qorgau certs)"
    )
    api_tls_key: Path | None = Field(default=None, description="the key of api_tls_cert (PEM)")
    api_pool_size: int = Field(
        default=16, ge=2, description="most PostgreSQL connections one API process holds"
    )
    api_publish_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="how long the API waits for the MQTT broker to acknowledge a worker's"
        " report (s) before answering 503",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="where people open the API (links in messages)"
    )

    # Sign-in. Access tokens are short-lived; a refresh token gets a new one.
    jwt_secret: SecretStr = Field(
        default=SecretStr(""),  # unset: the state directory's own (a LocalSecret)
        description="HMAC key that signs tokens; unset in development: the state directory's own",
    )
    access_token_minutes: float = Field(default=15.0, gt=0, le=24 * 60)
    refresh_token_hours: float = Field(default=12.0, gt=0, le=30 * 24)

    # The control-room wall (api/static/wall): when its data counts as stale.
    wall_stale_after_s: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="no reading stored in the wall's scope for this long (s): a stale banner",
    )
    wall_silent_after_s: float = Field(
        default=20.0,
        gt=0,
        le=3600,
        description="a component without a heartbeat for this long (s) is silent",
    )

    # `qorgau dashboards push`: who it is in Grafana (a service account token, or a user
    # and password), and the database Grafana's data source reads (as Grafana reaches it;
    # default database_url). Secrets only from the environment, never the command line.
    grafana_token: SecretStr | None = Field(default=None, description="Grafana token")
    grafana_user: str | None = Field(default=None, description="Grafana user (with password)")
    grafana_password: SecretStr | None = Field(default=None, description="its password")
    grafana_database_url: str | None = Field(
        default=None, description="libpq URL of the database as Grafana reaches it"
    )

    alert_reopen_min: float = Field(
        default=30.0,
        ge=0,
        description="a condition back within this long after its alert was resolved re-opens it",
    )

    # Notifier: alert changes -> people.
    routing_path: Path | None = Field(
        default=None, description="routing file (default: the packaged core/data/routing.toml)"
    )
    notifier_group: str = "qorgau-notifier"
    notifier_pool_size: int = Field(
        default=16, ge=2, description="most PostgreSQL connections one notifier process holds"
    )
    notifier_tick_s: float = Field(
        default=5.0, gt=0, description="seconds between escalation/digest/late-route checks"
    )
    notifier_resume_s: float = Field(
        default=30.0, gt=0, description="seconds between sweeps for deliveries left unfinished"
    )
    notifier_max_age_s: float = Field(
        default=3600.0,
        gt=0,
        description="alert changes older than this (event time) are not sent to anyone",
    )

    # Delivery channels.
    smtp_url: str | None = Field(
        default=None, description="smtp://user:password@host:port (smtps:// for implicit TLS)"
    )
    smtp_from: str = "Qorgau <qorgau@localhost>"
    smtp_starttls: bool = False
    vapid_private_key: SecretStr | None = Field(
        default=None, description="Web Push VAPID key (PEM or base64url raw); dev generates one"
    )
    vapid_subject: str = "mailto:qorgau@localhost"
    push_services: list[str] = Field(
        default=[
            "fcm.googleapis.com",  # Chrome, Edge on Android, most Chromium browsers
            "push.services.mozilla.com",  # Firefox
            "notify.windows.com",  # Edge on Windows
            "push.apple.com",  # Safari
        ],
        description="hosts (and their subdomains) a Web Push subscription may point at; "
        "development also accepts 127.0.0.1/localhost",
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key for webhooks that have no secret of their own; unset in "
        "development: the state directory's own",
    )

    embedded_kafka_max_mb: float = Field(
        default=512.0,
        ge=0,
        description="the local stack restarts its memory-only Kafka-protocol broker, drained,"
        " when its memory passes this (MB; 0: never)",
    )

    # Local state of the embedded stack (pgdata, broker configs, logs, its own secrets).
    state_dir: Path = _DEFAULT_STATE_DIR

    @model_validator(mode="before")
    @classmethod
    def _local_secrets_where_none_is_set(cls, data: Any) -> Any:
        """A secret left unset (or empty) is the state directory's own `LocalSecret`."""
        if not isinstance(data, dict):
            return data
        state_dir = Path(data.get("state_dir") or _DEFAULT_STATE_DIR)
        unset = {
            name: LocalSecret(state_dir, file)
            for name, file in _LOCAL_SECRETS.items()
            if not _configured(data.get(name))
        }
        return {**data, **unset} if unset else data

    @model_validator(mode="after")
    def _no_published_or_weak_secrets(self) -> Settings:
        published = [
            name
            for name in _LOCAL_SECRETS
            if not isinstance(secret := getattr(self, name), LocalSecret)
            and secret.get_secret_value() in _PUBLISHED_SECRETS
        ]
        if published:
            names = ", ".join(f"QORGAU_{n.upper()}" for n in published)
            raise ValueError(
                f"{names}: this key was published in Qorgau's source and signs nothing; unset"
                f" it (development makes its own in QORGAU_STATE_DIR) or set a secret of your own"
            )
        if self.environment == "development":
            return self
        weak = [
            name
            for name in _LOCAL_SECRETS
            if isinstance(secret := getattr(self, name), LocalSecret)
            or len(secret.get_secret_value()) < MIN_SECRET_LENGTH
        ]
        if self.vapid_private_key is None:
            weak.append("vapid_private_key")
        if weak:
            names = ", ".join(f"QORGAU_{n.upper()}" for n in weak)
            raise ValueError(
                f"{names}: not set (or shorter than {MIN_SECRET_LENGTH} characters); in"
                f" {self.environment} every secret must be your own"
            )
        return self

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.api_tls_cert is None) != (self.api_tls_key is None):
            raise ValueError("QORGAU_API_TLS_CERT and QORGAU_API_TLS_KEY go together")
        for name in ("api_tls_cert", "api_tls_key", "mqtt_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"QORGAU_{name.upper()}: no such file {path}")
        return self

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("mqtt", "mqtts", "tcp"):
            raise ValueError("mqtt_url must look like mqtt://host:port")
        return v

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        parts = urlsplit(self.mqtt_url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def mqtt_tls(self) -> bool:
        return urlsplit(self.mqtt_url).scheme == "mqtts"

    @property
    def mqtt_username(self) -> str | None:
        name = urlsplit(self.mqtt_url).username
        return unquote(name) if name is not None else None

    @property
    def mqtt_password(self) -> str | None:
        secret = urlsplit(self.mqtt_url).password
        return unquote(secret) if secret is not None else None
