"""NAB scoring: the window rules on hand-computed cases, normalisation, threshold search, loading."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from online_ml.evaluate import score_corpus
from online_ml.nab import (
    PROFILES,
    Profile,
    Series,
    evaluate,
    format_report,
    leave_one_category_out,
    load_corpus,
    null_score,
    perfect_score,
    probation_rows,
    scaled_sigmoid,
    score_series,
    sweep_thresholds,
)

STANDARD = PROFILES["standard"]
N = 1000  # rows of the synthetic series; probation is 150
WINDOW = (500, 520)  # width 20 rows
LEFT_EDGE = math.tanh(2.5)  # scaled_sigmoid(-1) = 0.98661...
T0 = np.datetime64("2024-01-01T00:00")
STEP = np.timedelta64(5, "m")


def make_series(
    windows: tuple[tuple[int, int], ...] = (WINDOW,), n: int = N, name: str = "synthetic/a.csv"
) -> Series:
    return Series(name, T0 + np.arange(n) * STEP, np.zeros(n), windows)


def detections_at(*rows: int, n: int = N) -> np.ndarray:
    scores = np.zeros(n)
    scores[list(rows)] = 1.0
    return scores


def score(*rows: int, profile: Profile = STANDARD, series: Series | None = None) -> float:
    series = series or make_series()
    return score_series(series, detections_at(*rows, n=len(series)), 0.5, profile).raw


# --- scaled sigmoid -------------------------------------------------------------------


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514303)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-0.5) == pytest.approx(2 / (1 + math.exp(-2.5)) - 1)
    assert scaled_sigmoid(0.1) == pytest.approx(2 / (1 + math.exp(0.5)) - 1)  # -0.2449
    assert scaled_sigmoid(1.0) == pytest.approx(-0.9866142981514303)
    assert scaled_sigmoid(1000.0) == -1.0  # exp(5000) would overflow


def test_probation_rows() -> None:
    assert probation_rows(1000) == 150
    assert probation_rows(4032) == 604
    assert probation_rows(5000) == 750
    assert probation_rows(22695) == 750


# --- one series, one window ------------------------------------------------------------


def test_detection_at_left_edge_earns_about_a_tp() -> None:
    result = score_series(make_series(), detections_at(500), 0.5, STANDARD)
    assert result.raw == pytest.approx(0.98661, abs=1e-5)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    assert result.detection_delays == (0,)


def test_detection_at_right_edge_earns_nothing() -> None:
    result = score_series(make_series(), detections_at(520), 0.5, STANDARD)
    assert result.raw == pytest.approx(0.0, abs=1e-12)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    assert result.detection_delays == (20,)
    assert result.detection_delay_seconds == (20 * 300.0,)


def test_detection_in_the_middle_earns_the_sigmoid() -> None:
    assert score(510) == pytest.approx(math.tanh(1.25))  # p = -0.5 -> 0.8483


def test_detection_before_any_window_costs_full_a_fp() -> None:
    result = score_series(make_series(), detections_at(300), 0.5, STANDARD)
    assert (result.tp, result.fp, result.fn) == (0, 1, 1)
    assert result.raw == pytest.approx(-0.11 - 1.0)


def test_detection_just_after_window_costs_little() -> None:
    # 2 rows past a 20-row window: p = 0.1, cost = 0.11 * sigma(0.1) = -0.02694
    result = score_series(make_series(), detections_at(500, 522), 0.5, STANDARD)
    assert (result.tp, result.fp, result.fn) == (1, 1, 0)
    assert result.raw == pytest.approx(LEFT_EDGE - 0.11 * math.tanh(0.25))
    assert -0.11 * math.tanh(0.25) == pytest.approx(-0.026941, abs=1e-6)


def test_detection_far_after_window_costs_about_a_fp() -> None:
    assert score(500, 900) == pytest.approx(LEFT_EDGE - 0.11, abs=1e-9)  # p = 19


def test_only_earliest_detection_in_window_counts() -> None:
    result = score_series(make_series(), detections_at(505, 500, 510, 520), 0.5, STANDARD)
    assert (result.tp, result.fp, result.fn) == (1, 0, 0)
    assert result.raw == pytest.approx(LEFT_EDGE)
    assert result.detection_delays == (0,)


def test_missed_window_costs_a_fn() -> None:
    assert score() == pytest.approx(-1.0)
    assert score(profile=PROFILES["reward_low_fn"]) == pytest.approx(-2.0)
    result = score_series(make_series(), np.zeros(N), 0.5, STANDARD)
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)


def test_detection_in_probation_is_ignored() -> None:
    result = score_series(make_series(), detections_at(0, 100, 149), 0.5, STANDARD)
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)
    assert result.raw == pytest.approx(-1.0)
    # row 150 is the first scored row: a false positive with no preceding window
    assert score(150) == pytest.approx(-1.11)


def test_window_inside_probation_is_ignored() -> None:
    series = make_series(windows=((10, 20), WINDOW))
    assert series.scored_windows == (WINDOW,)
    assert score(series=series) == pytest.approx(-1.0)  # only one miss
    assert score(15, series=series) == pytest.approx(-1.0)  # its detection counts for nothing
    assert null_score(series, STANDARD) == -1.0
    assert perfect_score(series, STANDARD) == pytest.approx(LEFT_EDGE)


def test_false_positive_between_windows_measured_from_preceding_window() -> None:
    series = make_series(windows=((300, 309), WINDOW))  # first window is 9 rows wide
    # row 312 is 3 rows past the first window: p = 3/9
    expected = LEFT_EDGE + LEFT_EDGE - 0.11 * math.tanh(2.5 * 3 / 9)
    assert score(300, 312, 500, series=series) == pytest.approx(expected)


def test_single_row_window() -> None:
    series = make_series(windows=((500, 500),))
    assert score(500, series=series) == pytest.approx(LEFT_EDGE)
    # one row past a one-row window: p = 1 / max(width, 1) = 1
    assert score(500, 501, series=series) == pytest.approx(LEFT_EDGE - 0.11 * LEFT_EDGE)


def test_threshold_is_inclusive_and_nan_never_detects() -> None:
    scores = np.zeros(N)
    scores[500] = 0.7
    assert score_series(make_series(), scores, 0.7, STANDARD).tp == 1
    assert score_series(make_series(), scores, 0.7000001, STANDARD).tp == 0
    scores[:] = np.nan
    result = score_series(make_series(), scores, 0.0, STANDARD)
    assert (result.tp, result.fp, result.fn) == (0, 0, 1)


def test_bad_scores_are_rejected() -> None:
    with pytest.raises(ValueError, match="expected 1000 scores"):
        score_series(make_series(), np.zeros(999), 0.5, STANDARD)
    with pytest.raises(ValueError, match="finite"):
        score_series(make_series(), np.full(N, np.inf), 0.5, STANDARD)


def test_series_validates_windows() -> None:
    with pytest.raises(ValueError, match="outside rows"):
        make_series(windows=((990, 1000),))
    with pytest.raises(ValueError, match="overlap"):
        make_series(windows=((500, 520), (510, 530)))


# --- corpus: normalisation and threshold search --------------------------------------


def small_corpus() -> list[Series]:
    return [
        make_series(windows=((300, 320), (700, 720)), name="c/one.csv"),
        make_series(windows=((500, 540),), n=2000, name="c/two.csv"),
        make_series(windows=(), n=800, name="c/quiet.csv"),
    ]


def test_perfect_detector_scores_100_and_null_scores_0() -> None:
    corpus = small_corpus()
    perfect = {s.name: detections_at(*(w[0] for w in s.windows), n=len(s)) for s in corpus}
    null = {s.name: np.zeros(len(s)) for s in corpus}
    for profile in PROFILES.values():
        best = evaluate(corpus, perfect, profile)
        assert best.score == pytest.approx(100.0)
        assert (best.tp, best.fp, best.fn) == (3, 0, 0)
        assert best.mean_delay_rows == 0.0
        assert best.perfect == pytest.approx(3 * LEFT_EDGE)
        assert best.null == pytest.approx(-3 * profile.a_fn)
        nothing = evaluate(corpus, null, profile)
        assert nothing.score == pytest.approx(0.0)
        assert nothing.threshold > 0
        assert (nothing.tp, nothing.fp, nothing.fn) == (0, 0, 3)
        assert nothing.mean_delay_rows is None
        fixed = evaluate(corpus, null, profile, thresholds=[0.5])
        assert fixed.threshold == 0.5
        assert fixed.score == pytest.approx(0.0)


def test_normalised_score_is_linear_in_raw() -> None:
    corpus = small_corpus()
    # detect the first window at its right edge (0), miss the other two
    scores = {s.name: np.zeros(len(s)) for s in corpus}
    scores["c/one.csv"][320] = 1.0
    result = evaluate(corpus, scores, STANDARD, thresholds=[0.5])
    assert result.raw == pytest.approx(-2.0)
    expected = 100 * (-2.0 - -3.0) / (3 * LEFT_EDGE + 3.0)
    assert result.score == pytest.approx(expected)


def test_threshold_search_finds_the_separating_threshold() -> None:
    corpus = small_corpus()
    rng = np.random.default_rng(1)
    scores: dict[str, np.ndarray] = {}
    for series in corpus:
        noise = rng.uniform(0.0, 0.5, len(series))
        for start, _ in series.windows:
            noise[start] = 0.9
        scores[series.name] = noise
    result = evaluate(corpus, scores, STANDARD)
    assert result.threshold == 0.9  # the highest threshold reaching the optimum
    assert result.score == pytest.approx(100.0)
    assert (result.tp, result.fp, result.fn) == (3, 0, 0)
    # any lower threshold lets noise through and scores worse
    lower = evaluate(corpus, scores, STANDARD, thresholds=[0.45])
    assert lower.fp > 0
    assert lower.score < result.score


def test_leave_one_category_out_chooses_the_threshold_without_the_held_out_category() -> None:
    """Category b's anomaly scores only 0.6; chosen on a and q alone, the threshold is 0.9
    (a's detection, above q's false spike at 0.7), which misses b's window: b scores worse
    held out than in sample. a carries over unchanged; q has no window (raw totals only)."""
    corpus = [
        make_series(windows=((300, 320),), name="a/one.csv"),
        make_series(windows=((500, 540),), n=2000, name="b/two.csv"),
        make_series(windows=(), n=800, name="q/quiet.csv"),
    ]
    scores = {s.name: np.zeros(len(s)) for s in corpus}
    scores["a/one.csv"][300] = 0.9
    scores["b/two.csv"][500] = 0.6
    scores["b/two.csv"][1900] = 0.95  # a false alarm, long after its window
    scores["q/quiet.csv"][400] = 0.7
    held = {h.category: h for h in leave_one_category_out(corpus, scores, "standard")}
    assert sorted(held) == ["a", "b", "q"]
    assert evaluate(corpus, scores, STANDARD).threshold == 0.6
    a, b, q = held["a"], held["b"], held["q"]
    assert a.threshold_out == 0.6 and a.in_sample == a.held_out == pytest.approx(100.0)
    assert b.threshold_in == 0.6 and b.threshold_out == 0.9
    assert b.in_sample is not None and b.held_out is not None
    assert b.held_out < 0.0 < b.in_sample
    assert q.in_sample is None and q.series == 1
    assert q.raw_in == q.raw_out == pytest.approx(-STANDARD.a_fp)  # its one false spike


def test_sweep_matches_direct_scoring_at_every_candidate() -> None:
    corpus = small_corpus()
    rng = np.random.default_rng(7)
    scores = {s.name: np.round(rng.random(len(s)), 2) for s in corpus}  # many ties
    for profile in PROFILES.values():
        grid, totals = sweep_thresholds(corpus, scores, profile)
        assert grid[0] == np.inf
        assert np.all(np.diff(grid) < 0)
        direct = [
            sum(score_series(s, scores[s.name], float(t), profile).raw for s in corpus)
            for t in grid
        ]
        np.testing.assert_allclose(totals, direct, rtol=1e-9, atol=1e-9)
        best = evaluate(corpus, scores, profile)
        assert best.raw == pytest.approx(max(direct))
        assert best.candidates == len(grid)


def test_evaluate_errors() -> None:
    corpus = small_corpus()
    with pytest.raises(KeyError, match=r"c/one\.csv"):
        evaluate(corpus, {}, STANDARD)
    quiet = [make_series(windows=(), name="c/quiet.csv")]
    with pytest.raises(ValueError, match="no scored window"):
        evaluate(quiet, {"c/quiet.csv": np.zeros(N)}, STANDARD)
    with pytest.raises(ValueError, match="unknown profile"):
        evaluate(corpus, {}, "nope")


def test_format_report_has_units_and_one_row_per_profile() -> None:
    corpus = small_corpus()
    scores = {s.name: detections_at(*(w[0] + 2 for w in s.windows), n=len(s)) for s in corpus}
    results = {name: evaluate(corpus, scores, name) for name in PROFILES}
    table = format_report(results).splitlines()
    assert len(table) == 2 + len(PROFILES)
    for header in ("threshold", "score (0-100)", "TP (windows)", "FP (rows)", "FN (windows)"):
        assert header in table[0]
    assert "mean delay (rows)" in table[0]
    assert "mean delay (h)" in table[0]
    assert table[2].split()[0] == "standard"
    assert table[2].split()[3:] == ["3", "0", "0", "2.0", "0.2"]  # 2 rows = 10 min


# --- loading ---------------------------------------------------------------------------


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,value", *(f"{t},{v}" for t, v in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def five_minute_rows(n: int) -> list[tuple[str, str]]:
    stamps = np.datetime64("2014-02-19T10:00") + np.arange(n) * STEP
    return [(str(t).replace("T", " ") + ":00", f"{i * 0.5}") for i, t in enumerate(stamps)]


def test_load_corpus_maps_windows_to_rows(tmp_path: Path) -> None:
    write_csv(tmp_path / "data" / "realB" / "b.csv", five_minute_rows(40))
    write_csv(tmp_path / "data" / "artA" / "a.csv", five_minute_rows(30))
    write_csv(tmp_path / "data" / "artA" / "unlabelled.csv", five_minute_rows(10))
    labels = {
        "realB/b.csv": [
            # 10:12 falls between rows 2 (10:10) and 3 (10:15); 10:30 is exactly row 6
            ["2014-02-19 10:12:00.000000", "2014-02-19 10:30:00.000000"],
            # 11:00 is row 12; 11:34 falls between rows 18 (11:30) and 19 (11:35)
            ["2014-02-19 11:00:00.000000", "2014-02-19 11:34:00.000000"],
        ],
        "artA/a.csv": [],
        "missing/none.csv": [["2014-02-19 10:00:00.000000", "2014-02-19 10:05:00.000000"]],
    }
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    corpus = load_corpus(tmp_path)
    assert [s.name for s in corpus] == ["artA/a.csv", "realB/b.csv"]
    a, b = corpus
    assert a.windows == ()
    assert b.windows == ((3, 6), (12, 18))
    assert len(b) == 40
    assert b.values[3] == 1.5
    assert b.timestamps[0] == np.datetime64("2014-02-19T10:00")
    assert b.timestamps.dtype == np.dtype("datetime64[us]")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("time,value\n2014-02-19 10:00:00,1\n", "header"),
        ("timestamp,value\n2014-02-19 10:00:00,abc\n", "line 2"),
        ("timestamp,value\nnot a date,1\n", "line 2"),
        ("timestamp,value\n2014-02-19 10:00:00,1,2\n", "2 fields"),
        ("timestamp,value\n", "no data rows"),
    ],
)
def test_load_corpus_rejects_malformed_csv(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "data" / "cat" / "bad.csv"
    path.parent.mkdir(parents=True)
    path.write_text(content, encoding="utf-8")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "combined_windows.json").write_text('{"cat/bad.csv": []}')
    with pytest.raises(ValueError, match=message) as info:
        load_corpus(tmp_path)
    assert "bad.csv" in str(info.value)


def test_load_corpus_rejects_window_without_rows(tmp_path: Path) -> None:
    write_csv(tmp_path / "data" / "cat" / "a.csv", five_minute_rows(10))
    (tmp_path / "labels").mkdir()
    labels = {"cat/a.csv": [["2015-01-01 00:00:00.000000", "2015-01-02 00:00:00.000000"]]}
    (tmp_path / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    with pytest.raises(ValueError, match=r"cat/a\.csv.*contains no row"):
        load_corpus(tmp_path)


# --- the real corpus, when present -------------------------------------------------------

# A NAB checkout (git clone https://github.com/numenta/NAB), or the 35-series subset the
# README's figures were measured on: QORGAU_NAB=path/to/nab.
NAB_ROOT = Path(os.environ.get("QORGAU_NAB", "nab"))


@pytest.mark.skipif(not (NAB_ROOT / "labels").is_dir(), reason="no NAB corpus (QORGAU_NAB)")
def test_real_corpus_null_and_perfect() -> None:
    corpus = load_corpus(NAB_ROOT)
    assert len(corpus) >= 35
    assert all(len(s) > 1000 for s in corpus)
    null = {s.name: np.zeros(len(s)) for s in corpus}
    perfect = {s.name: detections_at(*(w[0] for w in s.windows), n=len(s)) for s in corpus}
    assert evaluate(corpus, null, STANDARD).score == pytest.approx(0.0)
    best = evaluate(corpus, perfect, STANDARD)
    assert best.score == pytest.approx(100.0)
    assert best.fn == 0
    assert best.fp == 0


@pytest.mark.skipif(not (NAB_ROOT / "labels").is_dir(), reason="no NAB corpus (QORGAU_NAB)")
def test_the_default_detector_on_the_real_corpus_and_each_category_held_out() -> None:
    """The README's NAB figures, as a floor: the default detector's standard score, at
    the corpus's best threshold and at its own reporting level (0.5, nothing chosen on
    the data), and each category scored at the threshold chosen on the others."""
    corpus = load_corpus(NAB_ROOT)
    scores, _ = score_corpus(corpus, detector="default", params={})
    best = evaluate(corpus, scores, STANDARD)
    assert best.score >= 65.0
    own = sum(score_series(s, scores[s.name], 0.5, STANDARD).raw for s in corpus)
    null = sum(null_score(s, STANDARD) for s in corpus)
    perfect = sum(perfect_score(s, STANDARD) for s in corpus)
    assert 100 * (own - null) / (perfect - null) >= 64.0
    for held in leave_one_category_out(corpus, scores, "standard"):
        if held.in_sample is not None and held.held_out is not None:
            assert held.held_out >= held.in_sample - 5.0, held
        else:
            assert held.raw_out >= held.raw_in - 0.5, held  # no anomaly window: no flood
