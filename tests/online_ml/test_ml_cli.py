"""`qorgau ml score` and `qorgau ml evaluate` as a user runs them, on series made here."""

from __future__ import annotations

import csv
import json
import math
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path


def _series(n: int, anomaly_at: int | None, seed: int) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    t0 = datetime(2026, 3, 1)
    rows = []
    for i in range(n):
        v = 20 + 5 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 0.3)
        if anomaly_at is not None and i >= anomaly_at:
            v += 8.0
        rows.append(((t0 + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), v))
    return rows


def _write_csv(path: Path, rows: list[tuple[str, float]]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        w.writerows(rows)


def test_ml_score_writes_a_score_per_row(tmp_path: Path) -> None:
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    _write_csv(src, _series(2500, 2000, 1))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qorgau",
            "ml",
            "score",
            str(src),
            "-o",
            str(out),
            "--detector",
            "ewm",
            "--param",
            "alpha=0.05",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2500 and list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    scores = [float(r["anomaly_score"]) for r in rows]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert max(scores[2000:2050]) > max(scores[600:2000])
    bad = subprocess.run(
        [sys.executable, "-m", "qorgau", "ml", "score", str(src), "--detector", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "unknown detector 'nope'" in bad.stderr


def test_ml_evaluate_on_a_generated_nab_folder(tmp_path: Path) -> None:
    windows = {}
    (tmp_path / "labels").mkdir()
    for k in range(3):
        cat = "synthetic" if k < 2 else "other"  # two categories: one left out in turn
        (tmp_path / "data" / cat).mkdir(parents=True, exist_ok=True)
        rows = _series(3000, 2000, 10 + k)
        _write_csv(tmp_path / "data" / cat / f"s{k}.csv", rows)
        windows[f"{cat}/s{k}.csv"] = [[rows[1900][0] + ".000000", rows[2100][0] + ".000000"]]
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qorgau",
            "ml",
            "evaluate",
            "--nab",
            str(tmp_path),
            "--jobs",
            "1",
            "--loco",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    held = {h["category"]: h for h in report["leave_one_category_out"]}
    assert sorted(held) == ["other", "synthetic"]
    for h in held.values():
        assert h["in_sample"] > 80 and -100 <= h["held_out"] <= 100, h
        assert h["threshold_out"] > 0 and h["series"] in (1, 2)
    missing = subprocess.run(
        [sys.executable, "-m", "qorgau", "ml", "evaluate", "--nab", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "not a NAB folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    # One series choosing the threshold for the other two: a threshold that fits one
    # series only does not carry as well (which is what leaving a category out shows).
    assert held["synthetic"]["held_out"] < held["synthetic"]["in_sample"]
    standard = report["profiles"]["standard"]
    assert (standard["tp"], standard["fn"]) == (3, 0)  # every shift found
    assert standard["score"] > 80
    assert report["series"] == 3 and report["model_us_per_row"] > 0
