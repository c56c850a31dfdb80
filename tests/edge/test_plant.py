"""The evaluation plant: reproducible, varied like a real plant, incidents where the labels say."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest

from core.catalogue import load_catalogue
from core.limits import load_limits
from core.reference import load_reference
from edge.plant import (
    INCIDENT_CLASSES,
    LOCAL_UTC_OFFSET_H,
    generate_plant,
    readings,
    warning_levels,
    write_plant,
)

CATALOGUE = load_catalogue()
LIMITS = load_limits(None, CATALOGUE)
WARN = warning_levels(LIMITS, list(CATALOGUE))
# The set points a single reading must stay under (averaged limits are judged on averages).
INSTANT = warning_levels(LIMITS, list(CATALOGUE), instantaneous=True)


@pytest.fixture(scope="module")
def plant_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plant")
    plant, series = generate_plant(12, 3, CATALOGUE, LIMITS, sensors=60)
    write_plant(plant, series, CATALOGUE, out)
    return out


def _rows(folder: Path) -> list[dict[str, object]]:
    with open(folder / "readings.jsonl", "rb") as fh:
        return [orjson.loads(line) for line in fh]


def test_a_seed_is_one_plant_and_another_seed_another(tmp_path: Path) -> None:
    a1, s1 = generate_plant(5, 1, CATALOGUE, LIMITS, sensors=20)
    a2, s2 = generate_plant(5, 1, CATALOGUE, LIMITS, sensors=20)
    b, sb = generate_plant(6, 1, CATALOGUE, LIMITS, sensors=20)
    first = list(readings(a1, s1, CATALOGUE))
    assert first == list(readings(a2, s2, CATALOGUE))
    assert [s.id for s in a1.sensors] != [s.id for s in b.sensors] or first != list(
        readings(b, sb, CATALOGUE)
    )


def test_the_plant_loads_as_reference_data_and_readings_are_in_time_order(
    plant_dir: Path,
) -> None:
    ref = load_reference(CATALOGUE, plant_dir / "enterprises.toml")
    labels = orjson.loads((plant_dir / "labels.json").read_bytes())
    assert len(ref.sensors) == labels["sensors"] >= 50
    rows = _rows(plant_dir)
    assert len(rows) == labels["readings"]
    ts = [str(r["ts"]) for r in rows]
    assert ts == sorted(ts)
    known = {s.id: s for s in ref.sensors}
    assert all(
        r["sensor_id"] in known and r["hazard"] == known[r["sensor_id"]].hazard for r in rows
    )


def test_every_incident_class_is_injected_with_its_deadline(plant_dir: Path) -> None:
    labels = orjson.loads((plant_dir / "labels.json").read_bytes())
    kinds = Counter(i["kind"] for i in labels["incidents"])
    assert set(kinds) == set(INCIDENT_CLASSES), kinds
    for inc in labels["incidents"]:
        cls = INCIDENT_CLASSES[inc["kind"]]
        assert inc["deadline_s"] == cls.deadline_s and inc["critical"] == cls.critical
        assert inc["start"] < inc["end"]


def test_normal_operation_is_varied_and_stays_below_every_limit(plant_dir: Path) -> None:
    """Outside the incidents no reading reaches a warning level (the traps are traps),
    yet the plant is busy by day, quiet at night, in ppm and mg/m3, fine and coarse."""
    labels = orjson.loads((plant_dir / "labels.json").read_bytes())
    rows = _rows(plant_dir)
    spans: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for inc in labels["incidents"]:
        members = set(inc["sensors"]) | (
            set(labels["zones"][inc["zone_id"]]) if inc["zone_wide"] else set()
        )
        end = datetime.fromisoformat(inc["end"].replace("Z", "+00:00")) + timedelta(hours=1)
        for s in members:
            spans[s].append((inc["start"], end.isoformat().replace("+00:00", "Z")))
    units: set[str] = set()
    by_hour: dict[str, list[float]] = defaultdict(list)
    means: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        sid, hazard, ts = str(r["sensor_id"]), str(r["hazard"]), str(r["ts"])
        units.add(str(r["unit"]))
        if any(a <= ts <= b for a, b in spans[sid]):
            continue
        value = CATALOGUE.convert(hazard, float(r["value"]), str(r["unit"]))  # type: ignore[arg-type]
        if hazard in INSTANT and hazard != "o2":
            assert value < INSTANT[hazard], r
        if hazard in WARN:
            means[sid].append(value)
        if hazard == "o2":
            assert 20.0 < value < 23.0, r
        if hazard == "noise" and labels["schedules"][r["enterprise_id"]] != "continuous":
            hour = (int(ts[11:13]) + LOCAL_UTC_OFFSET_H) % 24
            by_hour["day" if 10 <= hour < 12 else "night" if 2 <= hour < 4 else ""].append(value)
    hazard_of = {str(r["sensor_id"]): str(r["hazard"]) for r in rows[:5000]}
    for sid, values in means.items():
        h = hazard_of.get(sid)
        if h in WARN and h not in {"o2", "noise"}:  # noise: an energy average, checked above
            assert float(np.mean(values)) < 0.7 * WARN[h], (sid, np.mean(values))
    assert {"ppm", "mg/m3"} <= units
    # dBA where nobody works at night: machines by day, a hum at night.
    assert np.mean(by_hour["day"]) > np.mean(by_hour["night"]) + 5


def test_coarse_sensors_repeat_values_and_fine_ones_hardly_do(plant_dir: Path) -> None:
    ref = load_reference(CATALOGUE, plant_dir / "enterprises.toml")
    rows = _rows(plant_dir)
    values: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        values[str(r["sensor_id"])].append(float(r["value"]))  # type: ignore[arg-type]
    repeats = {sid: float(np.mean(np.diff(v) == 0)) for sid, v in values.items() if len(v) > 100}
    co = [s.id for s in ref.sensors if s.hazard in {"co", "humidity", "temperature"}]
    assert max(repeats[s] for s in co) > 0.5  # a coarse one: mostly the same value
    assert min(repeats.values()) < 0.05  # a fine one: almost never
