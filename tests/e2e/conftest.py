"""A real stack for end-to-end tests: Mosquitto (or amqtt), Tansu, the session's
PostgreSQL database, and the bridge, the worker and the notifier as child processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from qorgau.launcher import Stack

MODEL_WARMUP = 50


@pytest.fixture(scope="session")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state: Path = tmp_path_factory.mktemp("stack")
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        state_dir=state,
        kafka_partitions=4,
        model_warmup=MODEL_WARMUP,  # short, so that minutes of test data reach the models
    )
    with Stack(settings, components=("bridge", "worker", "notifier")) as s:
        yield s
