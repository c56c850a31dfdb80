"""Safety detection: exact alerts for each kind of limit, hand-computed exposures,
and nothing raised by a hot shop, a shift start or a benign blip."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import load_catalogue
from core.errors import InvalidReading
from core.limits import load_limits
from core.reference import load_reference
from core.types import Reading
from stream.detection.detector import Detector
from stream.detection.windows import WindowAverage

CAT = load_catalogue()
LIMITS = load_limits()
T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 08:00 in Kazakhstan


def reading(
    sensor: str,
    hazard: str,
    seconds: float,
    value: float,
    *,
    enterprise: str = "E900",
    plausible: bool | None = None,
) -> Reading:
    """A reading at ``T0 + seconds`` in the hazard's canonical unit (plausibility by the
    catalogue unless given)."""
    hz = CAT[hazard]
    return Reading(
        enterprise,
        sensor,
        T0 + timedelta(seconds=seconds),
        hazard,
        value,
        hz.unit,
        None,
        value,
        hz.unit,
        hz.is_plausible(value) if plausible is None else plausible,
    )


def run(
    series: list[tuple[str, str, float, float]], detector: Detector | None = None
) -> list[AlertEvent]:
    d = detector or Detector(CAT, LIMITS)
    out: list[AlertEvent] = []
    for sensor, hazard, t, v in sorted(series, key=lambda x: x[2]):
        out += d.process(reading(sensor, hazard, t, v))
    return out + d.flush()


def opened(events: list[AlertEvent]) -> list[tuple[str, str, float]]:
    return [
        (e.kind.value, e.severity.value, (e.ts - T0).total_seconds())
        for e in events
        if e.action is AlertAction.OPEN
    ]


def test_threshold_opens_on_the_crossing_reading_escalates_and_clears_with_hysteresis() -> None:
    values = [5, 5, 21, 19.5, 20.5, 19, 25, 150, 30, 17, 17, 17, 17, 17, 17, 17, 17, 5]
    events = run([("S1", "co", 10.0 * i, v) for i, v in enumerate(values)])
    thr = [e for e in events if e.kind is AlertKind.THRESHOLD]
    assert [(e.action.value, e.severity.value, e.value) for e in thr] == [
        ("open", "warning", 21.0),  # the reading that crossed 20 mg/m3
        ("escalate", "critical", 150.0),  # ≥ 100 mg/m3
        ("clear", "critical", 17.0),  # below 18 (20 - 10 % dead-band) for 60 s
    ]
    # Hovering at the limit (19.5, 20.5, 19) did not flap: one open, one clear.
    assert thr[0].ts == T0 + timedelta(seconds=20)
    assert thr[2].ts == T0 + timedelta(seconds=150)  # 17 from t=90 s, held 60 s
    ceiling = [e for e in events if e.kind is AlertKind.CEILING]
    assert ceiling == []  # 150 < 229 mg/m3
    assert "GOST 12.1.005-88" in thr[0].message and "mg/m3" in thr[0].message


def test_oxygen_deficiency_and_enrichment() -> None:
    events = run([("O1", "o2", 0, 20.9), ("O1", "o2", 10, 19.8), ("O1", "o2", 20, 19.0)])
    assert [
        (e.action.value, e.severity.value) for e in events if e.kind is AlertKind.THRESHOLD
    ] == [("open", "warning"), ("escalate", "critical")]
    events = run([("O2", "o2", 0, 20.9), ("O2", "o2", 10, 24.0)])
    assert opened(events) == [("threshold", "critical", 10.0)]


def test_stel_matches_a_hand_computed_15_minute_average() -> None:
    # CO: 0 for 5 min, then 30 mg/m3. Readings every 10 s; each holds since the previous.
    # 15-min average at time t (t >= 900 s): 30 * (t - 300) / 900; it reaches 20 at t = 900 s.
    series = [("S1", "co", float(t), 0.0 if t <= 300 else 30.0) for t in range(0, 1201, 10)]
    d = Detector(CAT, LIMITS)
    events = run(series, d)
    stel = [e for e in events if e.kind is AlertKind.STEL and e.action is AlertAction.OPEN]
    assert len(stel) == 1
    assert (stel[0].ts - T0).total_seconds() == 900.0
    assert stel[0].value == pytest.approx(20.0)
    rows = [r for r in d.drain_exposures() if r.sensor_id == "S1"]
    minute_15 = next(r for r in rows if r.ts == T0 + timedelta(minutes=15))
    # The minute [14, 15) closes with the reading at 890 s: 30 * 590 / 900.
    assert minute_15.stel == pytest.approx(30 * 590 / 900)
    assert minute_15.ceiling == 30.0
    # Shift average over 8 h at 890 s: 30 * 590 / 28800.
    assert minute_15.twa == pytest.approx(30 * 590 / 28800)


def test_twa_for_dust_is_dose_over_eight_hours() -> None:
    # 8 mg/m3 for 2 h: TWA(8 h) = 8 * 2 / 8 = 2.0 mg/m3, the warning level, at exactly 2 h.
    series = [("D1", "dust", float(t), 8.0) for t in range(0, 7201, 60)]
    events = run(series)
    twa = [e for e in events if e.kind is AlertKind.TWA]
    assert [(e.action.value, e.severity.value) for e in twa] == [("open", "warning")]
    assert (twa[0].ts - T0).total_seconds() == 7200.0
    assert twa[0].value == pytest.approx(2.0)


def test_noise_lex_8h_with_the_3_db_exchange_rate() -> None:
    # 90 dBA: LEX,8h = 90 + 10/log10(2)*0.30103... = 90 + 9.966 * log10(t / 8 h).
    # It reaches 80 dBA at t = 8 h * 10^(-10 / 9.966) = 2857 s.
    series = [("N1", "noise", float(t), 90.0) for t in range(0, 3601, 5)]
    events = run(series)
    twa = [e for e in events if e.kind is AlertKind.TWA and e.action is AlertAction.OPEN]
    expected = 8 * 3600 * 10 ** (-10 / (3 / math.log10(2)))
    assert len(twa) == 1
    assert abs((twa[0].ts - T0).total_seconds() - expected) <= 5.0
    assert twa[0].severity is Severity.WARNING


def test_exchange_rate_and_vibration_averages() -> None:
    w5 = WindowAverage(8 * 3600, "energy", max_hold_s=60, exchange_rate_db=5.0)
    w3 = WindowAverage(8 * 3600, "energy", max_hold_s=60, exchange_rate_db=3.0)
    for t in range(0, 4 * 3600 + 1, 60):
        w5.add(float(t), 90.0)
        w3.add(float(t), 90.0)
    # Half the shift at 90 dBA: 5 dB rule -> 85.0; 3 dB rule -> 90 - 3.0 = 87.0
    assert w5.average(4 * 3600.0) == pytest.approx(85.0, abs=1e-9)
    assert w3.average(4 * 3600.0) == pytest.approx(87.0, abs=1e-9)
    rms = WindowAverage(8 * 3600, "rms", max_hold_s=60)
    for t in range(0, 2 * 3600 + 1, 60):
        rms.add(float(t), 5.0)
    assert rms.average(2 * 3600.0) == pytest.approx(2.5)  # A(8) = 5 * sqrt(2/8)


def test_gaps_count_as_unknown_not_as_the_last_value() -> None:
    w = WindowAverage(900, "arithmetic", max_hold_s=60)
    w.add(0.0, 10.0)
    w.add(60.0, 10.0)  # 60 s known at 10
    w.add(660.0, 10.0)  # 10-min gap: only the last 60 s of it are filled
    assert w.average(660.0) == pytest.approx(10.0 * 120 / 900)


def test_negative_drift_is_clamped_in_averages() -> None:
    w = WindowAverage(900, "arithmetic", max_hold_s=60)
    for t in range(0, 901, 60):
        w.add(float(t), -3.0)
    assert w.average(900.0) == 0.0


def test_hot_shop_shift_start_and_a_benign_blip_raise_nothing() -> None:
    series: list[tuple[str, str, float, float]] = []
    for i in range(0, 4 * 360):  # 4 h, every 10 s
        t = 10.0 * i
        jitter = 0.01 * ((i * 7919) % 13 - 6)  # real sensors never repeat a value for hours
        # A hot shop at 40 °C with a ±2 °C cycle and a little noise.
        series.append(("HOT-T", "temperature", t, 40 + 2 * math.sin(t / 3000) + 0.2 * math.sin(t)))
        # Shift start at t = 0: machines warm a workshop from 22 to 30 °C over 40 min.
        series.append(("SHIFT-T", "temperature", t, 22 + min(t, 2400) / 300 + jitter))
        # Noise steps from 70 to 82 dBA at shift start: LEX,8h after 4 h = 82 - 3 = 79 dBA.
        series.append(("SHIFT-N", "noise", t, (82.0 if t > 0 else 70.0) + jitter))
        # Dust with one benign blip of 30 mg/m3.
        series.append(("BLIP-D", "dust", t, 30.0 if i == 100 else 1.0 + jitter))
    # One odd temperature reading, 6 °C above a steady 25 °C.
    series += [
        ("BLIP-T", "temperature", 10.0 * i, 31.0 if i == 50 else 25.0 + 0.01 * (i % 3))
        for i in range(4 * 360)
    ]
    events = run(series)
    assert opened(events) == []


def test_impossible_values_raise_sensor_fault_only_and_skip_the_averages() -> None:
    d = Detector(CAT, LIMITS)
    events = run([("F1", "co", 0, 5.0), ("F1", "co", 10, 50000.0), ("F1", "co", 20, 5.0)], d)
    assert opened(events) == [("sensor_fault", "warning", 10.0)]
    assert "physically impossible" in events[0].message
    events = run([("F2", "humidity", 0, 150.0), ("F3", "o2", 0, 45.0)])
    assert [e.kind for e in events] == [AlertKind.SENSOR_FAULT, AlertKind.SENSOR_FAULT]
    # The averages never saw 50,000 mg/m3.
    rows = d.drain_exposures()
    assert all(r.ceiling < 100 for r in rows)


def test_fault_clears_after_five_minutes_of_plausible_values() -> None:
    series = [("F4", "co", 0, -500.0)] + [("F4", "co", float(t), 4.0) for t in range(10, 401, 10)]
    events = run(series)
    faults = [
        (e.action.value, (e.ts - T0).total_seconds())
        for e in events
        if e.kind is AlertKind.SENSOR_FAULT
    ]
    assert faults == [("open", 0.0), ("clear", 310.0)]


def test_stuck_sensor() -> None:
    # A sensor nobody knows yet: only six times the hazard's prior (noise: 10 min).
    series = [("ST", "noise", float(t), 85.0) for t in range(0, 3700, 10)]
    events = run(series)
    assert opened(events) == [("sensor_fault", "warning", 3600.0)]
    assert "stuck" in events[0].message
    # Gas sensors read a flat zero in clean air: not a fault.
    assert opened(run([("Z", "h2s", float(t), 0.0) for t in range(0, 7200, 10)])) == []


def test_a_fine_sensor_is_stuck_minutes_after_it_freezes() -> None:
    """A sensor whose own history never holds a value for more than a minute is
    reported 10 min (the floor) after it freezes, long before the hazard's hour."""
    rng = np.random.default_rng(1)
    vals = list(np.round(0.5 + rng.normal(0, 0.05, 2520), 3))  # 0.001 steps: no runs
    frozen = [vals[-1]] * 120  # then the same value for 20 min
    series = [("F", "co", 10.0 * i, float(v)) for i, v in enumerate(vals + frozen)]
    events = run(series)
    got = opened(events)
    assert len(got) == 1 and got[0][0] == "sensor_fault"
    freeze = 10.0 * (len(vals) - 1)
    assert 600 <= got[0][2] - freeze <= 630, got
    fault = next(e for e in events if e.kind is AlertKind.SENSOR_FAULT)
    assert "its longest normal run is 0 min" in fault.message


