"""The online models after the rules (`ModelBank`): warm-up, no learning of what is flagged,
faulty readings kept out, covered alerts, failing models, checkpoints, drift, fire risk and
the stored scores — on seeded, synthetic sensors fed reading by reading."""

from __future__ import annotations

import math
import pickle
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

import online_ml
from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import load_catalogue
from core.limits import load_limits
from core.reference import load_reference
from core.types import Reading
from online_ml import AnomalyDetector, OnsetFilter, ZoneFireRisk, make_stream_model
from storage.detection import ScoreRecord
from stream.detection.models import ModelBank, ModelSettings
from tests.stream.test_detection import T0, reading

CAT = load_catalogue()
LIMITS = load_limits()
STEP = 10.0  # seconds between readings of the dust sensors
WARMUP = 500
SID = "D1"
HOLD_AT = 0.8  # the default detector's latch holds while it is at least this surprised


def dust(
    n: int, *, seed: int = 1, factor: float = 1.0, at: int = 0, length: int = 0
) -> list[float]:
    """Dust every 10 s: 0.3 mg/m3 with an hour-long work cycle and noise; readings
    ``at .. at+length-1`` multiplied by ``factor`` (a leak, a blocked extractor)."""
    rng = random.Random(seed)
    values = [0.3 + 0.06 * math.sin(2 * math.pi * i / 360) + rng.gauss(0, 0.012) for i in range(n)]
    for i in range(at, min(at + length, n)):
        values[i] *= factor
    return values


def feed(
    bank: ModelBank,
    values: list[float],
    *,
    sensor: str = SID,
    hazard: str = "dust",
    step: float = STEP,
) -> list[tuple[int, AlertEvent]]:
    """One reading of ``values`` every ``step`` seconds; (reading index, event) pairs."""
    out: list[tuple[int, AlertEvent]] = []
    for i, v in enumerate(values):
        out += [(i, e) for e in bank.process(reading(sensor, hazard, step * i, v))]
    return out


def new_bank(**settings: Any) -> ModelBank:
    """A bank of the previous default detector (level, context and shape, latched), whose
    mechanics these tests pin down; the budgeted departure model has its own below."""
    settings.setdefault("detector", "default")
    return ModelBank(CAT, LIMITS, ModelSettings(**settings), reference=None)


def anomaly_actions(events: list[tuple[int, AlertEvent]]) -> list[tuple[int, str]]:
    return [(i, e.action.value) for i, e in events if e.kind is AlertKind.ANOMALY]


def model_bytes(bank: ModelBank, sensor: str = SID) -> bytes:
    """Everything the bank keeps for one sensor: model, alarms, drift, last time, pending row."""
    return pickle.dumps(bank._sensors[sensor], protocol=pickle.HIGHEST_PROTOCOL)


def test_limits_leave_room_for_the_synthetic_departures() -> None:
    # The dust series here stay below every dust limit even at x4 (rules would not fire).
    lowest = min(x for rule in LIMITS.rules("dust") for x in (rule.warning, rule.critical) if x)
    assert max(dust(3000, factor=4.0, at=0, length=3000)) < lowest
    assert CAT["dust"].unit == "mg/m3" and CAT["co"].unit == "mg/m3"


