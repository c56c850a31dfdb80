"""Numenta Anomaly Benchmark (NAB) scoring for streaming anomaly detectors.

This module owns the *evaluation* of detectors on NAB-style corpora: loading a
corpus (``data/<category>/<file>.csv`` plus ``labels/combined_windows.json``),
scoring one series at one threshold with NAB's window rules, choosing the single
best threshold for a whole corpus and profile, normalising the result to the
familiar 0 (null detector) .. 100 (perfect detector) scale and rendering a small
report. It owns no detector and no data: callers pass one anomaly score per row.

The rules, as NAB documents them (https://github.com/numenta/NAB: its README and
scoring description; this is an independent implementation of that description,
not a port of NAB's code):

* A row is a *detection* when its score is ``>= threshold``. NaN scores never
  detect (a detector may emit NaN while warming up); infinite scores are
  rejected.
* The first ``min(floor(0.15 * n), 750)`` rows (the *probation*) are not scored:
  detections there are ignored. A window that lies entirely inside the probation
  is ignored too, for both reward and penalty (it neither earns a true positive
  nor costs a miss). A window that only starts inside it is scored normally,
  with positions still measured from its labelled left edge.
* Windows are used exactly as ``combined_windows.json`` gives them (NAB.md
  describes how NAB built them: centred on each labelled anomaly, 10 % of the
  series length divided by the number of anomalies); label timestamps are mapped
  to inclusive row indices: start = first row with ``ts >= window start``, end =
  last row with ``ts <= window end``.
* Inside a window only the earliest detection counts. With ``width = end -
  start`` it sits at ``p = -(end - i) / width`` (-1 at the left edge, 0 at the
  right edge; a one-row window gives ``p = -1``) and earns
  ``a_tp * scaled_sigmoid(p)`` -- about ``0.9866 * a_tp`` at the left edge.
  Later detections in the same window earn and cost nothing.
* A detection outside every window is a false positive costing
  ``a_fp * scaled_sigmoid(p)`` (a negative number) with
  ``p = (i - end_prev) / max(width_prev, 1)`` measured from the preceding window
  (any window, including one ignored for lying in the probation); with no
  preceding window the cost is the full ``-a_fp``. Every such row counts.
* Every scored window with no detection costs ``-a_fn``.
* Normalised score: ``100 * (S - S_null) / (S_perfect - S_null)`` where
  ``S_null = -a_fn * scored windows`` and ``S_perfect`` gives every scored window
  ``a_tp * scaled_sigmoid(-1)``.

The threshold search is exact: :func:`sweep_thresholds` turns every scored row
into an event ``(score, change of the corpus total when this row starts to
detect)`` and one sort plus a cumulative sum gives the corpus total at every
distinct score value at once.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROFILES",
    "CorpusResult",
    "Profile",
    "Series",
    "SeriesResult",
    "evaluate",
    "evaluate_profiles",
    "format_report",
    "leave_one_category_out",
    "load_corpus",
    "null_score",
    "perfect_score",
    "probation_rows",
    "scaled_sigmoid",
    "score_series",
    "sweep_thresholds",
    "windows_to_rows",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
TimeArray = npt.NDArray[np.datetime64]
Window = tuple[int, int]

PROBATION_FRACTION: Final = 0.15
PROBATION_MAX_ROWS: Final = 750
LABELS_FILE: Final = Path("labels") / "combined_windows.json"


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of one NAB application profile.

    Parameters
    ----------
    name
        Profile name, e.g. ``"standard"``.
    a_tp
        Weight of a detected window (reward).
    a_fp
        Weight of a false-positive row (cost).
    a_fn
        Weight of a missed window (cost).
    """

    name: str
    a_tp: float
    a_fp: float
    a_fn: float

    def __post_init__(self) -> None:
        for field_name in ("a_tp", "a_fp", "a_fn"):
            weight = getattr(self, field_name)
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"profile {self.name!r}: {field_name} must be finite and >= 0")


