"""Report the onset of a surprise, not its duration; do not learn what was flagged.

NAB — and an inspector — want one signal when something starts, not one per
reading while it lasts. `OnsetFilter` passes on how far a detector's score
rises above the highest score of the previous ``refractory`` observations:
the first reading of an episode keeps its score, the rest of the episode
scores about 0.

With ``flag_at`` set, a jump of at least ``flag_at`` above the recent scores
(the reading before included, whatever ``lag`` is) *latches*: until the
wrapped detector has been less than ``hold_at`` surprised for ``release_after``
observations in a row, it learns nothing (a persistent leak must not become
the new normal; a noisy leak dipping below ``hold_at`` now and then does not
release it), for at most ``adapt_after`` observations (``None``: until the
surprise ends) — after that a lasting change is learnt as the new normal.
`latched` says whether the latch is on.

>>> from online_ml.ewm import EWMDetector
>>> det = OnsetFilter(EWMDetector(), refractory=50)
>>> xs = [{"value": 1.0 + 0.01 * (i % 5), "t": 60.0 * i} for i in range(400)]
>>> xs += [{"value": 9.0, "t": 60.0 * (400 + i)} for i in range(5)]
>>> scores = []
>>> for x in xs:
...     scores.append(det.score_one(x)); det.learn_one(x)
>>> scores[400] > 0.5, max(scores[401:]) < 0.2
(True, True)

A latched leak is not learnt; the same filter without the latch learns it:

>>> latched = OnsetFilter(EWMDetector(), refractory=50, flag_at=0.2, hold_at=0.5)
>>> for x in xs[:400] + [{"value": 9.0, "t": 60.0 * (400 + i)} for i in range(300)]:
...     _ = latched.score_one(x); latched.learn_one(x)
>>> latched.latched, latched.surprise > 0.5, latched.refused
(True, True, 300)

A surprise that builds over a few readings is one onset, not several: with
``lag`` the baseline is the highest score *before* the last ``lag - 1``
readings, so a rise over three readings is measured from where it started.
With ``report_at`` the filter reports on a fixed scale: an onset of
``report_at`` or more scores 0.5 and above (``0.5 + onset / 2``), after which
``quiet`` readings score below 0.5 (the same episode, not a new one); a
smaller onset scores ``0.5 * onset / report_at``. A downstream threshold of
0.5 is then the filter's own decision, the same on every series:

>>> rep = OnsetFilter(EWMDetector(), refractory=50, lag=3, report_at=0.1, quiet=20)
>>> ramp = [{"value": 1.0 + 2.0 * k, "t": 60.0 * (400 + k)} for k in range(1, 5)]
>>> scores = []
>>> for x in xs[:400] + ramp:
...     scores.append(rep.score_one(x)); rep.learn_one(x)
>>> sum(s >= 0.5 for s in scores[400:]), max(scores[:400]) < 0.5
(1, True)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from online_ml.base import AnomalyDetector, Explanation

__all__ = ["OnsetFilter"]


class OnsetFilter(AnomalyDetector):
    """Onsets of a wrapped detector's surprise, with its learning discipline (see the
    module)."""

    @classmethod
    def _unit_test_params(cls) -> Iterator[dict[str, Any]]:
        """River's checks build one around a fresh EWM detector."""
        from online_ml.ewm import EWMDetector

        yield {"detector": EWMDetector()}

    def __init__(
        self,
        detector: AnomalyDetector,
        refractory: int = 400,
        flag_at: float | None = None,
        hold_at: float = 0.5,
        adapt_after: int | None = None,
        release_after: int = 1,
        lag: int = 1,
        report_at: float | None = None,
        quiet: int = 0,
    ) -> None:
        if lag < 1:
            raise ValueError("lag must be at least 1 (1: the baseline ends at the last reading)")
        if report_at is not None and not report_at > 0:
            raise ValueError("report_at must be positive")
        self.detector = detector
        self.lag = lag
        self.report_at = report_at
        self.quiet = quiet
        self._quiet_left = 0  # readings still inside a reported onset's episode
        self._pending: deque[tuple[int, float]] = deque()  # the last lag - 1 scores
        self.release_after = release_after
        self._calm = 0  # consecutive observations below hold_at while latched
        self.refractory = refractory
        self.flag_at = flag_at
        self.hold_at = hold_at
        self.adapt_after = adapt_after
        self.latched = False
        self.refused = 0  # observations not learnt while latched
        self.surprise = 0.0  # the wrapped detector's last score
        self._streak = 0
        self._recent: deque[tuple[int, float]] = deque()  # (index, score), scores decreasing
        self._i = 0
        self._last: tuple[dict[str, float], float] | None = None  # holds x: identity stays unique

    def _recent_max(self) -> float:
        """The highest score of the ``refractory`` readings before the last ``lag - 1``."""
        oldest = self._i - self.lag + 1 - self.refractory
        while self._recent and self._recent[0][0] < oldest:
            self._recent.popleft()
        return self._recent[0][1] if self._recent else 0.0

    def _report(self, onset: float) -> float:
        """The onset on the reporting scale (see the module)."""
        at = self.report_at
        if at is None:
            return onset
        if self._quiet_left > 0:
            return 0.4995 * min(onset, at) / at
        if onset >= at:
            return 0.5 + 0.5 * min(onset, 1.0)
        return 0.5 * onset / at

    def score_one(self, x: dict[str, float]) -> float:
        s = self.detector.score_one(x)
        self._last = (x, s)
        self.surprise = s
        return self._report(max(0.0, s - self._recent_max()))

    def learn_one(self, x: dict[str, float]) -> None:
        last = self._last
        s = last[1] if last is not None and last[0] is x else self.detector.score_one(x)
        base = self._recent_max()
        onset = max(0.0, s - base)
        pending = self._pending
        # The latch looks at the rise above every recent score, the last lag - 1 included
        # (the onset without the lag): a surprise building over a few readings is still
        # learnt from until it jumps.
        jump = max(0.0, s - max(base, max((p for _, p in pending), default=0.0)))
        if self.report_at is not None:
            if self._quiet_left > 0:
                self._quiet_left -= 1
            elif onset >= self.report_at:
                self._quiet_left = self.quiet
        pending.append((self._i, s))
        while len(pending) >= self.lag:  # old enough to join the baseline
            entry = pending.popleft()
            while self._recent and self._recent[-1][1] <= entry[1]:
                self._recent.pop()
            self._recent.append(entry)
        self._i += 1
        if self.flag_at is not None:
            if not self.latched and jump >= self.flag_at:
                self.latched, self._streak, self._calm = True, 0, 0
            if self.latched:
                self._calm = self._calm + 1 if s < self.hold_at else 0
                if self._calm >= self.release_after:
                    self.latched = False  # the surprise is over: learn again
                elif self.adapt_after is None or self._streak < self.adapt_after:
                    self._streak += 1
                    self.refused += 1
                    return
                else:
                    self.latched = False  # lasted adapt_after readings: a new normal
        self.detector.learn_one(x)

    def explain(self, x: dict[str, float]) -> Explanation | None:
        return self.detector.explain(x)

    @property
    def flagging(self) -> bool:
        return self.latched

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_last"] = None  # keyed by object identity: not worth saving
        return state
