"""`qorgau replay` as a user runs it: a file in, alerts opened out, bad lines reported."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson


def _line(sensor: str, hazard: str, t: datetime, value: float, unit: str, **extra: object) -> bytes:
    return orjson.dumps(
        {
            "enterprise_id": "E001",
            "sensor_id": sensor,
            "ts": t.isoformat().replace("+00:00", "Z"),
            "hazard": hazard,
            "value": value,
            "unit": unit,
            **extra,
        }
    )


def test_replay_writes_one_line_per_alert_opened(tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    lines = []
    for i in range(60):
        t = t0 + timedelta(seconds=10 * i)
        co_ppm = 50.0 if 20 <= i < 30 else 5.0  # 50 ppm = 57.3 mg/m3 for 100 s
        lines.append(_line("E001-S01", "co", t, co_ppm, "ppm", seq=i))
        lines.append(_line("E001-S09", "temperature", t, 38.0 + 0.01 * (i % 5), "degC"))
    lines.reverse()  # replay sorts by timestamp itself
    lines.insert(7, b"{not json")
    lines.insert(9, _line("E001-S02", "radon", t0, 1.0, "Bq/m3"))
    src = tmp_path / "readings.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "alerts.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "qorgau", "replay", str(src), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    alerts = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert alerts == [
        {
            "ts": "2026-03-02T03:03:20Z",
            "enterprise_id": "E001",
            "sensor_id": "E001-S01",
            "hazard": "co",
            "kind": "threshold",
            "severity": "warning",
            "value": round(50.0 * 28.010 / 24.45, 6),
            "message": alerts[0]["message"],
        }
    ]
    assert "≥ warning level 20 mg/m3" in alerts[0]["message"]
    assert "120 readings from 122 lines" in proc.stderr
    assert "2 skipped (bad_json 1, unknown_hazard 1)" in proc.stderr
    assert "alerts opened: threshold 1" in proc.stderr
    assert "readings/s" in proc.stderr


def test_replay_is_deterministic_and_reports_a_missing_file(tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    src = tmp_path / "r.jsonl"
    src.write_bytes(
        b"\n".join(
            _line(
                f"S{i % 3}", "h2s", t0 + timedelta(seconds=i), 12.0 if i % 50 == 0 else 1.0, "mg/m3"
            )
            for i in range(600)
        )
    )
    runs = [
        subprocess.run(
            [sys.executable, "-m", "qorgau", "replay", str(src)], capture_output=True, timeout=60
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0].count(b"\n") >= 1
    missing = subprocess.run(
        [sys.executable, "-m", "qorgau", "replay", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "no such input file" in missing.stderr


def test_replay_runs_the_online_models_unless_told_not_to(tmp_path: Path) -> None:
    """A dust sensor every minute for two working days: 0.6 mg/m3 on shift (08-17 local),
    0.2 at night; on the second night an hour at the day-shift level, still under every
    limit: only a model sees it."""
    t0 = datetime(2026, 3, 1, 19, 0, tzinfo=UTC)  # 00:00 on a Monday in Kazakhstan
    rng = random.Random(5)
    src = tmp_path / "dust.jsonl"

    def level(minute: int) -> float:
        hour = (minute / 60) % 24
        night_shift = 26 * 60 <= minute < 27 * 60  # Tuesday 02:00-03:00
        return 0.6 if 8 <= hour < 17 or night_shift else 0.2

    src.write_bytes(
        b"\n".join(
            _line(
                "E001-S04",
                "dust",
                t0 + timedelta(minutes=i),
                round(level(i) * math.exp(rng.gauss(0, 0.05)), 4),
                "mg/m3",
            )
            for i in range(30 * 60)
        )
    )
    env = {**os.environ, "QORGAU_MODEL_WARMUP": "100"}

    def replay(*extra: str) -> list[dict[str, object]]:
        proc = subprocess.run(
            [sys.executable, "-m", "qorgau", "replay", str(src), *extra],
            capture_output=True,
            timeout=60,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        return [orjson.loads(x) for x in proc.stdout.splitlines()]

    [anomaly] = replay()
    assert anomaly["kind"] == "anomaly"
    opened = datetime.fromisoformat(str(anomaly["ts"]).replace("Z", "+00:00"))
    assert timedelta(minutes=5) <= opened - (t0 + timedelta(hours=26)) <= timedelta(minutes=30)
    assert "expected" in str(anomaly["message"]) and "mg/m3" in str(anomaly["message"])
    assert replay("--no-models") == []
    env["QORGAU_MODEL_DETECTOR"] = "nope"
    bad = subprocess.run(
        [sys.executable, "-m", "qorgau", "replay", str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert bad.returncode != 0 and "unknown detector 'nope'" in bad.stderr


def test_replay_into_a_pipe_that_closes_early_ends_quietly(tmp_path: Path) -> None:
    t0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    lines = [  # a CO sensor swinging over its threshold: many alerts opened
        _line("E001-S01", "co", t0 + timedelta(minutes=i), 50.0 if i % 2 else 1.0, "ppm")
        for i in range(3000)
    ]
    src = tmp_path / "readings.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    proc = subprocess.run(
        f"{sys.executable} -m qorgau replay --no-models {src} | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1 and '"kind"' in proc.stdout
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
