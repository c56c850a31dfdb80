"""ZoneFireRisk: a quiet zone stays low through a day, agreeing fire signals score high."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from online_ml.fire_risk import ZoneFireRisk

T0 = 1772323200.0


def quiet(zone: ZoneFireRisk, seconds: float, start: float = T0, seed: int = 1) -> list[float]:
    """A quiet zone every 10 s: a ±5 °C daily temperature cycle, clean air, CO 2–4 mg/m3."""
    rng = random.Random(seed)
    scores = []
    for i in range(int(seconds / 10)):
        t = start + 10.0 * i
        phase = 2 * math.pi * (t - T0) / 86400.0
        temp = 20.0 + 5.0 * math.sin(phase) + rng.gauss(0, 0.1)
        co = 3.0 + math.sin(3 * phase) + rng.gauss(0, 0.3)
        zone.update("T1", "temperature", t, temp)
        zone.update("S1", "smoke", t, max(0.0, rng.gauss(0.05, 0.05)))
        scores.append(zone.update("C1", "co", t, co))
    return scores


def fire(
    zone: ZoneFireRisk,
    start: float,
    *,
    heat: float = 0.0,
    smoke: float = 0.0,
    co: float = 0.0,
    seconds: float = 180.0,
) -> float:
    """``heat`` °C/min on T1, smoke at ``smoke``, CO ``co`` above its quiet 3 mg/m3."""
    score = 0.0
    for k in range(1, int(seconds / 10) + 1):
        t = start + 10.0 * k
        zone.update("T1", "temperature", t, 20.0 + heat * k / 6)
        zone.update("S1", "smoke", t, smoke)
        score = zone.update("C1", "co", t, 3.0 + co)
    return score


def test_a_quiet_day_stays_below_0_2() -> None:
    zone = ZoneFireRisk()
    scores = quiet(zone, 86400.0)
    assert max(scores) < 0.2
    why = zone.explain()
    assert abs(why["heat_rate_c_per_min"]) < 0.2
    assert why["co_rise_mg_m3"] < 2.0


def test_heat_alone_at_its_mid_is_about_one_half() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    score = fire(zone, T0 + 3600.0, heat=3.0)
    why = zone.explain()
    assert why["heat_rate_c_per_min"] == pytest.approx(3.0, abs=0.05)
    assert why["p_heat"] == pytest.approx(0.5, abs=0.01)
    assert score == pytest.approx(0.5, abs=0.05)


def test_heat_smoke_and_co_together_score_above_0_9() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    assert fire(zone, T0 + 3600.0, heat=3.5, smoke=2.0, co=12.0) > 0.9


def test_agreeing_signals_at_their_mids_combine_by_noisy_or() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    score = fire(zone, T0 + 3600.0, heat=3.0, smoke=1.5, co=10.0)
    assert score == pytest.approx(1 - 0.5**3, abs=0.02)


def test_the_doctest_case_heat_and_co() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    assert fire(zone, T0 + 3600.0, heat=4.0, co=15.0) > 0.8


def test_each_signal_at_normal_levels_is_below_0_05() -> None:
    zone = ZoneFireRisk()
    for i in range(30):
        t = T0 + 10.0 * i
        zone.update("T1", "temperature", t, 20.0 + 0.2 * i / 6)  # +0.2 °C/min
        zone.update("S1", "smoke", t, 0.0)
        zone.update("C1", "co", t, 3.0 if i == 0 else 5.0)  # 2 mg/m3 above normal
    why = zone.explain()
    assert why["heat_rate_c_per_min"] == pytest.approx(0.2)
    assert why["co_rise_mg_m3"] == pytest.approx(2.0, abs=0.2)  # learnt a little: < mid / 2
    assert max(why["p_heat"], why["p_smoke"], why["p_co"]) < 0.05


def test_the_strongest_sensor_of_a_kind_counts() -> None:
    zone = ZoneFireRisk()
    for i in range(19):
        t = T0 + 10.0 * i
        zone.update("T1", "temperature", t, 20.0)
        zone.update("T2", "temperature", t, 20.0 + 5.0 * i / 6)
    assert zone.explain()["heat_rate_c_per_min"] == pytest.approx(5.0)


def test_a_stale_sensor_stops_counting() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 600.0)
    t = T0 + 600.0
    assert zone.update("S2", "smoke", t, 4.0) > 0.9  # a smoke reading well above its mid
    for k in range(1, 25):  # S2 falls silent; the others go on
        t = T0 + 600.0 + 10.0 * k
        zone.update("T1", "temperature", t, 20.0)
        score = zone.update("C1", "co", t, 3.0)
    assert t - (T0 + 600.0) > zone.trend_s
    assert score < 0.2
    assert zone.explain()["smoke_obs_per_m"] == 0.0


def test_co_rise_is_never_learnt_but_a_small_one_is() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    for k in range(1, 3 * 360):  # 3 h (3 time constants) at +15 mg/m3
        t = T0 + 3600.0 + 10.0 * k
        zone.update("T1", "temperature", t, 20.0)
        zone.update("C1", "co", t, 18.0)
    assert zone.explain()["co_rise_mg_m3"] == pytest.approx(15.0, abs=1.0)

    zone = ZoneFireRisk()
    quiet(zone, 3600.0)
    for k in range(1, 3 * 360):  # 3 h at +3 mg/m3: a new normal
        t = T0 + 3600.0 + 10.0 * k
        zone.update("C1", "co", t, 6.0)
    assert zone.explain()["co_rise_mg_m3"] < 0.5


def test_unknown_hazard_raises() -> None:
    with pytest.raises(ValueError, match="hazard"):
        ZoneFireRisk().update("X1", "noise", T0, 80.0)


def test_bad_parameters_raise() -> None:
    with pytest.raises(ValueError):
        ZoneFireRisk(trend_s=0.0)


def test_old_and_non_finite_readings_are_ignored() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 600.0)
    before = zone.explain()
    zone.update("S1", "smoke", T0, 9.0)  # older than S1's last reading
    zone.update("S1", "smoke", T0 + 600.0, math.nan)
    assert zone.explain() == before


def test_pickle_round_trip_behaves_identically() -> None:
    zone = ZoneFireRisk()
    quiet(zone, 1800.0)
    copy = pickle.loads(pickle.dumps(zone))
    assert copy.explain() == zone.explain()
    a = [*quiet(zone, 600.0, start=T0 + 1800.0, seed=2), fire(zone, T0 + 2400.0, heat=3, co=8)]
    b = [*quiet(copy, 600.0, start=T0 + 1800.0, seed=2), fire(copy, T0 + 2400.0, heat=3, co=8)]
    assert a == b
    assert copy.explain() == zone.explain()


def test_memory_is_bounded() -> None:
    zone = ZoneFireRisk()
    for i in range(20_000):  # a 10 Hz temperature sensor
        zone.update("T1", "temperature", T0 + 0.1 * i, 20.0)
    assert len(pickle.dumps(zone)) < 20_000