PROFILES: Final[Mapping[str, Profile]] = MappingProxyType(
    {
        "standard": Profile("standard", 1.0, 0.11, 1.0),
        "reward_low_fp": Profile("reward_low_fp", 1.0, 0.22, 1.0),
        "reward_low_fn": Profile("reward_low_fn", 1.0, 0.11, 2.0),
    }
)


def probation_rows(n: int) -> int:
    """Rows at the start of an ``n``-row series that are not scored.

    Examples
    --------
    >>> probation_rows(1000), probation_rows(4032), probation_rows(22695)
    (150, 604, 750)
    """
    return min(math.floor(PROBATION_FRACTION * n), PROBATION_MAX_ROWS)


def scaled_sigmoid(p: float) -> float:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 p)) - 1``.

    Computed as the identical ``-tanh(2.5 p)``, which cannot overflow for any
    ``p``. It is ~+0.9866 at ``p = -1`` (left edge of a window), 0 at ``p = 0``
    and tends to -1 for large positive ``p`` (far past a window).

    Examples
    --------
    >>> round(scaled_sigmoid(-1.0), 4), scaled_sigmoid(0.0), round(scaled_sigmoid(1.0), 4)
    (0.9866, 0.0, -0.9866)
    >>> scaled_sigmoid(1e9)
    -1.0
    """
    return 0.0 - math.tanh(2.5 * p)  # 0.0 - x turns -0.0 into 0.0


def _sigmoid_array(p: FloatArray) -> FloatArray:
    result: FloatArray = -np.tanh(2.5 * p)
    return result


def _window_position(i: int | IntArray, start: int, end: int) -> FloatArray:
    """Relative position of row(s) ``i`` in the window: -1 at ``start``, 0 at ``end``."""
    width = end - start
    rows = np.asarray(i, dtype=np.float64)
    if width == 0:
        return np.full_like(rows, -1.0)
    result: FloatArray = -(end - rows) / width
    return result


@dataclass(frozen=True, eq=False)
class Series:
    """One labelled series of a corpus.

    Parameters
    ----------
    name
        ``"<category>/<file>.csv"``, the key of the labels file.
    timestamps
        One timestamp per row (a ``datetime64`` array; a list of naive
        ``datetime`` is converted). NAB files are not always monotonic (daylight
        saving artefacts), so no order is required.
    values
        One value per row (converted to ``float64``).
    windows
        Anomaly windows as inclusive row ranges ``(start, end)``, sorted and not
        overlapping (a list is converted to a tuple).
    """

    name: str
    timestamps: TimeArray
    values: FloatArray
    windows: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        timestamps = np.asarray(self.timestamps, dtype="datetime64[us]")
        values = np.asarray(self.values, dtype=np.float64)
        windows = tuple((int(a), int(b)) for a, b in self.windows)
        if timestamps.ndim != 1 or values.shape != timestamps.shape:
            raise ValueError(
                f"{self.name}: timestamps and values must be 1-d of one length, "
                f"got {timestamps.shape} and {values.shape}"
            )
        n = len(values)
        previous_end = -1
        for start, end in windows:
            if not 0 <= start <= end < n:
                raise ValueError(f"{self.name}: window {(start, end)} outside rows 0..{n - 1}")
            if start <= previous_end:
                raise ValueError(f"{self.name}: windows must be sorted and not overlap")
            previous_end = end
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "windows", windows)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def probation(self) -> int:
        """Number of leading rows that are not scored."""
        return probation_rows(len(self))

    @property
    def scored_windows(self) -> tuple[Window, ...]:
        """The windows that are scored: those not entirely inside the probation."""
        probation = self.probation
        return tuple(w for w in self.windows if w[1] >= probation)


@dataclass(frozen=True, slots=True)
class SeriesResult:
    """Score of one series at one threshold.

    Attributes
    ----------
    name
        Series name.
    raw
        Unnormalised NAB score (sum of rewards and costs).
    tp, fp, fn
        Detected windows, false-positive rows, missed windows.
    detection_delays
        For each detected window (in order), rows from its start to the first
        detection.
    detection_delay_seconds
        The same delays in seconds, from the timestamps.
    """

    name: str
    raw: float
    tp: int
    fp: int
    fn: int
    detection_delays: tuple[int, ...]
    detection_delay_seconds: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class CorpusResult:
    """Score of a whole corpus for one profile at its best threshold.

    Attributes
    ----------
    profile
        The profile scored.
    threshold
        The chosen threshold (``inf`` means "never fire" was best).
    score
        Normalised score: 0 for the null detector, 100 for the perfect one.
    raw, null, perfect
        Raw corpus totals of the detector, the null and the perfect detector.
    tp, fp, fn
        Detected windows, false-positive rows and missed windows, in total.
    mean_delay_rows, median_delay_rows
        Detection delay over all detected windows, in rows (``None`` if none).
    mean_delay_seconds, median_delay_seconds
        The same in seconds.
    candidates
        Number of thresholds compared.
    series
        Per-series results at the chosen threshold, in corpus order.
    """

    profile: Profile
    threshold: float
    score: float
    raw: float
    null: float
    perfect: float
    tp: int
    fp: int
    fn: int
    mean_delay_rows: float | None
    median_delay_rows: float | None
    mean_delay_seconds: float | None
    median_delay_seconds: float | None
    candidates: int
    series: tuple[SeriesResult, ...]


# ---------------------------------------------------------------------------
# Loading


def _to_datetime64(value: datetime | str) -> np.datetime64:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return np.datetime64(moment, "us")


def windows_to_rows(
    timestamps: TimeArray | Sequence[datetime],
    label_windows: Sequence[tuple[datetime | str, datetime | str]],
    *,
    name: str = "series",
) -> tuple[Window, ...]:
    """Map labelled time windows onto inclusive row ranges.

    Parameters
    ----------
    timestamps
        The series' timestamps (need not be monotonic).
    label_windows
        ``(start, end)`` pairs as ``datetime`` or ISO strings such as
        ``"2014-02-19 10:50:00.000000"``.
    name
        Used in error messages.

    Returns
    -------
    tuple of (int, int)
        ``(first row with ts >= start, last row with ts <= end)`` per window.

    Raises
    ------
    ValueError
        If a window is reversed or contains no row.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01T00:00") + np.arange(10) * np.timedelta64(1, "h")
    >>> windows_to_rows(ts, [("2024-01-01 02:30:00", "2024-01-01 05:00:00.000000")])
    ((3, 5),)
    """
    ts = np.asarray(timestamps, dtype="datetime64[us]")
    rows: list[Window] = []
    for raw_start, raw_end in label_windows:
        start, end = _to_datetime64(raw_start), _to_datetime64(raw_end)
        if end < start:
            raise ValueError(f"{name}: window [{raw_start}, {raw_end}] ends before it starts")
        after = np.flatnonzero(ts >= start)
        before = np.flatnonzero(ts <= end)
        if len(after) == 0 or len(before) == 0 or after[0] > before[-1]:
            raise ValueError(f"{name}: window [{raw_start}, {raw_end}] contains no row")
        rows.append((int(after[0]), int(before[-1])))
    return tuple(rows)


def _read_csv(path: Path) -> tuple[TimeArray, FloatArray]:
    timestamps: list[datetime] = []
    values: list[float] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["timestamp", "value"]:
            raise ValueError(f"{path}: expected the header 'timestamp,value', got {header!r}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {line}: expected 2 fields, got {len(row)}")
            try:
                timestamps.append(datetime.fromisoformat(row[0].strip()))
                values.append(float(row[1]))
            except ValueError as exc:
                raise ValueError(f"{path}: line {line}: {exc}") from None
    if not values:
        raise ValueError(f"{path}: no data rows")
    return np.array(timestamps, dtype="datetime64[us]"), np.array(values, dtype=np.float64)


def load_corpus(root: Path) -> list[Series]:
    """Load a NAB-style corpus.

    Parameters
    ----------
    root
        Directory holding ``data/<category>/<file>.csv`` and
        ``labels/combined_windows.json``.

    Returns
    -------
    list of Series
        Every CSV that has an entry in the labels file, sorted by name. CSVs
        without an entry are skipped, and so are labels without a CSV.

    Raises
    ------
    ValueError
        If the labels file or a CSV is malformed (the message names the file),
        or a window contains no row.
    """
    labels_path = root / LABELS_FILE
    try:
        labels = json.loads(labels_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{labels_path}: not valid JSON: {exc}") from None
    if not isinstance(labels, dict):
        raise ValueError(f"{labels_path}: expected an object mapping file names to windows")
    corpus: list[Series] = []
    for path in sorted((root / "data").glob("*/*.csv")):
        name = f"{path.parent.name}/{path.name}"
        if name not in labels:
            continue
        entry = labels[name]
        if not isinstance(entry, list) or not all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(t, str) for t in w)
            for w in entry
        ):
            raise ValueError(f"{labels_path}: {name}: expected a list of [start, end] strings")
        timestamps, values = _read_csv(path)
        try:
            windows = windows_to_rows(timestamps, [(w[0], w[1]) for w in entry], name=name)
        except ValueError as exc:
            raise ValueError(f"{labels_path}: {exc}") from None
        corpus.append(Series(name, timestamps, values, windows))
    corpus.sort(key=lambda s: s.name)
    return corpus


# ---------------------------------------------------------------------------
# Scoring one series


def _as_scores(series: Series, scores: npt.ArrayLike) -> FloatArray:
    array = np.asarray(scores, dtype=np.float64)
    if array.shape != (len(series),):
        raise ValueError(f"{series.name}: expected {len(series)} scores, got shape {array.shape}")
    if np.isinf(array).any():
        raise ValueError(f"{series.name}: scores must be finite (NaN means 'no score')")
    return array


def _false_positive_costs(series: Series, rows: IntArray, profile: Profile) -> FloatArray:
    """Cost (<= 0) of a false positive at each of ``rows`` (all outside windows)."""
    if not series.windows:
        return np.full(len(rows), -profile.a_fp)
    starts = np.array([w[0] for w in series.windows], dtype=np.intp)
    ends = np.array([w[1] for w in series.windows], dtype=np.intp)
    previous = np.searchsorted(starts, rows, side="right") - 1
    has_previous = previous >= 0
    safe = np.maximum(previous, 0)
    widths = np.maximum(ends[safe] - starts[safe], 1)
    positions = (rows - ends[safe]) / widths
    unit = np.where(has_previous, _sigmoid_array(positions.astype(np.float64)), -1.0)
    costs: FloatArray = profile.a_fp * unit
    return costs


def _outside_windows(series: Series, rows: IntArray) -> npt.NDArray[np.bool_]:
    """Mask of ``rows`` (sorted or not) that lie in no window."""
    if not series.windows:
        return np.ones(len(rows), dtype=np.bool_)
    starts = np.array([w[0] for w in series.windows], dtype=np.intp)
    ends = np.array([w[1] for w in series.windows], dtype=np.intp)
    index = np.searchsorted(starts, rows, side="right") - 1
    inside = (index >= 0) & (rows <= ends[np.maximum(index, 0)])
    return ~inside


def score_series(
    series: Series, scores: npt.ArrayLike, threshold: float, profile: Profile
) -> SeriesResult:
    """Score one series at one threshold.

    Parameters
    ----------
    series
        The labelled series.
    scores
        One anomaly score per row; a row detects when ``score >= threshold``.
    threshold
        Detection threshold.
    profile
        Weights to apply.

    Returns
    -------
    SeriesResult
        Raw score, counts and detection delays.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01") + np.arange(1000) * np.timedelta64(5, "m")
    >>> series = Series("demo/s.csv", ts, np.zeros(1000), ((500, 520),))
    >>> scores = np.zeros(1000)
    >>> scores[[100, 500, 510]] = 1.0  # in probation, left edge, later in window
    >>> r = score_series(series, scores, 0.5, PROFILES["standard"])
    >>> r.tp, r.fp, r.fn, round(r.raw, 4), r.detection_delays
    (1, 0, 0, 0.9866, (0,))
    """
    values = _as_scores(series, scores)
    probation = series.probation
    detections = np.flatnonzero(values >= threshold)
    detections = detections[detections >= probation]
    raw = 0.0
    tp = fn = 0
    delays: list[int] = []
    delay_seconds: list[float] = []
    for start, end in series.scored_windows:
        k = int(np.searchsorted(detections, start, side="left"))
        if k < len(detections) and detections[k] <= end:
            row = int(detections[k])
            tp += 1
            raw += profile.a_tp * scaled_sigmoid(float(_window_position(row, start, end)))
            delays.append(row - start)
            elapsed = series.timestamps[row] - series.timestamps[start]
            delay_seconds.append(float(elapsed / np.timedelta64(1, "s")))
        else:
            fn += 1
            raw -= profile.a_fn
    false_positives = detections[_outside_windows(series, detections)]
    raw += float(_false_positive_costs(series, false_positives, profile).sum())
    return SeriesResult(
        name=series.name,
        raw=raw,
        tp=tp,
        fp=len(false_positives),
        fn=fn,
        detection_delays=tuple(delays),
        detection_delay_seconds=tuple(delay_seconds),
    )


def null_score(series: Series, profile: Profile) -> float:
    """Raw score of the detector that never fires: ``-a_fn`` per scored window."""
    return -profile.a_fn * len(series.scored_windows)


def perfect_score(series: Series, profile: Profile) -> float:
    """Raw score of detecting every scored window at its left edge.

    Examples
    --------
    >>> ts = np.datetime64("2024-01-01") + np.arange(100) * np.timedelta64(1, "m")
    >>> series = Series("demo/s.csv", ts, np.zeros(100), ((5, 9), (50, 59)))
    >>> len(series.scored_windows), round(perfect_score(series, PROFILES["standard"]), 4)
    (1, 0.9866)
    """
    return profile.a_tp * scaled_sigmoid(-1.0) * len(series.scored_windows)


# ---------------------------------------------------------------------------
# Corpus: threshold search and normalisation


def _threshold_events(
    series: Series, values: FloatArray, profile: Profile
) -> tuple[FloatArray, FloatArray, float]:
    """Events ``(score, delta)`` and base total of one series for the threshold sweep.

    The series total at threshold ``t`` is ``base + sum(delta for score >= t)``:
    each false-positive row adds its cost; inside a window, rows taken in
    decreasing score order add the change of the window's value each time the
    earliest detection moves earlier (from ``-a_fn`` to the reward).
    """
    probation = series.probation
    candidates = np.arange(probation, len(series), dtype=np.intp)
    candidates = candidates[~np.isnan(values[probation:])]
    outside = candidates[_outside_windows(series, candidates)]
    event_scores = [values[outside]]
    event_deltas = [_false_positive_costs(series, outside, profile)]
    base = 0.0
    for start, end in series.scored_windows:
        base -= profile.a_fn
        rows = np.arange(max(start, probation), end + 1, dtype=np.intp)
        rows = rows[~np.isnan(values[rows])]
        if len(rows) == 0:
            continue
        window_scores = values[rows]
        order = np.argsort(-window_scores, kind="stable")
        earliest = np.minimum.accumulate(rows[order])
        value = profile.a_tp * _sigmoid_array(_window_position(earliest, start, end))
        event_scores.append(window_scores[order])
        event_deltas.append(np.diff(value, prepend=-profile.a_fn))
    return np.concatenate(event_scores), np.concatenate(event_deltas), base


def _profile(profile: Profile | str) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown profile {profile!r}; known: {sorted(PROFILES)}") from None


def _corpus_scores(
    corpus: Sequence[Series], scores: Mapping[str, npt.ArrayLike]
) -> list[FloatArray]:
    arrays: list[FloatArray] = []
    for series in corpus:
        if series.name not in scores:
            raise KeyError(f"no scores for series {series.name!r}")
        arrays.append(_as_scores(series, scores[series.name]))
    return arrays


def sweep_thresholds(
    corpus: Sequence[Series],
    scores: Mapping[str, npt.ArrayLike],
    profile: Profile | str,
    thresholds: Sequence[float] | FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Raw corpus total at many thresholds at once.

    Parameters
    ----------
    corpus
        The series.
    scores
        Scores per series name.
    profile
        Profile (or its name).
    thresholds
        Thresholds to evaluate; by default ``inf`` ("never fire") followed by
        every distinct score value in the corpus, which covers every possible
        outcome.

    Returns
    -------
    thresholds, totals
        Thresholds in decreasing order and the raw corpus total at each.
    """
    prof = _profile(profile)
    parts = [
        _threshold_events(series, values, prof)
        for series, values in zip(corpus, _corpus_scores(corpus, scores), strict=True)
    ]
    base = float(sum(part[2] for part in parts))
    if parts:
        event_scores = np.concatenate([part[0] for part in parts])
        event_deltas = np.concatenate([part[1] for part in parts])
    else:
        event_scores = np.zeros(0)
        event_deltas = np.zeros(0)
    order = np.argsort(-event_scores, kind="stable")
    descending = event_scores[order]
    running = np.concatenate(([0.0], np.cumsum(event_deltas[order])))
    if thresholds is None:
        grid: FloatArray = np.concatenate(([np.inf], np.unique(event_scores)[::-1]))
    else:
        grid = np.unique(np.asarray(thresholds, dtype=np.float64))[::-1]
        if len(grid) == 0 or np.isnan(grid).any():
            raise ValueError("thresholds must be a non-empty sequence of numbers")
    detecting = np.searchsorted(-descending, -grid, side="right")
    totals: FloatArray = base + running[detecting]
    return grid, totals


