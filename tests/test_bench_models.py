"""`qorgau bench --models`: one table row per detector, with real (positive) figures."""

from __future__ import annotations

import os
import platform

import pytest

from qorgau.bench_models import run_models_bench


def _rows(out: str) -> tuple[list[str], dict[str, list[float]]]:
    lines = out.splitlines()
    [header] = [ln for ln in lines if ln.startswith("detector ")]
    start = lines.index(header) + 1
    rows: dict[str, list[float]] = {}
    for line in lines[start:]:
        if not line.strip():
            break
        name, *figures = line.split()
        rows[name] = [float(f.replace(",", "")) for f in figures]
    return [h for h in header.split("  ") if h.strip()], rows


def test_models_bench_prints_a_row_per_detector(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_models_bench(readings=3000, sensors=3, detectors=["ewm", "default"]) == 0
    out = capsys.readouterr().out
    # The machine note comes first, above the table.
    note = out.splitlines()[0]
    assert f"{os.cpu_count()}-core" in note and platform.python_version() in note
    headers, rows = _rows(out)
    assert [h.strip() for h in headers] == [
        "detector",
        "µs/reading (CPU, median of 3)",
        "readings/s/core",
        "memory/model (KB)",
        "checkpoint/model (KB)",
        "save+restore (ms)",
    ]
    assert set(rows) == {"ewm", "default"}
    for name, (us, per_s, memory_kb, checkpoint_kb, save_ms) in rows.items():
        assert us > 0, name
        assert per_s == pytest.approx(1e6 / us, rel=0.02), name
        assert memory_kb > 0 and checkpoint_kb > 0 and save_ms > 0, name
    # The default is an ensemble of four models around the EWM: it costs more, and holds more.
    assert rows["default"][0] > rows["ewm"][0]
    assert rows["default"][2] > rows["ewm"][2]
    assert rows["default"][3] > rows["ewm"][3]


def test_models_bench_rejects_an_unknown_detector() -> None:
    with pytest.raises(ValueError, match="unknown detector"):
        run_models_bench(readings=100, sensors=1, detectors=["nope"])