# --- 1. warm-up -------------------------------------------------------------------------------
def test_no_anomaly_alert_during_warmup_then_one_explained_alert() -> None:
    # The same x3 departure (30 readings, 5 minutes) inside and after the warm-up.
    early = new_bank(warmup=WARMUP)
    events = feed(early, dust(2000, factor=3.0, at=200, length=30))
    assert events == []
    assert early.stats.scored == 2000

    # The model could judge that early: with a shorter warm-up the same departure alerts.
    short = new_bank(warmup=100)
    assert anomaly_actions(feed(short, dust(2000, factor=3.0, at=200, length=30)))[0] == (
        200,
        "open",
    )
    # The alert threshold is the settings' when given: above this departure's score, silence.
    strict = new_bank(warmup=100, threshold=0.95)
    assert feed(strict, dust(2000, factor=3.0, at=200, length=30)) == []

    late = new_bank(warmup=WARMUP)
    values = dust(2000, factor=3.0, at=1500, length=30)
    events = feed(late, values)
    opened = [(i, e) for i, e in events if e.action is AlertAction.OPEN]
    assert [(i, e.kind) for i, e in opened] == [(1500, AlertKind.ANOMALY)]
    _, e = opened[0]
    assert e.severity is Severity.WARNING
    assert e.sensor_id == SID and e.enterprise_id == "E900" and e.hazard == "dust"
    assert e.ts == T0 + timedelta(seconds=STEP * 1500) and e.value == round(values[1500], 6)
    assert e.key == f"{SID}|anomaly|{e.ts.isoformat()}"
    assert e.zone_id == "unzoned"
    d = e.details
    assert d["source"] == "model:default"
    assert d["score"] >= late.threshold == online_ml.ALERT_THRESHOLDS["default"]
    assert d["feature"] in {"recent level", "long-run level"} or d["feature"].startswith(
        "usual level"
    )
    assert d["observed"] == values[1500]  # a level feature observes the reading itself
    assert d["expected_low"] < d["expected_high"] < values[1500]
    assert d["unit"] == "mg/m3"
    assert f"{values[1500]:.4g} mg/m3" in e.message and SID in e.message
    assert f"expected {d['expected_low']:.4g}–{d['expected_high']:.4g} mg/m3" in e.message
    # ...and it clears once the departure is over (no second alert).
    actions = anomaly_actions(events)
    assert [a for _, a in actions] == ["open", "clear"] and actions[1][0] >= 1530


# --- 2. no learning of what is flagged --------------------------------------------------------
def _leak_run(
    bank: ModelBank, values: list[float], at: int, length: int
) -> tuple[list[tuple[int, AlertEvent]], list[bool], list[float], list[ScoreRecord]]:
    events: list[tuple[int, AlertEvent]] = []
    flagging: list[bool] = []
    surprise: list[float] = []
    rows: list[ScoreRecord] = []
    for i, v in enumerate(values):
        events += [(i, e) for e in bank.process(reading(SID, "dust", STEP * i, v))]
        model = bank._sensors[SID].model
        flagging.append(model.flagging)
        latch = model.detector
        assert isinstance(latch, OnsetFilter)
        surprise.append(latch.surprise)  # how surprised the detector inside the latch is
        if i == at + length - 1:
            rows = [r for r in bank.drain_scores() if r.sensor_id == SID]
    leak_rows = [r for r in rows if r.ts >= T0 + timedelta(seconds=STEP * at)]
    return events, flagging, surprise, leak_rows


def test_a_flagged_leak_is_not_learnt_and_clears_after_it_ends() -> None:
    at, length = 1500, 150  # 25 minutes, well under adapt_after (300 readings)
    values = dust(2000, factor=4.0, at=at, length=length)
    leak_min = min(values[at : at + length])

    guarded = new_bank(warmup=WARMUP)
    events, flagging, surprise, rows = _leak_run(guarded, values, at, length)
    actions = anomaly_actions(events)
    assert actions[0] == (at, "open")
    assert [a for _, a in actions] == ["open", "clear"]  # open the whole leak, then one clear
    cleared = actions[1][0]
    assert cleared >= at + length
    held = (cleared - (at + length)) * STEP
    assert guarded.settings.clear_hold_s <= held <= 2 * guarded.settings.clear_hold_s
    assert all(flagging[at : at + length])  # the latch was on throughout...
    assert not any(flagging[at + length : at + length + 5])  # ...and released after
    assert surprise[at + length - 1] >= HOLD_AT  # still surprised: it did not learn the leak
    # What it expected during the leak stayed the pre-leak level.
    ranged = [r for r in rows if r.expected_high is not None]
    assert ranged and all(
        r.expected_high is not None and r.expected_high < leak_min for r in ranged
    )

    # Control: the same detector with its latch released at once learns the leak.
    learner = new_bank(warmup=WARMUP, params={"adapt_after": 0})
    events, flagging, surprise, rows = _leak_run(learner, values, at, length)
    actions = anomaly_actions(events)
    assert actions[0] == (at, "open")
    assert actions[1][1] == "clear" and actions[1][0] < at + length  # cleared during the leak
    assert not any(flagging[at : at + length])
    assert surprise[at + length - 1] < 0.5
    assert any(
        r.expected_low is not None
        and r.expected_high is not None
        and r.value is not None
        and r.expected_low <= r.value <= r.expected_high
        for r in rows
    )


