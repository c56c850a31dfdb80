"""``qorgau eval``: the score of a replay against a plant's labels, and the whole run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from qorgau.plant_eval import score_plant


def _labels() -> dict[str, Any]:
    return {
        "seed": 1,
        "days": 1,
        "sensors": 4,
        "sensor_days": 4,
        "readings": 100,
        "zones": {"Z1": ["CO", "SMOKE", "T"], "Z2": ["O2"]},
        "incidents": [
            {
                "id": "I1",
                "kind": "acute_gas",
                "zone_id": "Z1",
                "sensors": ["CO"],
                "start": "2026-03-02T10:00:00Z",
                "end": "2026-03-02T10:10:00Z",
                "deadline_s": 60.0,
                "expect": ["threshold", "ceiling", "stel"],
                "zone_wide": False,
            },
            {
                "id": "I2",
                "kind": "smouldering_fire",
                "zone_id": "Z1",
                "sensors": ["SMOKE"],
                "start": "2026-03-02T12:00:00Z",
                "end": "2026-03-02T12:40:00Z",
                "deadline_s": 900.0,
                "expect": ["fire"],
                "zone_wide": True,
            },
            {
                "id": "I3",
                "kind": "oxygen_deficiency",
                "zone_id": "Z2",
                "sensors": ["O2"],
                "start": "2026-03-02T14:00:00Z",
                "end": "2026-03-02T14:10:00Z",
                "deadline_s": 60.0,
                "expect": ["threshold"],
                "zone_wide": False,
            },
        ],
    }


def _alert(ts: str, sensor: str, kind: str) -> dict[str, Any]:
    return {"ts": ts, "sensor_id": sensor, "kind": kind, "message": "m", "_t": 0.0}


def test_reported_in_time_late_and_false_alarms_are_told_apart() -> None:
    from qorgau.plant_eval import _ts

    alerts = [
        _alert("2026-03-02T10:00:40Z", "CO", "threshold"),  # I1 in 40 s
        _alert("2026-03-02T10:02:00Z", "CO", "anomaly"),  # during I1: not false
        _alert("2026-03-02T12:11:00Z", "T", "fire"),  # I2 on another sensor of the zone
        _alert("2026-03-02T14:02:00Z", "O2", "threshold"),  # I3 too late (deadline 60 s)
        _alert("2026-03-02T16:00:00Z", "O2", "anomaly"),  # false
        _alert("2026-03-02T09:00:00Z", "CO", "threshold"),  # false: an hour before I1
    ]
    for a in alerts:
        a["_t"] = _ts(a["ts"])
    score = score_plant(_labels(), alerts)
    acute, fire, o2 = (
        score.classes[k] for k in ("acute_gas", "smouldering_fire", "oxygen_deficiency")
    )
    assert (acute.detected, acute.delays_s) == (1, [40.0])
    assert (fire.detected, fire.delays_s) == (1, [660.0])
    assert (o2.detected, o2.missed) == (0, ["I3"])
    assert score.critical_recall == 2 / 3
    assert dict(score.false_alarms) == {"anomaly": 1, "threshold": 1}
    assert score.false_per_100_sensor_days() == 50.0  # 2 false alarms over 4 sensor-days
    assert score.record()["classes"]["acute_gas"]["median_delay_s"] == 40.0


def test_eval_run_end_to_end_the_rules_catch_the_acute_classes(tmp_path: Path) -> None:
    """A plant the code was not written against (seed 101), replayed with the safety
    rules alone: every critical gas incident and every garbage value is reported in time."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "qorgau",
            "eval",
            "run",
            "--seed",
            "101",
            "--days",
            "1",
            "--sensors",
            "40",
            "--no-models",
            "--memory",
            "--json",
            "--keep",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    score = orjson.loads(out.stdout[out.stdout.index("{") :])
    assert score["readings"] > 100_000 and score["readings_per_s"] > 0
    for kind in ("acute_gas", "oxygen_deficiency", "flammable_gas", "garbage"):
        c = score["classes"][kind]
        assert c["incidents"] >= 1 and c["recall"] == 1.0, (kind, c)
    assert (tmp_path / "alerts.jsonl").stat().st_size > 0
    # What the rules hold per sensor: measured, nonzero, and of the order the nation can afford.
    state = score["state_kb_per_sensor"]
    assert 0.5 < state["memory"] < 16 and 0.1 < state["checkpoint"] < 8, state
    bad = subprocess.run(
        [sys.executable, "-m", "qorgau", "eval", "score", str(tmp_path), str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_eval_score_refuses_hostile_files_with_a_clear_error(tmp_path: Path) -> None:
    """Labels or alerts that are not what qorgau wrote: a one-line error, no traceback."""
    plant = tmp_path / "plant"
    plant.mkdir()
    alerts = tmp_path / "alerts.jsonl"
    alerts.write_text('{"ts": "2026-03-02T10:00:00Z", "sensor_id": "CO", "kind": "fire"}\n')

    def score() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qorgau", "eval", "score", str(plant), str(alerts)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for labels in ('{"seed": 1}', "[]", '{"x": 1', None):
        if labels is not None:
            (plant / "labels.json").write_text(labels)
        out = score()
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "labels.json" in out.stderr
    bad_incident = {**_labels(), "incidents": [{"id": "I1", "kind": "gossip"}]}
    (plant / "labels.json").write_bytes(orjson.dumps(bad_incident))
    out = score()
    assert out.returncode == 1 and "incident 0" in out.stderr, out.stderr
    (plant / "labels.json").write_bytes(orjson.dumps(_labels()))
    assert score().returncode == 0
    for line in (
        '{"ts": "2026-03-02T10:00:00Z", "kind": "fire"}',
        '{"ts": 5, "sensor_id": "CO", "kind": "x"}',
        "[1]",
        "\x00",
    ):
        alerts.write_text(line + "\n")
        out = score()
        assert out.returncode == 1 and "Traceback" not in out.stderr, (line, out.stderr)
        assert "alerts.jsonl:1" in out.stderr
