"""``qorgau eval``: a generated plant to measure detection on, and its score.

``qorgau eval plant --seed N --days D -o DIR`` writes a plant (``edge.plant``):
``DIR/readings.jsonl`` (``qorgau replay``'s input), ``DIR/enterprises.toml``
(its reference data) and ``DIR/labels.json`` (every incident injected).

``qorgau eval score DIR ALERTS.jsonl`` scores what ``qorgau replay`` opened on
those readings:

- per incident class: how many were reported by an alert of a kind that counts
  (``labels.json`` lists them per incident) on an affected sensor (for fires,
  any sensor of the zone) from 60 s before the start until the class's
  deadline, and how late;
- critical recall: of the incidents that can kill (toxic, oxygen, flammable gas,
  fire), the share reported in time;
- false alarms per 100 sensor-days, by kind: every opened alert that belongs to
  no incident (an incident owns its sensors' alerts from 60 s before its start
  until 30 min after its end).

``qorgau eval run --seed N --days D`` does all three in one go (the plant in a
temporary folder unless ``--keep DIR``) and reports readings/s of the replay.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from core.catalogue import Catalogue
from core.errors import QorgauError
from core.limits import Limits
from core.settings import Settings

if TYPE_CHECKING:
    from core.reference import ReferenceData
    from stream.detection.detector import Detector
    from stream.detection.models import ModelBank

__all__ = ["ClassScore", "PlantScore", "add_parser", "score_plant"]

LEAD_S = 60.0  # an alert this long before an incident's start still reports it
AFTERMATH_S = 1800.0  # an incident owns its sensors' alerts this long after its end


@dataclass(slots=True)
class ClassScore:
    name: str
    critical: bool
    deadline_s: float
    incidents: int = 0
    detected: int = 0
    delays_s: list[float] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)  # incident ids

    @property
    def recall(self) -> float:
        return self.detected / self.incidents if self.incidents else 1.0


@dataclass(slots=True)
class PlantScore:
    seed: int
    days: int
    sensors: int
    sensor_days: int
    readings: int
    classes: dict[str, ClassScore]
    false_alarms: Counter[str]
    alerts: int
    readings_per_s: float | None = None
    # Detection state per sensor at the end (`qorgau eval run --memory`): in memory, and
    # as checkpointed; KB.
    state_kb: tuple[float, float] | None = None
    false_examples: list[str] = field(default_factory=list)

    @property
    def incidents(self) -> int:
        return sum(c.incidents for c in self.classes.values())

    @property
    def recall(self) -> float:
        n = self.incidents
        return sum(c.detected for c in self.classes.values()) / n if n else 1.0

    @property
    def critical_recall(self) -> float:
        crit = [c for c in self.classes.values() if c.critical]
        n = sum(c.incidents for c in crit)
        return sum(c.detected for c in crit) / n if n else 1.0

    def false_per_100_sensor_days(self, kind: str | None = None) -> float:
        n = self.false_alarms[kind] if kind else sum(self.false_alarms.values())
        return 100.0 * n / self.sensor_days if self.sensor_days else 0.0

    def record(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "days": self.days,
            "sensors": self.sensors,
            "sensor_days": self.sensor_days,
            "readings": self.readings,
            "alerts_opened": self.alerts,
            "readings_per_s": self.readings_per_s,
            "state_kb_per_sensor": (
                {"memory": self.state_kb[0], "checkpoint": self.state_kb[1]}
                if self.state_kb
                else None
            ),
            "recall": round(self.recall, 4),
            "critical_recall": round(self.critical_recall, 4),
            "false_alarms_per_100_sensor_days": round(self.false_per_100_sensor_days(), 2),
            "false_alarms_by_kind": {
                k: round(self.false_per_100_sensor_days(k), 2) for k in sorted(self.false_alarms)
            },
            "classes": {
                name: {
                    **{k: v for k, v in asdict(c).items() if k != "delays_s"},
                    "recall": round(c.recall, 4),
                    "median_delay_s": round(statistics.median(c.delays_s), 1)
                    if c.delays_s
                    else None,
                    "worst_delay_s": round(max(c.delays_s), 1) if c.delays_s else None,
                }
                for name, c in self.classes.items()
            },
            "false_examples": self.false_examples,
        }


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


_ALERT_FIELDS = ("ts", "sensor_id", "kind")
_LABEL_FIELDS = ("seed", "days", "sensors", "sensor_days", "zones", "incidents")
_INCIDENT_FIELDS = ("id", "kind", "zone_id", "sensors", "start", "end", "deadline_s", "expect")


def _read_labels(folder: Path) -> dict[str, Any]:
    """``labels.json`` of a plant, with every field the score needs, or a clear error."""
    where = folder / "labels.json"
    try:
        labels = orjson.loads(where.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise QorgauError(f"{where}: {exc}") from None
    from edge.plant import INCIDENT_CLASSES

    if not isinstance(labels, dict) or any(k not in labels for k in _LABEL_FIELDS):
        raise QorgauError(
            f"{where}: not what qorgau eval plant writes ({', '.join(_LABEL_FIELDS)})"
        )
    if not isinstance(labels["incidents"], list) or not isinstance(labels["zones"], dict):
        raise QorgauError(f"{where}: incidents must be a list and zones an object")
    for n, inc in enumerate(labels["incidents"]):
        if not isinstance(inc, dict) or any(k not in inc for k in _INCIDENT_FIELDS):
            raise QorgauError(f"{where}: incident {n} lacks one of {', '.join(_INCIDENT_FIELDS)}")
        if inc["kind"] not in INCIDENT_CLASSES:
            raise QorgauError(f"{where}: incident {n}: unknown class {inc['kind']!r:.40}")
    return labels


def _read_alerts(path: Path) -> list[dict[str, Any]]:
    alerts = []
    try:
        fh = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise QorgauError(f"cannot read the alerts: {exc}") from None
    with fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError("a line must be a JSON object")
                missing = [k for k in _ALERT_FIELDS if not isinstance(doc.get(k), str)]
                if missing:
                    raise ValueError(f"no {', '.join(missing)}")
                alerts.append({**doc, "_t": _ts(doc["ts"])})
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise QorgauError(
                    f"{path}:{number}: not an alert of qorgau replay: {exc}"
                ) from None
    return alerts


def score_plant(labels: dict[str, Any], alerts: list[dict[str, Any]]) -> PlantScore:
    """Score opened ``alerts`` (``qorgau replay``'s lines) against a plant's ``labels``."""
    from edge.plant import INCIDENT_CLASSES

    zone_of = {s: z for z, members in labels["zones"].items() for s in members}
    classes = {
        name: ClassScore(name, c.critical, c.deadline_s) for name, c in INCIDENT_CLASSES.items()
    }
    owned: list[tuple[set[str], float, float]] = []  # (sensors, from, to)
    for inc in labels["incidents"]:
        cls = classes[inc["kind"]]
        cls.incidents += 1
        start, end = _ts(inc["start"]), _ts(inc["end"])
        sensors = set(inc["sensors"])
        if inc.get("zone_wide"):
            sensors |= set(labels["zones"].get(inc["zone_id"], []))
        expect = set(inc["expect"])
        hits = [
            a["_t"]
            for a in alerts
            if a["kind"] in expect
            and a["sensor_id"] in sensors
            and start - LEAD_S <= a["_t"] <= start + inc["deadline_s"]
        ]
        if hits:
            cls.detected += 1
            cls.delays_s.append(max(0.0, min(hits) - start))
        else:
            cls.missed.append(inc["id"])
        owned.append((sensors, start - LEAD_S, end + AFTERMATH_S))
    false: Counter[str] = Counter()
    examples: list[str] = []
    for a in alerts:
        if any(a["sensor_id"] in s and lo <= a["_t"] <= hi for s, lo, hi in owned):
            continue
        false[a["kind"]] += 1
        if len(examples) < 12:
            zone = zone_of.get(a["sensor_id"], "?")
            examples.append(f"{a['ts']} {a['kind']} {a['sensor_id']} ({zone}): {a['message']}")
    return PlantScore(
        seed=int(labels["seed"]),
        days=int(labels["days"]),
        sensors=int(labels["sensors"]),
        sensor_days=int(labels["sensor_days"]),
        readings=int(labels.get("readings", 0)),
        classes=classes,
        false_alarms=false,
        alerts=len(alerts),
        false_examples=examples,
    )


def print_score(score: PlantScore) -> None:
    from rich.console import Console
    from rich.table import Table

    def dur(s: float) -> str:
        return (
            f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min" if s >= 120 else f"{s:.0f} s"
        )

    t = Table(
        title=f"plant seed {score.seed}: {score.sensors} sensors, {score.days} days,"
        f" {score.readings:,} readings"
    )
    t.add_column("incident class", no_wrap=True)
    for col in ("deadline", "n", "in time", "recall", "median", "worst"):
        t.add_column(col, justify="right", no_wrap=True)
    for c in score.classes.values():
        t.add_row(
            c.name + (" *" if c.critical else ""),
            dur(c.deadline_s),
            str(c.incidents),
            str(c.detected),
            f"{100 * c.recall:.0f} %",
            dur(statistics.median(c.delays_s)) if c.delays_s else "-",
            dur(max(c.delays_s)) if c.delays_s else "-",
        )
    console = Console()
    console.print(t)
    console.print("* critical: can kill. median, worst: delay from the start to the first alert")
    console.print(
        f"recall {100 * score.recall:.1f} % ({score.incidents} incidents), critical recall"
        f" {100 * score.critical_recall:.1f} %; false alarms"
        f" {score.false_per_100_sensor_days():.1f} per 100 sensor-days ("
        + (
            ", ".join(
                f"{k} {score.false_per_100_sensor_days(k):.1f}" for k in sorted(score.false_alarms)
            )
            or "none"
        )
        + f"); {score.alerts} alerts opened"
        + (f"; replay {score.readings_per_s:,.0f} readings/s" if score.readings_per_s else "")
    )
    if score.state_kb:
        console.print(
            f"detection state per sensor at the end (rules + models): {score.state_kb[0]:.1f} KB"
            f" in memory, {score.state_kb[1]:.1f} KB checkpointed"
        )
    if score.false_examples:
        console.print("false alarms, e.g.:")
        for line in score.false_examples:
            console.print("  " + line, soft_wrap=True)


# --- CLI ---------------------------------------------------------------------------
def add_parser(sub: Any) -> None:
    ev = sub.add_parser(
        "eval", help="a generated plant with labelled incidents, and detection's score on it"
    )
    ev_sub = ev.add_subparsers(dest="eval_command", required=True)
    plant = ev_sub.add_parser("plant", help="write a plant: readings, reference data, labels")
    _plant_args(plant)
    plant.add_argument("-o", "--output", required=True, help="folder to write into")
    score = ev_sub.add_parser("score", help="score qorgau replay's alerts against a plant")
    score.add_argument("plant", help="the folder qorgau eval plant wrote")
    score.add_argument("alerts", help="qorgau replay's output (JSON Lines)")
    score.add_argument("--json", action="store_true")
    run = ev_sub.add_parser("run", help="generate, replay with rules and models, score")
    _plant_args(run)
    run.add_argument("--keep", help="write the plant and the alerts into this folder")
    run.add_argument("--no-models", action="store_true", help="the safety rules only")
    run.add_argument(
        "--memory",
        action="store_true",
        help="also measure the detection state per sensor (a second, traced replay)",
    )
    run.add_argument("--json", action="store_true")


def _plant_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, required=True, help="the plant (same seed, same plant)")
    p.add_argument("--days", type=int, default=2, help="days of readings (default 2)")
    p.add_argument("--sensors", type=int, default=70, help="about this many sensors")


def _data_files(settings: Settings) -> tuple[Catalogue, Limits]:
    from core.catalogue import load_catalogue
    from core.limits import load_limits

    catalogue = load_catalogue(settings.catalogue_path)
    return catalogue, load_limits(settings.limits_path, catalogue)


def _make_plant(
    args: argparse.Namespace, catalogue: Catalogue, limits: Limits, out: Path
) -> dict[str, Any]:
    from edge.plant import generate_plant, write_plant

    if not 1 <= args.days <= 60:
        raise QorgauError("--days must be between 1 and 60")
    if not 5 <= args.sensors <= 5000:
        raise QorgauError("--sensors must be between 5 and 5000")
    plant, series = generate_plant(args.seed, args.days, catalogue, limits, sensors=args.sensors)
    return write_plant(plant, series, catalogue, out)


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    if args.eval_command == "plant":
        out = Path(args.output)
        labels = _make_plant(args, *_data_files(settings), out)
        print(
            f"plant seed {labels['seed']}: {labels['sensors']} sensors, {labels['days']} days,"
            f" {labels['readings']:,} readings, {len(labels['incidents'])} incidents -> {out}/"
            f"\n  qorgau replay {out}/readings.jsonl --reference {out}/enterprises.toml"
            f" -o {out}/alerts.jsonl\n  qorgau eval score {out} {out}/alerts.jsonl"
        )
        return 0
    if args.eval_command == "score":
        labels = _read_labels(Path(args.plant))
        score = score_plant(labels, _read_alerts(Path(args.alerts)))
        _show(score, as_json=args.json)
        return 0
    catalogue, limits = _data_files(settings)
    with tempfile.TemporaryDirectory(prefix="qorgau-plant-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        labels = _make_plant(args, catalogue, limits, folder)
        rate = _replay(settings, catalogue, limits, folder, models=not args.no_models)
        score = score_plant(labels, _read_alerts(folder / "alerts.jsonl"))
        score.readings_per_s = rate
        if args.memory:
            score.state_kb = _state_per_sensor(
                settings, catalogue, limits, folder, models=not args.no_models
            )
        _show(score, as_json=args.json)
    return 0


def _show(score: PlantScore, *, as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(score.record(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_score(score)


def _detection(
    settings: Settings, catalogue: Catalogue, limits: Limits, folder: Path, *, models: bool
) -> tuple[ReferenceData, Detector, ModelBank | None]:
    from core.reference import load_reference
    from stream.detection.detector import Detector
    from stream.detection.models import ModelBank, ModelSettings

    reference = load_reference(catalogue, folder / "enterprises.toml")
    detector = Detector(catalogue, limits, reference)
    bank = None
    if models and settings.models:
        bank = ModelBank(catalogue, limits, ModelSettings.from_settings(settings), reference)
    return reference, detector, bank


def _replay(
    settings: Settings, catalogue: Catalogue, limits: Limits, folder: Path, *, models: bool
) -> float:
    """``qorgau replay`` over the plant, in this process; readings/s."""
    from stream.replay import replay

    _, detector, bank = _detection(settings, catalogue, limits, folder, models=models)
    with open(folder / "alerts.jsonl", "wb") as out:
        summary = replay(folder / "readings.jsonl", out, detector, models=bank)
    return round(summary.readings_per_s, 1)


def _state_per_sensor(
    settings: Settings, catalogue: Catalogue, limits: Limits, folder: Path, *, models: bool
) -> tuple[float, float]:
    """What detection holds per sensor after the whole plant, KB: in memory (what
    `tracemalloc` sees allocated and still alive, the rows already handed on excluded)
    and as checkpointed (every enterprise's rules and models, compressed)."""
    import gc
    import tracemalloc

    from stream.replay import replay

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        reference, detector, bank = _detection(settings, catalogue, limits, folder, models=models)
        with open(os.devnull, "wb") as out:
            replay(folder / "readings.jsonl", out, detector, models=bank)
        detector.drain_exposures()  # the worker stores these every few seconds
        if bank is not None:
            bank.drain_scores()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    sensors = sum(len(z.sensors) for e in reference.enterprises for z in e.zones)
    checkpoint = sum(
        len(detector.export_state(e.id)) + (len(bank.export_state(e.id)) if bank else 0)
        for e in reference.enterprises
    )
    return round(held / sensors / 1024, 2), round(checkpoint / sensors / 1024, 2)
