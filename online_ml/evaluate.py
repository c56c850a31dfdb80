"""``qorgau ml evaluate``: score every NAB series with a fresh detector, report NAB scores."""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from online_ml import make_detector
from online_ml.nab import (
    PROFILES,
    Series,
    evaluate,
    format_report,
    leave_one_category_out,
    load_corpus,
)
from online_ml.runner import score_series

__all__ = ["run_nab", "score_corpus"]


def _score_one(
    job: tuple[str, list[float], list[float], str, dict[str, Any]],
) -> tuple[str, np.ndarray, float]:
    name, times, values, detector, params = job
    started = time.process_time()
    scores = score_series(lambda: make_detector(detector, **params), times, values)
    return name, scores, time.process_time() - started


def score_corpus(
    corpus: list[Series], *, detector: str, params: dict[str, Any], jobs: int = 2
) -> tuple[dict[str, np.ndarray], float]:
    """(one score per row for each series, by name; CPU seconds spent) of a fresh
    ``detector`` per series, in ``jobs`` processes that each build their own."""
    work = []
    for s in corpus:
        times = [float(t) for t in np.asarray(s.timestamps, dtype="datetime64[s]").astype("int64")]
        work.append((s.name, times, [float(v) for v in s.values], detector, params))
    if jobs > 1:
        with mp.get_context("spawn").Pool(jobs) as pool:
            scored = pool.map(_score_one, work)
    else:
        scored = [_score_one(w) for w in work]
    return {name: arr for name, arr, _ in scored}, sum(c for _, _, c in scored)


def run_nab(
    root: Path,
    *,
    detector: str,
    params: dict[str, Any],
    jobs: int = 2,
    as_json: bool = False,
    loco: bool = False,
) -> int:
    """Score the corpus at ``root`` and print the three profiles' results.

    Each process builds its own detectors from ``detector`` and ``params``.
    """
    corpus = load_corpus(root)
    started = time.perf_counter()
    scores, cpu = score_corpus(corpus, detector=detector, params=params, jobs=jobs)
    wall = time.perf_counter() - started
    rows = sum(len(s.values) for s in corpus)
    results = {name: evaluate(corpus, scores, profile) for name, profile in PROFILES.items()}
    held = leave_one_category_out(corpus, scores, "standard") if loco else []
    if as_json:
        print(
            orjson.dumps(
                {
                    "detector": detector,
                    "params": params,
                    "series": len(corpus),
                    "rows": rows,
                    "model_us_per_row": round(1e6 * cpu / rows, 2),
                    "profiles": {k: _plain(v) for k, v in results.items()},
                    "leave_one_category_out": [_plain(h) for h in held],
                },
                option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY,
            ).decode()
        )
    else:
        print(f"NAB over {len(corpus)} series, {rows:,} rows; detector {detector} {params or ''}")
        print(format_report(results))
        if held:
            print(
                "leave one category out (standard profile): the threshold chosen on the"
                " other categories"
            )
            for h in held:
                if h.in_sample is None or h.held_out is None:
                    print(
                        f"  {h.category:24} {h.series:2} series, no anomaly window: raw"
                        f" {h.raw_in:.2f} in sample, {h.raw_out:.2f} held out"
                        " (0 = no false alarm)"
                    )
                else:
                    print(
                        f"  {h.category:24} {h.series:2} series: {h.in_sample:5.1f} in sample,"
                        f" {h.held_out:5.1f} held out ({h.held_out - h.in_sample:+.1f};"
                        f" threshold {h.threshold_out:.3g} instead of {h.threshold_in:.3g})"
                    )
        print(
            f"model cost: {1e6 * cpu / rows:.1f} µs CPU per row; scoring took {wall:.1f} s"
            f" on {jobs} process(es)",
            file=sys.stderr,
        )
    return 0


def _plain(result: Any) -> Any:
    if hasattr(result, "__dataclass_fields__"):
        return {k: _plain(getattr(result, k)) for k in result.__dataclass_fields__}
    if isinstance(result, list | tuple):
        return [_plain(x) for x in result]
    if isinstance(result, dict):
        return {str(k): _plain(v) for k, v in result.items()}
    if isinstance(result, np.generic):
        return result.item()
    return result
