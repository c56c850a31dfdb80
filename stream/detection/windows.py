"""Trailing time-window averages in event time: STEL, shift TWA, noise LEX, vibration A(8).

Each reading's value stands for the time since the sensor's previous reading
("backward hold"), so the reading that crosses a limit counts at once. A gap
longer than ``max_hold_s`` is not filled: the unknown time counts as zero
exposure, and the average is always taken over the full window (an 8-h TWA
is the dose so far divided by 8 h, so a shift start never looks like a full
shift at its first value).

>>> w = WindowAverage(window_s=900, averaging="arithmetic", max_hold_s=60)
>>> for t in range(0, 901, 60):
...     w.add(float(t), 20.0)
>>> round(w.average(900.0), 3)
20.0
>>> w.add(960.0, 80.0)        # one minute at 80 within the last 15
>>> round(w.average(960.0), 3)
24.0
"""

from __future__ import annotations

import math
from array import array

__all__ = ["WindowAverage", "energy_k", "noise_dose_percent"]


def energy_k(exchange_rate_db: float) -> float:
    """The level multiplier for an exchange rate: doubling the time = +q dB.

    >>> round(energy_k(3.0), 3), round(energy_k(5.0), 3)
    (9.966, 16.61)
    """
    return exchange_rate_db / math.log10(2.0)


def noise_dose_percent(
    lex_db: float, criterion_db: float = 80.0, exchange_rate_db: float = 3.0
) -> float:
    """Daily noise dose in percent of the allowed one: 100 % at the criterion level.

    Each ``exchange_rate_db`` above the criterion doubles the dose. Kazakhstan's
    criterion is 80 dBA over 8 h.

    >>> round(noise_dose_percent(87.0), 1)            # 87 dBA LEX,8h, 3 dB rule, 80 dBA
    504.0
    >>> round(noise_dose_percent(85.0, 85.0, 5.0), 1)
    100.0
    """
    return 100.0 * math.pow(2.0, (lex_db - criterion_db) / exchange_rate_db)


class WindowAverage:
    """Running integral over a trailing window, kept in fixed time buckets.

    About 96 buckets per window (10 s for a 15-min window, 300 s for 8 h),
    aligned to the Unix epoch, so a sensor's state stays small enough to
    checkpoint and the cost per reading is O(1) amortised. Inside the oldest,
    partly expired bucket exposure is taken as uniform: the error is at most
    one bucket's share of the window (about 1 %).
    """

    __slots__ = (
        "_head",
        "_idx",
        "_k",
        "_last_t",
        "_sum",
        "_val",
        "averaging",
        "bucket_s",
        "max_hold_s",
        "window_s",
    )

    def __init__(
        self,
        window_s: float,
        averaging: str = "arithmetic",
        *,
        max_hold_s: float = 60.0,
        exchange_rate_db: float = 3.0,
    ) -> None:
        self.window_s = window_s
        self.averaging = averaging
        self.max_hold_s = max_hold_s
        self.bucket_s = float(max(10, math.ceil(window_s / 96)))
        self._k = energy_k(exchange_rate_db)
        # The buckets, oldest first from _head: their index and integral, in two flat
        # arrays (16 bytes a bucket; a list per bucket took ~130).
        self._idx = array("d")
        self._val = array("d")
        self._head = 0
        self._sum = 0.0  # integral of the buckets held
        self._last_t: float | None = None

    def _weight(self, value: float) -> float:
        if self.averaging == "energy":
            return math.pow(10.0, value / self._k)
        if self.averaging == "rms":
            return value * value
        return value if value > 0.0 else 0.0  # negative zero drift counts as clean air

    def add(self, t: float, value: float) -> None:
        """Add a reading at ``t`` (seconds); readings must come in time order."""
        last = self._last_t
        self._last_t = t
        if last is None or t <= last:
            return
        start = max(last, t - self.max_hold_s)
        w = self._weight(value)
        if w == 0.0:
            return
        b = self.bucket_s
        idx, val = self._idx, self._val
        while start < t:
            index = math.floor(start / b)
            end = min(t, (index + 1) * b)
            part = w * (end - start)
            if len(idx) > self._head and idx[-1] == index:
                val[-1] += part
            else:
                idx.append(index)
                val.append(part)
            self._sum += part
            start = end

    def _integral(self, t: float) -> float:
        horizon = t - self.window_s
        b = self.bucket_s
        idx, val = self._idx, self._val
        head, n = self._head, len(self._idx)
        while head < n and (idx[head] + 1) * b <= horizon:
            self._sum -= val[head]
            head += 1
        if head == n:
            del idx[:], val[:]
            self._head = 0
            self._sum = 0.0  # drop accumulated rounding
            return 0.0
        if head >= 32:  # compact: the expired front goes (~3 moves per expired bucket)
            del idx[:head], val[:head]
            head = 0
        self._head = head
        start = idx[head] * b
        clipped = val[head] * (horizon - start) / b if start < horizon else 0.0
        return self._sum - clipped

    def average(self, t: float) -> float | None:
        """The window's average ending at ``t``; None before any exposure is known."""
        total = self._integral(t)
        if total <= 0.0 and self._head == len(self._idx):
            return None if self.averaging == "energy" or self._last_t is None else 0.0
        mean = total / self.window_s
        if self.averaging == "energy":
            return self._k * math.log10(mean) if mean > 0 else None
        if self.averaging == "rms":
            return math.sqrt(mean) if mean > 0 else 0.0
        return mean
