"""Schemathesis over every documented operation of the real API, as every role and as nobody.

The API runs in-process with its lifespan (pool, live feed) against a real migrated
database holding alerts (one of them with an infinite value), readings and a logged
delivery. For each caller — anonymous, and one user of every role and kind of scope —
every operation of the OpenAPI document gets generated requests, valid ones and
invalid ones (including NUL characters and numbers past int64), and every answer must
be documented: no 5xx, a status code the operation lists, its content type, its body
schema.

Slow (``pytest -m slow``): about 200 operation × caller pairs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis
import hypothesis.errors
import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from alerts.lifecycle import apply_machine_events
from api import create_app
from core.access import Role
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.reference import load_reference
from core.settings import Settings
from storage.deliveries import create_delivery
from storage.migrate import migrate
from storage.reference import seed_reference
from tests.alerts.conftest import free_port
from tests.conftest import _create_database, _drop_database
from tests.people import bearer, ensure_user

pytestmark = [
    pytest.mark.slow,
    # Schemathesis' own strategies draw from `random`; not ours to change.
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

# Every role and kind of scope, and nobody at all.
CALLERS: dict[str, tuple[Role, list[str], str | None] | None] = {
    "anonymous": None,
    "admin": (Role.ADMIN, [], None),
    "labour_inspector": (Role.LABOUR_INSPECTOR, ["KZ-35"], None),
    "fire_inspector": (Role.FIRE_INSPECTOR, ["KZ-55", "KZ-35"], None),
    "safety_officer": (Role.SAFETY_OFFICER, [], "E001"),
    "worker": (Role.WORKER, [], "E001"),
    "control_room_regional": (Role.CONTROL_ROOM, ["KZ-35"], None),
    "control_room_national": (Role.CONTROL_ROOM, [], None),
}
POSITIVE_EXAMPLES = 40  # valid requests per operation and caller
NEGATIVE_EXAMPLES = 20  # invalid ones
# Statuses, content types and bodies as documented. A 5xx only where the operation says
# so itself: /ready's 503 is its answer while Kafka or MQTT is down (as here).
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


def _no_undocumented_server_error(case: Any, status: int) -> None:
    documented = {str(code) for code in case.operation.definition.raw.get("responses", {})}
    assert status < 500 or str(status) in documented, (
        f"{case.operation.label} answered {status}: {case.as_curl_command()}"
    )


def _data(database_url: str) -> None:
    """Alerts in the callers' enterprises (one infinite), readings, a delivery."""
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    events = [
        AlertEvent(
            action=AlertAction.OPEN,
            key=f"{sensor}|threshold|{uuid.uuid4().hex}",
            kind=AlertKind.THRESHOLD,
            severity=Severity.CRITICAL,
            enterprise_id=sensor.split("-")[0],
            sensor_id=sensor,
            hazard="co",
            ts=t,
            value=value,
            limit=20.0,
            message="CO over the threshold",
            details={"source": "rule"},
        )
        for sensor, value in (
            (f"E001-st{uuid.uuid4().hex[:6]}", 90.0),
            (f"E001-st{uuid.uuid4().hex[:6]}", float("inf")),
            (f"E003-st{uuid.uuid4().hex[:6]}", 45.0),
        )
    ]

    async def store() -> None:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            await apply_machine_events(conn, events)
            await create_delivery(
                conn,
                change_id=f"schemathesis-{uuid.uuid4().hex}|open",
                alert_key=events[0].key,
                recipient="user:schemathesis",
                recipient_name="schemathesis",
                language="ru",
                channel="apprise",
                address="tgram://123456:SECRET-BOT-TOKEN/-100123",
                target_secret=None,
                p256dh=None,
                auth=None,
                subscription_id=None,
                notification={"message": "CO"},
                now=t,
                claimed_by="schemathesis",
                claimed_until=t,
            )
            await conn.commit()

    asyncio.run(store())


@pytest.fixture(scope="module")
def own_database_url() -> Iterator[str]:
    """A database of this module's own: what the generated requests acknowledge, resolve
    and lock stays out of every other test's way."""
    name, url = _create_database()
    try:
        migrate(url)
        seed_reference(url, load_reference())
        yield url
    finally:
        _drop_database(name)


@pytest.fixture(scope="module")
def api(
    own_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, dict[str, dict[str, str]]]]:
    """The schema of the running app, and each caller's headers."""
    database_url = own_database_url
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        state_dir=tmp_path_factory.mktemp("schemathesis-state"),
        # Nothing listens there: /ready answers its documented 503 at once.
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
    )
    _data(database_url)
    headers = {
        name: bearer(settings, ensure_user(database_url, f"t-st-{name}", *who))
        if who is not None
        else {}
        for name, who in CALLERS.items()
    }
    app = create_app(settings)
    config = schemathesis.Config.from_dict(
        # The live feed never ends: its first event is enough.
        {"max-stream-events": 1, "request-timeout": 10}
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    try:
        yield schema, headers
    finally:
        asgi.shutdown_lifespans()


def _exercise(operation: Any, headers: dict[str, str], seen: Counter[int]) -> list[str]:
    """Every failing check of ``operation`` as ``headers``' caller (empty: all passed);
    counts the statuses answered into ``seen``."""
    failures: list[str] = []
    for mode, examples in (
        (schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
        (schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
    ):

        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=examples,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            seen[response.status_code] += 1
            _no_undocumented_server_error(case, response.status_code)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except hypothesis.errors.Unsatisfiable:
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            continue  # nothing to send wrong: no parameters, no body
        except Exception as exc:  # report every operation, not just the first
            failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_operation_answers_as_documented(
    caller: str, api: tuple[Any, dict[str, dict[str, str]]]
) -> None:
    schema, headers = api
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    started = time.monotonic()
    seen: Counter[int] = Counter()
    failures = [f for op in operations for f in _exercise(op, headers[caller], seen)]
    elapsed = time.monotonic() - started
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(seen.items()))
    print(
        f"{caller}: {len(operations)} operations, {seen.total()} requests ({statuses}) in {elapsed:.1f} s"
    )
    assert not failures, "\n\n".join(failures)


def test_the_schema_is_the_apps_own(api: tuple[Any, dict[str, dict[str, str]]]) -> None:
    """What is exercised is the document the app serves: sign-in, alerts, the feed..."""
    schema, _ = api
    labels = {result.ok().label for result in schema.get_all_operations()}
    for label in (
        "POST /api/v1/login/access-token",
        "GET /api/v1/alerts/feed",
        "GET /api/v1/deliveries/{delivery_id}",
    ):
        assert label in labels
