"""`qorgau bench --wall`: a small run (50 alarms, 5 changes a phase) in the real Chromium,
checked for its shape and that every row and change reached the screen; no timing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.settings import Settings
from qorgau.bench_wall import measure_wall
from qorgau.browser import chromium_executable
from tests.conftest import seeded_database


def test_the_wall_bench_sees_every_row_and_every_change(tmp_path: Path) -> None:
    if chromium_executable() is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with seeded_database() as url:
        settings = Settings(_env_file=None, database_url=url, state_dir=tmp_path)  # type: ignore[call-arg]
        r = measure_wall(settings, alerts=50, updates=5, rate=20.0, idle_s=1.5)
    assert r.alerts == 50 and r.rows_rendered == 50
    assert 0 < r.critical < 50 and 0 < r.acknowledged < 50 and r.enterprises > 1
    assert r.sign_in_ms < r.sign_in_to_all_rows_ms
    assert r.first_render_script_ms > 0 and r.first_render_frame_ms >= r.first_render_script_ms
    assert r.js_heap_mb > 0 and r.dom_nodes > 50 * 10  # ten cells a row
    assert r.chromium and r.cores >= 1
    assert [(p.name, p.changes, p.missing) for p in r.phases] == [
        ("steady 20/s", 5, 0),
        ("burst", 5, 0),
    ]
    for p in r.phases:
        assert p.renders >= 1 and p.rate > 0
        for spread in (p.render_script_ms, p.render_frame_ms, p.commit_to_screen_ms):
            assert math.isfinite(spread.p50) and spread.p50 <= spread.p95 <= spread.max
        assert p.commit_to_screen_ms.p50 > 0  # a change is painted after it is committed