def test_a_sensor_silent_for_hours_still_counts_as_fine_when_it_freezes() -> None:
    """Seed 31's miss: a fine H2S sensor was silent for 2 h 20 min (reported stale) and
    came back with the value it went silent on; the silence was learnt as a 2-hour run
    of one value, so when it froze a day later it counted as coarse and was never
    reported. A silence ends a run: the freeze is reported 10 min after it starts."""
    rng = np.random.default_rng(2)
    before = list(np.round(1.5 + rng.normal(0, 0.1, 1080), 2))  # 3 h, 10-s readings
    after = list(np.round(1.5 + rng.normal(0, 0.1, 1080), 2))
    frozen_at = 10.0 * len(before) + 8400.0 + 10.0 * len(after)
    series = [("G", "h2s", 10.0 * i, float(v)) for i, v in enumerate(before)]
    after[0] = before[-1]  # back with the value it went silent on
    series += [
        ("G", "h2s", 10.0 * len(before) + 8400.0 + 10.0 * i, float(v)) for i, v in enumerate(after)
    ]
    series += [("G", "h2s", frozen_at + 10.0 * i, float(after[-1])) for i in range(1, 120)]
    # A neighbour keeps the enterprise's clock going through the silence.
    series += [("N", "noise", 60.0 * i, 70.0 + (i % 7)) for i in range(int(frozen_at // 60) + 22)]
    events = run(series)
    got = [x for x in opened(events) if x[0] == "sensor_fault"]
    assert len(got) == 1, got
    assert 600 <= got[0][2] - (frozen_at - 10.0) <= 630, got


def test_a_coarse_sensor_that_holds_a_value_for_an_hour_is_not_stuck() -> None:
    """A 0.5-degC thermometer in a quiet room holds 21.5 for 50 min at a time, then 22
    for 10: it is coarse (its longest run is over 5 min), so two hours
    at 21.5 on a still night are normal for it; 6 x the prior is not."""
    prior_min = LIMITS.health.stuck_after_s["temperature"] / 60
    pattern = [21.5] * 50 + [22.0] * 10  # one reading a minute
    series = [("C", "temperature", 60.0 * i, v) for i, v in enumerate(pattern * 20)]
    assert opened(run(series)) == []
    night = pattern * 16 + [21.5] * 150 + [22.0] * 10
    assert opened(run([("C1", "temperature", 60.0 * i, v) for i, v in enumerate(night)])) == []
    stuck = pattern * 16 + [21.5] * int(6 * prior_min + 10)
    events = run([("C2", "temperature", 60.0 * i, v) for i, v in enumerate(stuck)])
    assert [k for k, *_ in opened(events)] == ["sensor_fault"]


@pytest.mark.xfail(
    strict=True,
    reason="issue 11, open: a quiet night's one long hold near clean air makes a fine"
    " methane sensor count as coarse (seed 34; README, what is still short)",
)
def test_a_quiet_night_near_clean_air_does_not_excuse_a_frozen_working_level() -> None:
    """Seed 34's miss: a methane sensor of 0.1-%LEL steps held 0.5 for 7 min one night
    (clean air is 0.3), so it counted as coarse and its freeze at 1.5 during the day went
    unreported for 30 min. What a fix must do: report the freeze within 15 min, and not
    report an hour near clean air after the same night (bands of values near clean air
    were tried and dropped: README, what is still short)."""
    rng = np.random.default_rng(3)
    night = [0.3, 0.4, 0.5, 0.4] * 30 + [0.5] * 42 + [0.4, 0.3] * 30  # 7 min at 0.5
    day = list(np.round(np.clip(1.2 + rng.normal(0, 0.15, 2160), 0.3, None), 1))  # 6 h
    quiet = night + day + [0.4] * 360 + [0.5, 0.4] * 5  # an hour at 0.4: clean air
    assert opened(run([("Q", "ch4", 10.0 * i, float(v)) for i, v in enumerate(quiet)])) == []
    frozen = night + day + [1.5] * 180  # 30 min frozen at a working level
    events = run([("M", "ch4", 10.0 * i, float(v)) for i, v in enumerate(frozen)])
    got = [x for x in opened(events) if x[0] == "sensor_fault"]
    assert len(got) == 1, got
    assert got[0][2] - 10.0 * (len(night) + len(day)) <= 900, got


def test_a_gas_sensor_flat_at_its_lowest_step_is_in_clean_air() -> None:
    """A 1-mg/m3 CO sensor reads 1 all night (its lowest step: clean air), as a fine
    one reads 0: not stuck, however long; flat at a higher value it is."""
    night = [2.0, 3.0, 2.0] * 20 + [1.0] * 2000 + [2.0] * 3
    assert opened(run([("N", "co", 10.0 * i, v) for i, v in enumerate(night)])) == []
    high = [2.0, 3.0, 1.0] * 20 + [3.0] * 2500
    assert [k for k, *_ in opened(run([("H", "co", 10.0 * i, v) for i, v in enumerate(high)]))] == [
        "sensor_fault"
    ]


def test_silent_sensor_goes_stale_at_the_right_event_time() -> None:
    ref = load_reference()
    sensor = ref.enterprises[0].sensors[0]  # reports every interval_s seconds
    d = Detector(CAT, LIMITS, ref)
    stale_after = max(3 * sensor.interval_s, 60.0)
    events: list[AlertEvent] = []
    events += d.process(reading(sensor.id, sensor.hazard, 0, 1.0))
    for t in range(0, 600, 5):  # another sensor keeps the watermark moving
        events += d.process(reading("OTHER", "humidity", float(t), 40.0))
    stale = [e for e in events if e.kind is AlertKind.STALE]
    assert [(e.action.value, e.sensor_id) for e in stale] == [("open", sensor.id)]
    assert stale[0].ts == T0 + timedelta(seconds=stale_after)
    back = d.process(reading(sensor.id, sensor.hazard, 601, 1.0))
    assert [(e.kind, e.action) for e in back] == [(AlertKind.STALE, AlertAction.CLEAR)]


def test_each_enterprise_keeps_its_own_event_time() -> None:
    """A plant catching up on a backlog is judged by its own clock, not another's: its
    sensors are not all declared silent, and the one that did go quiet is reported at
    the right moment of its own time."""
    d = Detector(CAT, LIMITS)
    events: list[AlertEvent] = []
    for t in range(3600, 3900, 10):  # a live plant, an hour ahead
        events += d.process(reading("LIVE-1", "humidity", t, 40.0, enterprise="LIVE"))
    for t in range(0, 600, 10):  # the backlog of another, an hour behind
        events += d.process(reading("LATE-1", "humidity", t, 40.0, enterprise="LATE"))
        if t < 200:
            events += d.process(reading("LATE-2", "humidity", t, 40.0, enterprise="LATE"))
    stale = [(e.sensor_id, e.ts) for e in events if e.kind is AlertKind.STALE]
    # Unknown sensors report every 60 s: silent after 180 s; LATE-2's last reading was at 190 s.
    assert stale == [("LATE-2", T0 + timedelta(seconds=370))]
    assert d.watermarks == {"LIVE": T0.timestamp() + 3890, "LATE": T0.timestamp() + 590}


def test_future_old_and_late_timestamps_are_refused_with_a_reason() -> None:
    d = Detector(CAT, LIMITS)
    d.process(reading("S", "co", 1000, 1.0))
    for seconds, reason in [
        (1000 + 3600, "future_timestamp"),
        (1000 - 8 * 86400, "old_timestamp"),
        (1000 - 120, "too_late"),
    ]:
        with pytest.raises(InvalidReading) as e:
            d.process(reading("S", "co", seconds, 1.0))
        assert e.value.reason == reason
    assert d.stats.refused == {"future_timestamp": 1, "old_timestamp": 1, "too_late": 1}
    assert d.process(reading("S", "co", 1000, 1.0)) == []  # a duplicate changes nothing
    assert d.stats.duplicates == 1


def test_rate_of_rise_then_fixed_temperature() -> None:
    # 25 °C, then +10 °C/min: sustained rise -> fire warning; 57 °C -> critical.
    series = [
        ("H", "temperature", float(t), 25.0 if t < 300 else 25.0 + (t - 300) / 6)
        for t in range(0, 601, 10)
    ]
    events = [e for e in run(series) if e.kind is AlertKind.FIRE]
    assert [(e.action.value, e.severity.value) for e in events] == [
        ("open", "warning"),
        ("escalate", "critical"),
    ]
    assert events[1].value >= 57.0
    assert events[0].ts < events[1].ts


def test_zone_signals_together_fire_earlier_than_any_one_alone() -> None:
    ref = load_reference()
    zone = next(
        z
        for e in ref.enterprises
        for z in e.zones
        if {"temperature", "smoke", "co"} <= {s.hazard for s in z.sensors}
    )
    by = {s.hazard: s for s in zone.sensors}
    d = Detector(CAT, LIMITS, ref)
    base_t = zone.normal_temperature_c or 25.0
    series = []
    for t in range(0, 901, 10):
        rising = t >= 300
        # Each signal on its own stays under its single-sensor alarm level.
        series.append(
            (
                by["temperature"].id,
                "temperature",
                float(t),
                base_t + (4.0 * (t - 300) / 60 if rising else 0.0) if t < 420 else base_t + 8,
            )
        )
        series.append((by["smoke"].id, "smoke", float(t), 2.0 if rising else 0.2))
        series.append((by["co"].id, "co", float(t), 5.0))
    events = []
    for sensor, hazard, t, v in sorted(series, key=lambda x: x[2]):
        hz = CAT[hazard]
        r = Reading(
            zone.enterprise_id,
            sensor,
            T0 + timedelta(seconds=t),
            hazard,
            v,
            hz.unit,
            None,
            v,
            hz.unit,
            True,
        )
        events += d.process(r)
    fire = [e for e in events if e.kind is AlertKind.FIRE and e.action is AlertAction.OPEN]
    assert len(fire) == 1
    assert fire[0].severity is Severity.CRITICAL
    assert "heat + smoke" in fire[0].message
    assert (fire[0].ts - T0).total_seconds() <= 420  # within two minutes of the start
    # Smoke alone at 2 %obs/m and heat alone at 4 °C/min raise nothing.
    assert opened(run([("SM", "smoke", float(t), 2.0) for t in range(0, 600, 10)])) == []


def test_state_saved_then_restored_gives_identical_results() -> None:
    ref = load_reference()
    zone = next(
        z
        for e in ref.enterprises
        for z in e.zones
        if {"temperature", "smoke", "co"} <= {s.hazard for s in z.sensors}
    )
    sensors = [s for s in zone.sensors if s.hazard in ("temperature", "smoke", "co")]

    def series(start: int, stop: int) -> list[Reading]:
        out = []
        for t in range(start, stop, 10):
            for s in sensors:
                v = {
                    "temperature": 30 + max(0, t - 900) / 15,
                    "smoke": 0.2 + max(0, t - 900) / 200,
                    "co": 5 + max(0, t - 900) / 20,
                }[s.hazard] + 0.01 * (t % 7)
                hz = CAT[s.hazard]
                out.append(
                    Reading(
                        zone.enterprise_id,
                        s.id,
                        T0 + timedelta(seconds=t),
                        s.hazard,
                        v,
                        hz.unit,
                        None,
                        v,
                        hz.unit,
                        True,
                    )
                )
        return out

    straight = Detector(CAT, LIMITS, ref)
    first = [e for r in series(0, 1000) for e in straight.process(r)]
    rest_straight = [e for r in series(1000, 2400) for e in straight.process(r)]
    interrupted = Detector(CAT, LIMITS, ref)
    first_i = [e for r in series(0, 1000) for e in interrupted.process(r)]
    blob = interrupted.export_state(zone.enterprise_id)
    restored = Detector(CAT, LIMITS, ref)
    restored.import_state(zone.enterprise_id, blob)
    rest_restored = [e for r in series(1000, 2400) for e in restored.process(r)]
    assert first == first_i
    assert rest_restored == rest_straight
    assert any(e.kind is AlertKind.FIRE for e in rest_straight)
    assert len(blob) < 20_000  # bytes: small enough to checkpoint often


def _effective_opens(events: list[AlertEvent]) -> list[tuple[str, str, str, float, str]]:
    """Opens that stand: every retracted open removed (retractions follow late readings)."""
    retracted = {e.key for e in events if e.action is AlertAction.RETRACT}
    return sorted(
        (e.kind.value, e.severity.value, e.sensor_id, (e.ts - T0).total_seconds(), e.key)
        for e in events
        if e.action is AlertAction.OPEN and e.key not in retracted
    )


def test_out_of_order_within_the_lateness_gives_the_in_order_result() -> None:
    import random

    series: list[tuple[str, str, float, float]] = []
    for i in range(400):  # CO and H2S, every 10 s, crossing and clearing several times
        t = 10.0 * i
        co = 30.0 if 50 <= i < 80 or 200 <= i < 203 or 300 <= i < 360 else 4.0
        series.append(("OO-CO", "co", t, co + 0.01 * (i % 7)))
        series.append(("OO-H2S", "h2s", t + 3, (12.0 if i % 40 < 6 else 2.0) + 0.01 * (i % 5)))
    in_order = Detector(CAT, LIMITS)
    expected = run(series, in_order)
    rows_expected = in_order.drain_exposures()
    assert {k for k, *_ in _effective_opens(expected)} >= {"threshold", "stel"}

    rng = random.Random(5)
    # Each reading arrives up to 25 s late (the allowed lateness is 30 s).
    arrivals = sorted(series, key=lambda x: x[2] + rng.uniform(0, 25))
    assert arrivals != sorted(series, key=lambda x: x[2])
    shuffled = Detector(CAT, LIMITS)
    got: list[AlertEvent] = []
    for sensor, hazard, t, v in arrivals:
        got += shuffled.process(reading(sensor, hazard, t, v))
    got += shuffled.flush()
    assert shuffled.stats.late > 50
    assert any(e.action is AlertAction.RETRACT for e in got)  # some opens were corrected
    assert _effective_opens(got) == _effective_opens(expected)

    def by_sensor(rows: list[Any]) -> list[Any]:
        return sorted(rows, key=lambda r: (r.sensor_id, r.ts))

    assert by_sensor(shuffled.drain_exposures()) == by_sensor(rows_expected)


def test_a_reading_later_than_the_lateness_is_refused() -> None:
    d = Detector(CAT, LIMITS)
    for t in range(0, 200, 10):
        d.process(reading("L", "co", float(t), 5.0))
    d.process(reading("L", "co", 165.0, 5.0))  # 25 s behind: accepted
    with pytest.raises(InvalidReading) as e:
        d.process(reading("L", "co", 150.0, 5.0))  # 40 s behind
    assert e.value.reason == "too_late"


def test_ceiling_and_noise_dose() -> None:
    from stream.detection.windows import noise_dose_percent

    events = run([("C1", "co", 0, 5.0), ("C1", "co", 10, 250.0)])
    assert sorted(opened(events)) == [
        ("ceiling", "critical", 10.0),
        ("threshold", "critical", 10.0),
    ]
    # 90 dBA for 4 h: LEX,8h = 87 dBA; dose against 80 dBA with the 3 dB rule:
    # 100 % x 2^((87 - 80) / 3) = 504 %.
    w = WindowAverage(8 * 3600, "energy", max_hold_s=60)
    for t in range(0, 4 * 3600 + 1, 60):
        w.add(float(t), 90.0)
    lex = w.average(4 * 3600.0)
    assert lex is not None
    assert noise_dose_percent(lex) == pytest.approx(100 * 2 ** (7 / 3), rel=1e-6)


def _fire_zone() -> tuple[Any, dict[str, Any]]:
    ref = load_reference()
    zone = next(
        z
        for e in ref.enterprises
        for z in e.zones
        if {"temperature", "smoke", "co"} <= {s.hazard for s in z.sensors}
    )
    return ref, {s.hazard: s for s in zone.sensors}


def _zone_run(
    ref: Any,
    by: dict[str, Any],
    values: Callable[[str, float], float],
    seconds: int,
    every: dict[str, int] | None = None,
) -> list[AlertEvent]:
    """The zone's fire alerts opened over ``seconds``, each hazard read every 10 s (or
    as often as ``every`` says)."""
    d = Detector(CAT, LIMITS, ref)
    events: list[AlertEvent] = []
    for t in range(0, seconds, 10):
        for hazard in ("temperature", "smoke", "co"):
            if t % (every or {}).get(hazard, 10):
                continue
            s = by[hazard]
            events += d.process(
                reading(
                    s.id, hazard, float(t), values(hazard, float(t)), enterprise=s.enterprise_id
                )
            )
    return [e for e in events if e.kind is AlertKind.FIRE and e.action is AlertAction.OPEN]


def _noise(t: float, hazard: str) -> float:
    """A deterministic wobble, so that the normal levels have a spread."""
    k = {"temperature": 0.3, "smoke": 0.02, "co": 0.4}[hazard]
    return k * math.sin(t / 37.0) + k * 0.5 * math.sin(t / 11.0)


def test_a_smouldering_fire_is_critical_within_15_minutes_though_no_signal_alarms() -> None:
    """Smoke creeping from 0.2 to ~3 %obs/m over 27 min, CO +4 mg/m3, heat +3 degC (each
    far under its own alarm level): a critical fire, the message says why."""
    ref, by = _fire_zone()
    start, grow = 3 * 3600.0, 1620.0
    normal = {"temperature": 30.0, "smoke": 0.2, "co": 5.0}
    gain = {"temperature": 3.0, "smoke": 2.8, "co": 4.0}

    def values(hazard: str, t: float) -> float:
        x = max(0.0, (t - start) / grow)
        shape = (math.exp(2 * min(x, 1.0)) - 1) / (math.e**2 - 1)
        return normal[hazard] + _noise(t, hazard) + gain[hazard] * shape

    fire = _zone_run(ref, by, values, int(start + 1800))
    assert len(fire) == 1 and fire[0].severity is Severity.CRITICAL
    assert "smouldering" in fire[0].message
    assert 0 < (fire[0].ts - T0).total_seconds() - start <= 900


def _busy_shop(seed: int, fire_at: float | None) -> Callable[[str, float], float]:
    """A busy welding shop as seed 23's plant had it: smoke wandering 0.3-0.5 %obs/m in
    0.1 steps with welding runs of 1-5 min (+0.4-1.4) three or four times an hour, CO
    in whole mg/m3 with a forklift's +8 for a minute every ~7 min, heat in 0.1 °C; with
    ``fire_at``, a smouldering fire from then on (smoke +2.4, CO +4, heat +3 over 28
    min, slow at first), the runs and passes going on through it."""
    rng = random.Random(seed)
    runs = []  # (start, end, height) of welding runs
    t = 0.0
    while t < 8 * 3600:
        t += rng.uniform(600, 1500)
        runs.append((t, t + 60 * rng.randint(1, 5), rng.uniform(0.4, 1.4)))
    forklifts = {int(m) for m in range(0, 8 * 60) if rng.random() < 1 / 7}
    wander = [0.4 + 0.1 * math.sin(m / 9.0) * rng.uniform(0.5, 1.0) for m in range(8 * 60)]

    def values(hazard: str, t: float) -> float:
        m = int(t // 60)
        shape = 0.0
        if fire_at is not None and t >= fire_at:
            x = min(1.0, (t - fire_at) / 1680.0)
            shape = (math.exp(2 * x) - 1) / (math.e**2 - 1)
        if hazard == "smoke":
            v = wander[m] + rng.gauss(0, 0.03) + 2.4 * shape
            v += sum(h for a, b, h in runs if a <= t < b)
            return round(v, 1)
        if hazard == "co":
            return float(round(3.0 + rng.gauss(0, 0.3) + 8.0 * (m in forklifts) + 4.0 * shape))
        return round(23.2 + 0.3 * math.sin(t / 3000.0) + rng.gauss(0, 0.03) + 3.0 * shape, 1)

    return values


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_smouldering_fire_in_a_busy_welding_shop_is_found_within_15_minutes(
    seed: int,
) -> None:
    """Seed 23's miss: welding runs lifting the smoke by up to 1.4 %obs/m for minutes at a
    time, during the fire too, and CO in 1-mg/m3 steps hid a smouldering fire for 29 min.
    Judged on the smoke's floor, it is critical within 15 min; the heat sensor read only
    once a minute."""
    ref, by = _fire_zone()
    start = 3 * 3600.0
    fire = _zone_run(ref, by, _busy_shop(seed, start), int(start + 1800), every={"temperature": 60})
    assert fire and fire[0].severity is Severity.CRITICAL, "the fire was not found"
    assert "smouldering" in fire[0].message
    assert 0 < (fire[0].ts - T0).total_seconds() - start <= 900


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_same_busy_welding_shop_without_a_fire_stays_quiet(seed: int) -> None:
    """Six hours of the same shop with runs of up to 5 min and forklifts: no fire."""
    ref, by = _fire_zone()
    assert _zone_run(ref, by, _busy_shop(seed, None), 6 * 3600, every={"temperature": 60}) == []


def test_welding_smoke_and_forklift_co_alone_stay_quiet() -> None:
    """Welding runs lift smoke by ~1 %obs/m for 1-4 min, forklifts CO by ~8 mg/m3 for a
    minute, both many times an hour, over 6 h: no fire."""
    ref, by = _fire_zone()

    def values(hazard: str, t: float) -> float:
        base = {"temperature": 30.0, "smoke": 0.2, "co": 5.0}[hazard] + _noise(t, hazard)
        if hazard == "smoke" and (t % 900) < 60 * (1 + int(t // 900) % 4):
            base += 1.0  # a welding run of 1-4 min every 15 min
        if hazard == "co" and (t % 420) < 60:
            base += 8.0  # a forklift every 7 min
        return base

    assert _zone_run(ref, by, values, 6 * 3600) == []


def test_smoke_creeping_alone_is_not_a_smouldering_fire() -> None:
    """Convergence: smoke creeping up while CO and heat stay flat is not called a fire
    (it is left to the smoke sensor's own levels and the models)."""
    ref, by = _fire_zone()
    start = 3 * 3600.0

    def values(hazard: str, t: float) -> float:
        base = {"temperature": 30.0, "smoke": 0.2, "co": 5.0}[hazard] + _noise(t, hazard)
        if hazard == "smoke" and t > start:
            base += min(2.5, (t - start) / 600.0)
        return base

    assert _zone_run(ref, by, values, int(start + 1800)) == []