def test_a_lasting_shift_is_learnt_as_the_new_normal() -> None:
    at, length = 1500, 600  # longer than adapt_after (300 readings)
    values = dust(at + length, factor=4.0, at=at, length=length)
    bank = new_bank(warmup=WARMUP)
    events, flagging, _, _ = _leak_run(bank, values, at, length)
    actions = anomaly_actions(events)
    assert actions[0] == (at, "open")
    assert [a for _, a in actions] == ["open", "clear"]
    assert at + 300 < actions[1][0] < at + length  # cleared while the shift goes on
    assert all(flagging[at : at + 290])
    assert not any(flagging[at + 310 :])


# --- 3. faulty readings never reach the model -------------------------------------------------
def test_faulty_implausible_and_late_readings_leave_the_model_unchanged() -> None:
    values = dust(1200)
    plain = new_bank(warmup=WARMUP)
    assert feed(plain, values) == []
    assert plain.stats.scored == len(values)

    # A sensor first heard from while faulty gets no model at all.
    bank = new_bank(warmup=WARMUP)
    assert bank.process(reading(SID, "dust", -5.0, 9.0), faulty=True) == []
    assert SID not in bank._sensors

    skipped = 1
    for i, v in enumerate(values):
        assert bank.process(reading(SID, "dust", STEP * i, v)) == []
        if i % 5 == 0:
            before = model_bytes(bank)
            # The rules hold the sensor's fault alarm open: a wild value, not learnt.
            assert bank.process(reading(SID, "dust", STEP * i + 3, 40.0), faulty=True) == []
            # Physically impossible: kept as a fault sign, never scored.
            bad = reading(SID, "dust", STEP * i + 6, -3.0, plausible=False)
            assert bank.process(bad) == []
            skipped += 2
            assert model_bytes(bank) == before
    assert bank.stats.skipped_fault == skipped and plain.stats.skipped_fault == 0
    assert bank.stats.scored == plain.stats.scored
    assert bank.drain_scores() == plain.drain_scores()
    assert model_bytes(bank) == model_bytes(plain)
    # The same next score: nothing of the 480 skipped readings was learnt.
    probe = {"value": 40.0, "t": (T0 + timedelta(seconds=STEP * 1200)).timestamp()}
    assert bank._sensors[SID].model.score_one(probe) == plain._sensors[SID].model.score_one(probe)

    # A reading older than the model's newest is skipped, not learnt out of order.
    before = model_bytes(bank)
    assert bank.process(reading(SID, "dust", STEP * 100, 5.0)) == []
    assert bank.stats.skipped_order == 1
    assert model_bytes(bank) == before


# --- 4. covered by a limit alarm --------------------------------------------------------------
def test_covered_readings_open_no_anomaly_alert_but_are_scored() -> None:
    at, length = 800, 20
    values = dust(1200, factor=4.0, at=at, length=length)
    plain = new_bank(warmup=WARMUP)
    plain_events = feed(plain, values)
    assert anomaly_actions(plain_events)[0] == (at, "open")

    covered = new_bank(warmup=WARMUP)
    flagging: list[bool] = []
    events: list[tuple[int, AlertEvent]] = []
    for i, v in enumerate(values):
        r = reading(SID, "dust", STEP * i, v)  # a limit alarm speaks during the departure
        events += [(i, e) for e in covered.process(r, covered=at <= i < at + length)]
        flagging.append(covered._sensors[SID].model.flagging)
    assert events == []
    assert covered.stats.scored == len(values)
    assert all(flagging[at : at + length])  # flagged, so not learnt, just not announced
    rows = covered.drain_scores()
    assert rows == plain.drain_scores()  # the same scores, stored all the same
    assert any(
        r.score >= covered.threshold and r.ts == T0 + timedelta(seconds=STEP * at) for r in rows
    )
    assert model_bytes(covered) != model_bytes(plain)  # only the alarm differs...
    covered._sensors[SID].alarm = plain._sensors[SID].alarm
    assert model_bytes(covered) == model_bytes(plain)  # ...the model is the same


