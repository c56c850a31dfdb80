"""`qorgau bench --app` in the real Chromium: its figures have the right shape, the shell
is under the issue's 300 KB, and the warm load comes from the service worker's cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from qorgau.bench_app import measure_app
from qorgau.browser import chromium_executable
from tests.conftest import seeded_database


def test_the_app_bench_times_a_cold_and_a_warm_load_and_a_sign_in(tmp_path: Path) -> None:
    if chromium_executable() is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with seeded_database() as url:
        settings = Settings(_env_file=None, database_url=url, state_dir=tmp_path)  # type: ignore[call-arg]
        r = measure_app(settings, alarms=3)
    cold, warm = r.loads
    assert cold.name == "cold" and 0 < cold.form_shown_ms <= cold.interactive_ms
    assert 10_000 < cold.transferred_bytes < 300_000  # the budget for the shell
    assert warm.transferred_bytes < cold.transferred_bytes / 4  # from the worker's cache
    assert r.alarms == 3 and r.sign_in_to_alarms_ms > 0
    assert sum(r.shell_bytes.values()) < 300_000 and r.shell_bytes["app.js"] > 0
