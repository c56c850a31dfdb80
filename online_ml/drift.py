"""Slow calibration drift of a sensor's baseline (its quiet level), on River's Page-Hinkley test.

A gas sensor's zero creeps over days; a healthy sensor's quiet level does not.
`BaselineDrift` reduces the stream to one *quiet level* per bucket and watches
it for a slow, sustained change:

1. Each ``bucket_s`` (1 h) of event time gives a low quantile (``quantile``,
   the 10th percentile) of its readings; buckets with fewer than
   ``min_per_bucket`` readings are ignored.
2. The quiet level is the second lowest of those bucket values over the last
   ``span_s`` (24 h), re-evaluated every bucket. A daily cycle (noise that is
   loud by day and quiet by night, a heater, a night shift, weekends) moves the
   hourly values but not the quietest hours of a day, so a healthy sensor's
   quiet level stays flat; the second lowest, not the lowest, so that one bad
   hour (a maintenance check at zero gas) is not taken for the sensor's zero.
   The cost: a *rise* of the zero shows up to ``span_s`` late (the day-old
   lows must leave the window first); a fall shows at once. With
   ``span_s=bucket_s`` a sensor with no daily pattern is watched bucket by
   bucket, a day sooner, but a daily cycle then looks like drift.
3. The quiet levels feed `river.drift.PageHinkley` (``mode="both"``, reacting
   after ``min_instances`` of them, a day; in sensor units, ``delta`` is
   ``min_shift / 4`` and the threshold ``min_shift``, so ``min_shift`` should
   be well above the quiet level's own wobble). Its alarm only says "the mean
   has moved"; for ``history`` buckets after it, each new quiet level is judged:

   * a *ramp* (flat at the reference, then a straight line over at least
     ``min_drift_buckets`` buckets) must fit the recent quiet levels better
     (least squares) than a *step* (flat, then flat at another level) does;
   * the mean of the last ``confirm`` quiet levels must be at least
     ``min_shift`` (sensor units) away from the reference, the mean of the
     quiet levels before the ramp began, in the ramp's direction.

   * no move over two consecutive quiet levels exceeds ``max_jump`` of that shift
     (1.0, off, by default; `BaselineDrift.hourly` uses 0.45).

   All hold: a `DriftFinding`, and the reference restarts at the new level,
   so one drift gives one finding (a drift that goes on is reported again each
   time it has moved another ``min_shift``, at most once per ``min_instances``
   buckets). A step fits better and is at
   least ``min_shift`` high: a level shift, not drift (other detectors report
   steps); the reference restarts after it, silently.

State is a few hundred numbers (``history`` quiet levels, ``span_s`` bucket
values and at most 256 readings of the open bucket) and pickles with the
River detector in it. A reading costs a comparison and an append; a bucket, a
sort of its readings and, while Page-Hinkley's alarm is fresh, one pass over
the history.

>>> import random
>>> def gas(days, drift_from=None, per_day=0.0, step_at=None, step=0.0, seed=7):
...     rng = random.Random(seed)
...     for i in range(int(days * 1440)):
...         t, d = 1.7e9 + 60.0 * i, i / 1440
...         v = 0.5 + rng.gauss(0, 0.02)
...         if drift_from is not None and d > drift_from:
...             v += per_day * (d - drift_from)
...         if step_at is not None and d > step_at:
...             v += step
...         yield t, v
>>> def findings(series):
...     det = BaselineDrift(min_shift=0.15)
...     return [f for t, v in series if (f := det.update(t, v)) is not None]
>>> found = findings(gas(7, drift_from=3, per_day=0.3))
>>> len(found) >= 1, found[0].baseline_now > found[0].baseline_before
(True, True)
>>> 0.15 < found[0].rate_per_day < 0.5
True
>>> findings(gas(7))              # a stable sensor
[]
>>> findings(gas(7, step_at=3, step=2.0))   # a step is not drift
[]
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Protocol

from river import drift

__all__ = ["BaselineDrift", "DriftFinding"]

_DAY_S = 86400.0
_BUCKET_CAP = 128  # readings kept for a bucket's quantile; beyond, every other one is dropped


class _ChangeDetector(Protocol):
    """What is used of a River drift detector (its ``update`` is not annotated)."""

    def update(self, x: float) -> None: ...

    @property
    def drift_detected(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class DriftFinding:
    """A slow drift of the quiet level: from ``baseline_before`` (the reference) to
    ``baseline_now`` (mean of the last ``confirm`` quiet levels), at ``rate_per_day``
    (sensor units per day, the ramp's slope), detected at ``t`` (the reading that closed
    the bucket). ``since_t`` estimates when the readings began to move: the ramp's start,
    less the lag of the quiet-level window."""

    since_t: float
    t: float
    baseline_before: float
    baseline_now: float
    rate_per_day: float


class BaselineDrift:
    """Slow drift of one sensor's quiet level; `update` each reading in time order."""

    def __init__(
        self,
        min_shift: float,
        *,
        bucket_s: float = 3600.0,
        span_s: float = _DAY_S,
        quantile: float = 0.1,
        min_per_bucket: int = 5,
        min_instances: int = 24,
        confirm: int = 6,
        min_drift_buckets: int = 6,
        history: int = 96,
        max_jump: float = 1.0,
    ) -> None:
        if not min_shift > 0.0:
            raise ValueError("min_shift must be > 0")
        if not bucket_s > 0.0 or span_s < bucket_s:
            raise ValueError("need bucket_s > 0 and span_s >= bucket_s")
        if not 0.0 <= quantile < 1.0:
            raise ValueError("quantile must be in [0, 1)")
        if min(min_per_bucket, min_instances, confirm, min_drift_buckets) < 1:
            raise ValueError("counts must be >= 1")
        if history < max(min_instances, confirm + min_drift_buckets + 1):
            raise ValueError("history must hold min_instances and a ramp after a reference")
        self.min_shift = min_shift
        self.bucket_s = bucket_s
        self.span_s = span_s
        self.quantile = quantile
        self.min_per_bucket = min_per_bucket
        self.min_instances = min_instances
        self.confirm = confirm
        self.min_drift_buckets = min_drift_buckets
        self.history = history
        self.max_jump = max_jump
        self._span = max(1, round(span_s / bucket_s))  # buckets in the quiet-level window
        self._ph = self._new_ph()
        # The open bucket: its index, readings seen, and a thinned copy of them.
        self._bucket: int | None = None
        self._n = 0
        self._stride = 1
        self._buf = array("d")
        self._first_bucket: int | None = None
        self._lows: list[tuple[int, float]] = []  # (bucket, low quantile) over the span
        # Quiet levels since the reference (re)started, oldest first: their times and levels
        # in two flat arrays (16 bytes a level; a tuple took ~65); older ones fold into _ref_*.
        self._hist_t = array("d")
        self._hist_y = array("d")
        self._ref_sum = 0.0
        self._ref_n = 0
        self._count = 0  # quiet levels since the reference (re)started
        self._armed_at: int | None = None  # _count when Page-Hinkley last signalled
        self._baseline: float | None = None

    @classmethod
    def hourly(cls, min_shift: float) -> BaselineDrift:
        """The variant the stream runs: one quiet level per hour (its 10th percentile,
        ``span_s = bucket_s``), judged after 6 of them, a ramp of at least 4 buckets, and
        no move over two hours above 45 % of the drift (``max_jump``).

        A daily cycle moves the hourly quiet level too, but in jumps (a shift starting,
        a process switched on), which ``max_jump`` tells apart from a creep; so a drift
        is reported hours after it begins instead of a day. Measured on generated plants
        (``qorgau eval``): a zero creeping by 40-70 % of the alarm level over 12 h was
        reported 4-9 h after it began, with ``min_shift`` at 20 % of the lowest limit.
        """
        return cls(
            min_shift,
            bucket_s=3600.0,
            span_s=3600.0,
            min_instances=6,
            confirm=3,
            min_drift_buckets=4,
            max_jump=0.45,
        )

    def _new_ph(self) -> _ChangeDetector:
        # In sensor units: deviations under min_shift/4 are ignored, and the alarm needs
        # about min_shift of accumulated departure (e.g. min_shift/2 for two buckets).
        return drift.PageHinkley(
            min_instances=self.min_instances,
            delta=self.min_shift / 4,
            threshold=self.min_shift,
            mode="both",
        )

    @property
    def baseline(self) -> float | None:
        """The latest quiet level (None until a full ``span_s`` has been seen)."""
        return self._baseline

    def update(self, t: float, value: float) -> DriftFinding | None:
        """Add one reading (``t`` in Unix seconds); a finding when a drift is confirmed.

        Readings older than the open bucket and non-finite ones are ignored."""
        if not (math.isfinite(t) and math.isfinite(value)):
            return None
        b = int(t // self.bucket_s)
        cur = self._bucket
        finding = None
        if cur is None or b != cur:
            if cur is not None:
                if b < cur:
                    return None
                finding = self._close(cur, t)
            self._bucket = b
            self._n = 0
            self._stride = 1
            self._buf = array("d")
        n = self._n
        if n % self._stride == 0:
            buf = self._buf
            buf.append(value)
            if len(buf) >= _BUCKET_CAP:  # keep every other one: a uniform, bounded sample
                self._buf = buf[::2]
                self._stride *= 2
        self._n = n + 1
        return finding

    def _close(self, bucket: int, t: float) -> DriftFinding | None:
        if self._n < self.min_per_bucket:
            return None
        xs = sorted(self._buf)
        low = xs[int(self.quantile * (len(xs) - 1))]
        lows = self._lows
        lows.append((bucket, low))
        while lows[0][0] <= bucket - self._span:
            del lows[0]  # a few at most: a list is smaller than a deque
        if self._first_bucket is None:
            self._first_bucket = bucket
        span = self._span
        # A quiet level needs a whole span behind it, three quarters of it with data.
        if bucket - self._first_bucket + 1 < span or 4 * len(lows) < 3 * span:
            return None
        level = sorted(v for _, v in lows)[1] if len(lows) >= 3 else min(v for _, v in lows)
        return self._step((bucket + 1) * self.bucket_s, level, t)

    def _step(self, tb: float, level: float, t: float) -> DriftFinding | None:
        self._baseline = level
        self._ph.update(level)
        if self._ph.drift_detected:
            self._armed_at = self._count
        hist_t, hist_y = self._hist_t, self._hist_y
        if len(hist_y) >= self.history:
            self._ref_sum += hist_y[0]
            self._ref_n += 1
            self._forget(1)
        hist_t.append(tb)
        hist_y.append(level)
        self._count += 1
        if self._armed_at is None:
            return None
        if self._count - self._armed_at > self.history:
            self._armed_at = None
            return None
        if self._count < self.min_instances:
            return None
        return self._judge(t)

    def _forget(self, k: int) -> None:
        """Drop the ``k`` oldest quiet levels."""
        del self._hist_t[:k], self._hist_y[:k]

    def _judge(self, t: float) -> DriftFinding | None:
        """Ramp or step, and how far: see the module docstring."""
        hist_t = self._hist_t
        n = len(hist_t)
        t0 = hist_t[0]
        xs = [(tb - t0) / self.bucket_s for tb in hist_t]
        ys = self._hist_y.tolist()
        # Prefix sums (before a split) and suffix sums (from it on).
        py = [0.0] * (n + 1)
        pyy = [0.0] * (n + 1)
        for j in range(n):
            py[j + 1] = py[j] + ys[j]
            pyy[j + 1] = pyy[j] + ys[j] * ys[j]
        sx = [0.0] * (n + 1)
        sxx = [0.0] * (n + 1)
        sxy = [0.0] * (n + 1)
        for j in range(n - 1, -1, -1):
            x, y = xs[j], ys[j]
            sx[j] = sx[j + 1] + x
            sxx[j] = sxx[j + 1] + x * x
            sxy[j] = sxy[j + 1] + x * y
        ref_sum, ref_n = self._ref_sum, self._ref_n
        inf = math.inf
        best_ramp, ramp_k, ramp_a, ramp_b = inf, -1, 0.0, 0.0
        best_step, step_m, step_a, step_c = inf, -1, 0.0, 0.0
        for k in range(n):
            m_before = ref_n + k
            if m_before == 0:
                continue
            a = (ref_sum + py[k]) / m_before
            sse_before = pyy[k] - 2 * a * py[k] + k * a * a
            cnt = n - k
            sy = py[n] - py[k]
            syy = pyy[n] - pyy[k]
            # Step: flat at a, then flat at the mean c of the rest.
            c = sy / cnt
            sse = sse_before + syy - sy * c
            if sse < best_step:
                best_step, step_m, step_a, step_c = sse, k, a, c
            # Ramp: flat at a, then a + b * (x - x_k), the line anchored at the reference.
            if m_before < self.confirm or cnt - 1 < self.min_drift_buckets:
                continue
            xk = xs[k]
            suz = sxy[k] - a * sx[k] - xk * sy + xk * a * cnt
            suu = sxx[k] - 2 * xk * sx[k] + xk * xk * cnt
            szz = syy - 2 * a * sy + a * a * cnt
            if suu <= 0.0:
                continue
            b = suz / suu
            sse = sse_before + szz - b * suz
            if sse < best_ramp:
                best_ramp, ramp_k, ramp_a, ramp_b = sse, k, a, b
        if best_step <= best_ramp:
            if (
                step_m >= 0
                and abs(step_c - step_a) >= self.min_shift
                and n - step_m >= self.confirm
            ):
                # A level shift: not drift. The reference restarts after it.
                self._forget(step_m)
                self._ref_sum, self._ref_n = 0.0, 0
                self._count = len(self._hist_y)
                self._armed_at = None
            return None
        now = sum(ys[n - self.confirm :]) / self.confirm
        shift = now - ramp_a
        if abs(shift) < self.min_shift or shift * ramp_b <= 0.0:
            return None
        # A creep moves a little each bucket; a change of activity (a shift starting, a
        # process switched on) moves the quiet level in a jump, which the buckets' edges
        # may split in two: no two consecutive buckets may hold max_jump of the shift.
        moves = [ys[j] - ys[j - 2] for j in range(max(ramp_k, 2), n)]
        if max((abs(d) for d in moves), default=0.0) > self.max_jump * abs(shift):
            return None
        # A quiet level is a low of the last span, so it shows the readings of a while ago:
        # for a rise, of the second oldest bucket of the span; for a fall, of the previous one.
        span = self._span
        lag = (span - 2 if shift > 0 else 1) if span >= 3 else (span - 1 if shift > 0 else 0)
        finding = DriftFinding(
            since_t=hist_t[ramp_k] - lag * self.bucket_s,
            t=t,
            baseline_before=ramp_a,
            baseline_now=now,
            rate_per_day=ramp_b * _DAY_S / self.bucket_s,
        )
        # The reference restarts at the new level (its last `confirm` quiet levels).
        self._forget(max(len(hist_t) - self.confirm, 0))
        self._ref_sum, self._ref_n = 0.0, 0
        self._count = len(self._hist_y)
        self._armed_at = None
        self._ph = self._new_ph()
        return finding