# --- 5. a failing model -----------------------------------------------------------------------
class Brittle(AnomalyDetector):
    """Scores 0.1, except: raises on a negative value, answers NaN above 90."""

    def __init__(self) -> None:
        self.learnt = 0

    def score_one(self, x: dict[str, float]) -> float:
        if x["value"] < 0:
            raise ValueError("negative value")
        return math.nan if x["value"] > 90 else 0.1

    def learn_one(self, x: dict[str, float]) -> None:
        self.score_one(x)
        self.learnt += 1


def test_a_failing_model_is_logged_skips_the_reading_and_is_reset_after_20(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(online_ml.DETECTORS, "brittle", Brittle)
    bank = new_bank(detector="brittle", warmup=0)
    # T1: 10 good, 19 failing, 1 good, 20 failing, 10 good; T2 good throughout.
    t1 = [20.0] * 10 + [-1.0] * 19 + [20.0] + [-1.0] * 20 + [20.0] * 10
    with structlog.testing.capture_logs() as logs:
        for i, v in enumerate(t1):
            assert bank.process(reading("T1", "temperature", STEP * i, v)) == []
            assert bank.process(reading("T2", "temperature", STEP * i + 1, 20.0)) == []
            if i == 28:  # 19 failures in a row: logged, skipped, not yet reset
                assert bank.stats.errors == 19 and bank.stats.resets == 0
                assert bank._sensors["T1"].model.seen == 10
            if i == 29:  # one good reading: learnt; the count of failures starts over
                assert bank._sensors["T1"].model.seen == 11
        # A score outside [0, 1] (NaN) is a failure too.
        assert bank.process(reading("T2", "temperature", STEP * len(t1) + 1, 95.0)) == []

    assert bank.stats.errors == 19 + 20 + 1
    assert bank.stats.resets == 1
    fresh = bank._sensors["T1"].model
    assert isinstance(fresh.detector, Brittle)
    assert fresh.seen == 10 and fresh.detector.learnt == 10  # only what came after the reset
    assert bank._sensors["T2"].model.seen == len(t1)  # the other sensor kept working
    assert bank.stats.scored == len(t1) + (10 + 1 + 10)
    failed = [e for e in logs if e["event"] == "online model failed; reading skipped"]
    assert [e["sensor"] for e in failed] == ["T1"] * 39 + ["T2"]
    assert [e["failures"] for e in failed] == [*range(1, 20), *range(1, 21), 1]
    assert all(e["log_level"] == "error" and e["exc_info"] for e in failed)
    assert failed[0]["value"] == -1.0
    assert failed[0]["ts"] == (T0 + timedelta(seconds=STEP * 10)).isoformat()
    resets = [e for e in logs if e["event"] == "online model reset after repeated failures"]
    assert [e["sensor"] for e in resets] == ["T1"]


# --- 6. checkpoints ---------------------------------------------------------------------------
def _two_sensors(n: int) -> list[Reading]:
    d1 = dust(n, factor=4.0, at=1500, length=40)
    rng = random.Random(11)
    co = [3.0 + rng.gauss(0, 0.3) for _ in range(n)]
    out: list[Reading] = []
    for i in range(n):
        out.append(reading("D1", "dust", STEP * i, d1[i]))
        out.append(reading("C1", "co", STEP * i + 2, co[i]))
    return out


def _zone_of_three(hours: int, alone_from: float, lead_min: float = 0.0) -> list[Reading]:
    """Three dust sensors of one zone every 10 s from 00:00 local on a Tuesday: idle for
    a day, a shift from 08:00 to 17:00 on the next (all three; Z1 ``lead_min`` minutes
    before the others), and one of them at the day level alone for an hour from
    ``alone_from`` h."""
    rng = random.Random(7)
    start = (datetime(2026, 3, 2, 19, 0, tzinfo=UTC) - T0).total_seconds()
    out = []
    for i in range(hours * 360):
        h = i / 360
        for k, sid in enumerate(("Z1", "Z2", "Z3")):
            shift_from = 32 - (lead_min / 60 if sid == "Z1" else 0.0)
            busy = shift_from <= h < 41 or (sid == "Z2" and alone_from <= h < alone_from + 1)
            value = (3.0 if busy else 1.0) * math.exp(rng.gauss(0, 0.05))
            out.append(reading(sid, "dust", start + 10 * i + k, value))
    return out


@pytest.mark.parametrize("detector", ["default", "departure"])
def test_a_restored_checkpoint_continues_exactly_like_the_original(detector: str) -> None:
    if detector == "default":
        readings, half = _two_sensors(2000), 2 * 1003
    else:  # the budgeted model needs hours; restored 15 s into a minute, before the hour
        readings, half = _zone_of_three(46, 44.0), 3 * (43 * 360 + 1)
    settings = ModelSettings(warmup=WARMUP, detector=detector)
    original = ModelBank(CAT, LIMITS, settings)
    for r in readings[:half]:
        original.process(r)
    original.drain_scores()
    blob = original.export_state("E900")
    assert original.export_state("E999") != blob  # another enterprise: nothing of E900

    restored = ModelBank(CAT, LIMITS, ModelSettings(warmup=WARMUP, detector=detector))
    assert restored.import_state("E900", blob) is True
    assert restored.enterprises() == {"E900"}
    a: list[AlertEvent] = []
    b: list[AlertEvent] = []
    for r in readings[half:]:
        a += original.process(r)
        b += restored.process(r)
    assert any(e.kind is AlertKind.ANOMALY and e.action is AlertAction.OPEN for e in a)
    assert a == b
    rows_a, rows_b = original.drain_scores(), restored.drain_scores()
    assert len(rows_a) > 100
    assert rows_a == rows_b


def test_a_checkpoint_of_another_configuration_is_ignored() -> None:
    readings = _two_sensors(1200)
    original = ModelBank(CAT, LIMITS, ModelSettings(warmup=WARMUP, detector="default"))
    for r in readings:
        original.process(r)
    blob = original.export_state("E900")
    for other in (
        ModelSettings(warmup=WARMUP, detector="ewm"),
        ModelSettings(warmup=WARMUP, detector="default", params={"refractory": 200}),
    ):
        bank = ModelBank(CAT, LIMITS, other)
        for r in readings[:50]:  # some state of its own, which the import drops
            bank.process(r)
        assert bank.import_state("E900", blob) is False
        assert bank.enterprises() == set()
        bank.process(reading("D1", "dust", STEP * 5000, 0.4))
        assert bank._sensors["D1"].model.seen == 1  # afresh: warming up again


# --- 7. calibration drift ---------------------------------------------------------------------
def _co_minutes(
    hours: int, *, drift_from: float, per_hour: float, day_step: float, seed: int
) -> list[float]:
    """CO every minute: 2 mg/m3 at night, by day ``day_step`` more (half of it from 08:00
    local, all of it from 12:00 to 20:00, each step taken in 20 min), noise; the zero
    creeping up by ``per_hour`` mg/m3 an hour after ``drift_from`` h."""
    rng = random.Random(seed)
    out = []
    for i in range(hours * 60):
        h = i / 60
        hour = (8 + h) % 24
        day = 0.0
        if 8 <= hour < 20:
            day = 0.5 * min(1.0, (hour - 8) * 3) + 0.5 * min(1.0, max(0.0, hour - 12) * 3)
        v = 2.0 + day_step * day + rng.gauss(0, 0.2)
        if h > drift_from:
            v += per_hour * (h - drift_from)
        out.append(v)
    return out


def test_a_creeping_zero_is_reported_within_hours_and_a_busy_day_never() -> None:
    bank = new_bank(warmup=1000)
    shift = bank._drift_shift("co")
    # A fifth of the lowest CO limit (20 mg/m3).
    assert shift is not None and shift == pytest.approx(0.2 * 20.0)
    rate = 10.0 / 12  # half the limit in 12 h, as a plant's drifting zero (mg/m3 per hour)
    drifting = feed(
        bank,
        _co_minutes(72, drift_from=30, per_hour=rate, day_step=1.0, seed=3),
        sensor="C1",
        hazard="co",
        step=60.0,
    )
    # Six days whose quiet level climbs by more than the drift worth reporting, in two steps
    # a few hours apart.
    busy = feed(
        bank,
        _co_minutes(144, drift_from=999, per_hour=0.0, day_step=6.0, seed=4),
        sensor="C2",
        hazard="co",
        step=60.0,
    )

    faults = [(i, e) for i, e in drifting if e.kind is AlertKind.SENSOR_FAULT]
    assert [e.action for _, e in faults] == [AlertAction.OPEN]
    i, e = faults[0]
    assert 30 * 60 < i < 42 * 60  # after the drift began, within 12 h of it
    assert e.sensor_id == "C1" and e.hazard == "co" and e.severity is Severity.WARNING
    assert "/drift" in e.key and e.key.startswith("C1/drift|sensor_fault|")
    assert e.details["source"] == "model:drift"
    assert "zero drifting" in e.message and "mg/m3/h" in e.message
    assert e.details["size"] >= shift
    assert 0.5 * rate < e.details["rate_per_hour"] < 2 * rate
    assert [e for _, e in busy if e.kind is AlertKind.SENSOR_FAULT] == []


# --- 8. zone fire risk ------------------------------------------------------------------------
def test_zone_fire_risk_scores_rise_with_heat_and_co() -> None:
    ref = load_reference(CAT)
    ent, zone = next(
        (e, z)
        for e in ref.enterprises
        for z in e.zones
        if {"temperature", "smoke", "co"} <= {s.hazard for s in z.sensors}
    )
    sid = {s.hazard: s.id for s in zone.sensors}
    bank = ModelBank(CAT, LIMITS, ModelSettings(warmup=200), reference=ref)
    f = LIMITS.fire
    twin = ZoneFireRisk(  # the zone's score as the bank should compute it
        heat_rate_mid=f.combo_heat_c_per_min,
        smoke_mid=f.combo_smoke,
        co_rise_mid=f.combo_co_rise,
        trend_s=f.combo_window_s,
    )
    risk: list[tuple[datetime, float]] = []
    rng = random.Random(5)
    fire_from = 360  # an hour of quiet, then 4 minutes of heat rising 4 °C/min, CO up 15
    for k in range(fire_from + 24):
        t, burning = 10.0 * k, max(0, k - fire_from)
        temp = 21.0 + 4.0 * burning / 6 + rng.gauss(0, 0.05)
        smoke = max(0.0, rng.gauss(0.0, 0.05))
        co = 3.0 + (15.0 if burning else 0.0) + rng.gauss(0, 0.3)
        for hazard, dt, value in (("temperature", 0, temp), ("smoke", 1, smoke), ("co", 2, co)):
            r = reading(sid[hazard], hazard, t + dt, value, enterprise=ent.id)
            bank.process(r)
            risk.append((r.ts, twin.update(r.sensor_id, hazard, r.ts.timestamp(), value)))
    rows = [r for r in bank.drain_scores() if r.sensor_id.startswith("zone:")]
    assert rows and {r.sensor_id for r in rows} == {f"zone:{ent.id}/{zone.id}"}
    assert all(r.detector == "fire_risk" and 0.0 <= r.score <= 1.0 for r in rows)
    assert all(
        r.enterprise_id == ent.id and r.feature and "co_rise_mg_m3" in r.feature for r in rows
    )
    start = T0 + timedelta(seconds=10.0 * fire_from)
    quiet = [r.score for r in rows if r.ts < start]
    fire = [r.score for r in rows if r.ts >= start]
    assert len(quiet) >= 55 and len(fire) >= 3
    assert max(quiet) < 0.2
    assert max(fire) > 0.8 > max(quiet)
    # One row per closed minute: the zone's highest score of the minute, when it was reached.
    minutes: dict[int, list[tuple[datetime, float]]] = {}
    for ts, score in risk:
        minutes.setdefault(int((ts - T0).total_seconds() // 60), []).append((ts, score))
    want = [max(minutes[m], key=lambda p: p[1]) for m in sorted(minutes)[:-1]]
    assert [(r.ts, r.score) for r in rows] == want


# --- 9. scores stored per minute --------------------------------------------------------------
def test_scores_are_stored_as_the_highest_of_each_minute_per_sensor() -> None:
    catchup, live = 300, 60  # 50 minutes of catching up after a restart, then 10 minutes live
    offset = {"D1": 0.0, "D2": 1.0}
    series = {s: dust(catchup + live + 1, seed=21 + k) for k, s in enumerate(offset)}
    series["D1"][250] *= 4.0  # readings worth an alert: stored as they come
    series["D1"][catchup + 25] *= 4.0
    twin = {s: make_stream_model("ewm", 100) for s in offset}  # the same model, outside
    scores: dict[str, list[float]] = {s: [] for s in offset}
    bank = new_bank(detector="ewm", warmup=100)
    loud = new_bank(detector="ewm", warmup=100)  # the same readings, all live
    silent_events: list[AlertEvent] = []
    loud_events: list[AlertEvent] = []
    rows: list[ScoreRecord] = []
    for i in range(catchup + live + 1):
        for s, values in series.items():
            r = reading(s, "dust", STEP * i + offset[s], values[i])
            x = {"value": r.value, "t": r.ts.timestamp()}
            scores[s].append(twin[s].score_one(x))
            twin[s].learn_one(x)
            if i < catchup:
                silent_events += bank.process(r, emit=False)
                loud_events += loud.process(r)
            else:
                bank.process(r)
        if i == catchup - 1:
            # Catching up learns and keeps the scores, but announces nothing.
            assert silent_events == [] and loud_events != []
            assert bank.drain_scores() == loud.drain_scores()
        if i == catchup + live - 1:  # ten minutes live: the last one is not over yet
            rows = bank.drain_scores()

    assert scores["D1"][catchup + 25] >= bank.threshold
    for s in offset:

        def at(i: int, s: str = s) -> datetime:
            return T0 + timedelta(seconds=STEP * i + offset[s])

        minutes: dict[int, list[int]] = {}
        for i in range(catchup - 6, catchup + live):  # minute 49 closes at the first live one
            minutes.setdefault(int(STEP * i // 60), []).append(i)
        closed = sorted(minutes)[:-1]
        assert len(closed) == 10
        sc = scores[s]
        # The first reading of each closed minute with the minute's highest score...
        best = [max(minutes[m], key=lambda i: (sc[i], -i)) for m in closed]
        # ...and every live reading at or above the alert threshold.
        flagged = [i for i in range(catchup, catchup + live) if sc[i] >= bank.threshold]
        mine = [r for r in rows if r.sensor_id == s]
        assert sorted((r.ts, r.score) for r in mine) == sorted(
            (at(i), sc[i]) for i in best + flagged
        )
        assert len(mine) == 10 + len(flagged)
        assert len({sc[i] for i in best}) > 3  # real, varying scores
        assert all(r.detector == "ewm" and r.enterprise_id == "E900" for r in mine)
        assert all(r.value == series[s][int((r.ts - T0).total_seconds() // STEP)] for r in mine)
        assert (catchup + 25 in flagged) is (s == "D1")
    # The reading at 10:00 closed the last minute of each sensor.
    assert sorted(r.sensor_id for r in bank.drain_scores()) == ["D1", "D2"]


# --- identity caches (score_one then learn_one of the same x) --------------------------------
# While learning is suspended (latch, guard), a cache keyed by id(x) once let the next
# reading's dict, reusing that id, get a stale window and score: the model then depended on
# what else the process allocated, and learnt a leak value when the latch let go.


def test_what_a_sensor_model_learns_does_not_depend_on_other_calls() -> None:
    values = dust(1200, factor=4.0, at=800, length=20)  # latched for 20 readings
    plain = new_bank(warmup=WARMUP)
    feed(plain, values)
    busy = new_bank(warmup=WARMUP)
    for i, v in enumerate(values):
        busy.process(reading(SID, "dust", STEP * i, v))
        if i % 5 == 0:  # never reaches the model, but allocates in between
            busy.process(reading(SID, "dust", STEP * i + 3, 40.0), faulty=True)
            model_bytes(busy)
    assert model_bytes(busy) == model_bytes(plain)


def test_a_latched_leak_leaves_no_trace_in_the_model() -> None:
    at, length = 1500, 150
    values = dust(1700, factor=4.0, at=at, length=length)
    _, _, surprise, _ = _leak_run(new_bank(warmup=WARMUP), values, at, length)
    # Back to normal: nothing learnt from the leak, so normal readings are no surprise.
    assert max(surprise[at + length + 2 : at + length + 40]) < HOLD_AT


# --- 9. the budgeted departure model in the bank: zones ------------------------------------
@pytest.mark.parametrize("lead_min", [0.0, 6.0])
def test_a_zone_moving_together_is_not_an_anomaly_and_one_sensor_alone_is(
    lead_min: float,
) -> None:
    """Three dust sensors of one zone (no reference data: the enterprise's sensors share
    its one zone). A working day on which the plant stands idle; then, at 08:00 of the
    next, all three go to the day level together for the first time — a shift starting,
    not an anomaly, also when one of them starts ``lead_min`` minutes before the others
    (it is held out of learning until they follow, then takes the new level as its
    reference); at 20:00, three hours after the shift, one of them goes to the day
    level alone for an hour: that one is reported, with its zone in the explanation."""
    bank = ModelBank(CAT, LIMITS, ModelSettings(warmup=360), reference=None)
    start = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
    opened = [
        ((e.ts - start).total_seconds() / 3600, e)
        for r in _zone_of_three(45, 44.0, lead_min)
        for e in bank.process(r)
        if e.kind is AlertKind.ANOMALY and e.action is AlertAction.OPEN
    ]
    assert [(e.sensor_id, 44 <= h < 44.5) for h, e in opened] == [("Z2", True)]
    assert "allowing for the rest of its zone" in opened[0][1].message


def test_oxygen_dipping_as_its_zone_starts_work_is_explained_and_dipping_alone_is_not() -> None:
    """Oxygen moves against its zone's gases (it dips a little as a shift's work starts,
    while they rise): both are movements towards danger, so the first shift start ever
    is the zone moving together, not an oxygen anomaly; the same dip at 20:00, the
    zone quiet, is one."""
    bank = ModelBank(CAT, LIMITS, ModelSettings(warmup=360), reference=None)
    start = datetime(2026, 3, 2, 19, 0, tzinfo=UTC)
    t0 = (start - T0).total_seconds()
    rng = random.Random(3)
    opened = []
    for i in range(45 * 360):
        h = i / 360
        busy = 32 <= h < 41
        ahead = min(max((h - 32) * 6, 0.0), 1.0) if busy else 0.0  # a 10-min ramp
        dip = 0.25 * ahead + (0.25 if 44 <= h < 45 else 0.0)
        values = [
            ("G1", "co", (1.0 + 3.0 * ahead) * math.exp(rng.gauss(0, 0.05))),
            ("G2", "h2s", (0.3 + 1.0 * ahead) * math.exp(rng.gauss(0, 0.05))),
            ("O1", "o2", 20.9 - dip + rng.gauss(0, 0.01)),
        ]
        for k, (sid, hazard, v) in enumerate(values):
            for e in bank.process(reading(sid, hazard, t0 + 10 * i + k, v)):
                if e.kind is AlertKind.ANOMALY and e.action is AlertAction.OPEN:
                    opened.append(((e.ts - start).total_seconds() / 3600, e))
    assert [(e.sensor_id, 44 <= h < 44.5) for h, e in opened] == [("O1", True)]
    assert "below" in opened[0][1].message