def _mean_median(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(np.median(array))


def evaluate(
    corpus: Sequence[Series],
    scores: Mapping[str, npt.ArrayLike],
    profile: Profile | str,
    thresholds: Sequence[float] | FloatArray | None = None,
) -> CorpusResult:
    """Score a detector on a corpus at the single best threshold.

    Parameters
    ----------
    corpus
        The series (e.g. from :func:`load_corpus`).
    scores
        One score array per series name.
    profile
        Profile (or its name, a key of :data:`PROFILES`).
    thresholds
        Candidate thresholds; by default every distinct score (plus "never
        fire"), i.e. the exact optimum. Pass one value to score at a fixed
        threshold. Ties go to the highest threshold.

    Returns
    -------
    CorpusResult
        The chosen threshold, normalised and raw scores, counts and delays.

    Raises
    ------
    ValueError
        If the corpus has no scored window (the normalised score is undefined)
        or scores are malformed.
    KeyError
        If a series has no scores.
    """
    prof = _profile(profile)
    null = sum(null_score(series, prof) for series in corpus)
    perfect = sum(perfect_score(series, prof) for series in corpus)
    if perfect == null:
        raise ValueError("the corpus has no scored window: the normalised score is undefined")
    grid, totals = sweep_thresholds(corpus, scores, prof, thresholds)
    best = int(np.argmax(totals))
    threshold = float(grid[best])
    arrays = _corpus_scores(corpus, scores)
    results = tuple(
        score_series(series, values, threshold, prof)
        for series, values in zip(corpus, arrays, strict=True)
    )
    raw = sum(r.raw for r in results)
    mean_rows, median_rows = _mean_median([d for r in results for d in r.detection_delays])
    mean_s, median_s = _mean_median([d for r in results for d in r.detection_delay_seconds])
    return CorpusResult(
        profile=prof,
        threshold=threshold,
        score=100.0 * (raw - null) / (perfect - null),
        raw=raw,
        null=null,
        perfect=perfect,
        tp=sum(r.tp for r in results),
        fp=sum(r.fp for r in results),
        fn=sum(r.fn for r in results),
        mean_delay_rows=mean_rows,
        median_delay_rows=median_rows,
        mean_delay_seconds=mean_s,
        median_delay_seconds=median_s,
        candidates=len(grid),
        series=results,
    )


def evaluate_profiles(
    corpus: Sequence[Series],
    scores: Mapping[str, npt.ArrayLike],
    profiles: Mapping[str, Profile] = PROFILES,
) -> dict[str, CorpusResult]:
    """:func:`evaluate` for every profile (each with its own best threshold)."""
    return {name: evaluate(corpus, scores, profile) for name, profile in profiles.items()}


@dataclass(frozen=True, slots=True)
class HeldOut:
    """One category's score at the threshold chosen on the whole corpus (in sample) and
    at the one chosen on the other categories alone (held out)."""

    category: str
    series: int
    in_sample: float | None  # None: no anomaly window, the normalised score is undefined
    held_out: float | None
    raw_in: float  # NAB's raw totals (a category with no window: minus its false alarms)
    raw_out: float
    threshold_in: float
    threshold_out: float


def category(name: str) -> str:
    """A series' category: its folder (``realKnownCause/nyc_taxi.csv`` -> realKnownCause)."""
    return name.split("/", 1)[0]


def leave_one_category_out(
    corpus: Sequence[Series], scores: Mapping[str, npt.ArrayLike], profile: Profile | str
) -> list[HeldOut]:
    """Does the configuration carry to data it was not chosen on? For each category:
    its normalised score when the threshold is chosen on all categories, and when it is
    chosen on the other categories only. Categories without a scored window (nothing to
    detect: the normalised score is undefined) report their raw totals only."""
    prof = _profile(profile)
    overall = evaluate(corpus, scores, prof).threshold
    out = []
    for cat in sorted({category(s.name) for s in corpus}):
        mine = [s for s in corpus if category(s.name) == cat]
        others = [s for s in corpus if category(s.name) != cat]
        if not others:
            continue
        chosen = evaluate(others, scores, prof).threshold
        if any(s.scored_windows for s in mine):
            a = evaluate(mine, scores, prof, thresholds=[overall])
            b = evaluate(mine, scores, prof, thresholds=[chosen])
            out.append(HeldOut(cat, len(mine), a.score, b.score, a.raw, b.raw, overall, chosen))
        else:
            arrays = _corpus_scores(mine, scores)
            raw_in, raw_out = (
                sum(score_series(s, v, t, prof).raw for s, v in zip(mine, arrays, strict=True))
                for t in (overall, chosen)
            )
            out.append(HeldOut(cat, len(mine), None, None, raw_in, raw_out, overall, chosen))
    return out


def format_report(results: Mapping[str, CorpusResult]) -> str:
    """Render corpus results as a plain-text table, one row per profile.

    Parameters
    ----------
    results
        Results keyed by profile name (e.g. from :func:`evaluate_profiles`).

    Returns
    -------
    str
        The table, without a trailing newline.
    """
    header = (
        "profile",
        "threshold",
        "score (0-100)",
        "TP (windows)",
        "FP (rows)",
        "FN (windows)",
        "mean delay (rows)",
        "mean delay (h)",
    )
    rows = [header]
    for name, result in results.items():
        rows.append(
            (
                name,
                f"{result.threshold:.6g}",
                f"{result.score:.1f}",
                str(result.tp),
                str(result.fp),
                str(result.fn),
                "-" if result.mean_delay_rows is None else f"{result.mean_delay_rows:.1f}",
                "-"
                if result.mean_delay_seconds is None
                else f"{result.mean_delay_seconds / 3600:.1f}",
            )
        )
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(width) if c == 0 else cell.rjust(width)
            for c, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
