"""Deterministic safety detection for every reading: limits, exposures, fire, sensor health.

`Detector` is the pure per-reading pipeline that the Faust worker and
``qorgau replay`` both run. It keeps per-sensor state, works in event time
(the readings' own timestamps; an enterprise's *watermark* is the newest
timestamp seen from it — each enterprise keeps its own event time, so one
catching up on a backlog is never judged by another's clock),
and returns `AlertEvent` changes — open, escalate, clear — as they happen,
on the reading that causes them.

Order of work per reading: timestamp sanity (refused with a reason) ->
stale sensors whose silence the watermark now proves -> physical plausibility
(an impossible value raises ``sensor_fault`` and goes no further) -> stuck
sensor -> instantaneous limits -> short-term and shift averages -> fire.

Readings of one sensor are expected in time order; one up to
``health.lateness_s`` behind the sensor's newest is still checked against the
instantaneous limits but not added to the averages (see docs: a later change
makes late readings exact).
"""

from __future__ import annotations

import bisect
import heapq
import math
import pickle
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import Catalogue
from core.errors import InvalidReading
from core.limits import LimitRule, Limits
from core.reference import ReferenceData
from core.types import Reading
from stream.detection.alarm import AlarmState
from stream.detection.fire import Creep, HeatState, ZoneFire
from stream.detection.windows import WindowAverage

__all__ = ["Detector", "DetectorStats", "ExposureRow"]

_GASES = frozenset({"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4"})
_STUCK_MIN_READINGS = 5
# Stuck, learnt per sensor: once a sensor has shown _STUCK_LEARN_RUNS runs of one value
# end (its value changed that often), a value held _STUCK_FACTOR times longer than the
# longest of those runs is stuck (at least _STUCK_FLOOR_S); until then, or when its
# longest run is over _STUCK_FINE_S (a coarse sensor), _STUCK_CAP times stuck_after_s or
# _STUCK_FACTOR times its longest run, whichever is longer. A sensor whose history shows
# it never holds a value for more than a minute or two is reported minutes after it
# freezes; one of coarse resolution that holds 1 mg/m3 all night is not.
_STUCK_LEARN_RUNS = 30
_STUCK_FACTOR = 2.5
_STUCK_FLOOR_S = 600.0
_STUCK_CAP = 6.0
_STUCK_FINE_S = 300.0  # a sensor whose runs stay this short is fine; beyond, coarse
_MAX_PENDING = 64  # readings a sensor may hold back for late arrivals


@dataclass(frozen=True, slots=True)
class ExposureRow:
    """One sensor's exposure figures at the end of one minute (event time)."""

    sensor_id: str
    ts: datetime  # end of the minute
    enterprise_id: str
    hazard: str
    twa: float | None
    stel: float | None
    ceiling: float  # the highest reading in the minute


@dataclass(slots=True)
class DetectorStats:
    readings: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    late: int = 0
    duplicates: int = 0
    faults: int = 0
    events: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Sensor:
    sensor_id: str
    enterprise_id: str
    hazard: str
    zone_key: str
    stale_after_s: float
    rules: list[LimitRule]
    windows: dict[AlertKind, WindowAverage]
    alarms: dict[AlertKind, AlarmState]
    last_t: float | None = None
    last_ts: datetime | None = None
    stuck_value: float | None = None
    stuck_since: float = 0.0
    stuck_last_t: float = 0.0  # the run's newest reading (a silence is not part of it)
    stuck_count: int = 0
    run_max_s: float = 0.0  # the longest run of one value it has shown (clean air aside)
    runs: int = 0  # runs of one value that ended (learnt from)
    low: float = math.inf  # the lowest plausible value it has reported (a gas: clean air)
    heat: HeatState | None = None
    co_normal: float | None = None
    minute: int | None = None
    minute_max: float = -math.inf
    minute_twa: float | None = None
    minute_stel: float | None = None
    queued: bool = False  # has an entry in the stale heap
    instant_rules: list[LimitRule] = field(default_factory=list)  # threshold, ceiling
    window_rules: list[LimitRule] = field(default_factory=list)  # stel, twa
    # (t, ts, value, alarm snapshots before, events) of readings within the lateness
    log: list[tuple[float, datetime, float, tuple[Any, ...], list[AlertEvent]]] = field(
        default_factory=list
    )
    pending: list[tuple[float, float]] = field(default_factory=list)  # (t, value), sorted
    released_t: float = -math.inf  # newest reading fed to the averages
    fire_role: bool = False  # temperature, smoke or CO: feeds the zone's fire signal
    creep: Creep | None = None  # its slow rise, for smouldering (fire-role sensors)


class Detector:
    """Per-reading safety detection over any number of sensors.

    ``clock`` gives the receiver's time, in Unix seconds, for timestamp sanity
    checks (the live worker passes ``time.time``); without it the watermark is the reference,
    which keeps ``qorgau replay`` deterministic.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        limits: Limits,
        reference: ReferenceData | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.limits = limits
        self.clock = clock
        self.stats = DetectorStats()
        self.watermarks: dict[str, float] = {}  # enterprise -> its newest timestamp
        self._sensors: dict[str, _Sensor] = {}
        self._zones: dict[str, ZoneFire] = {}
        self._zone_alarms: dict[str, AlarmState] = {}
        self._stale_heaps: dict[str, list[tuple[float, str]]] = {}  # per enterprise
        self._exposures: list[ExposureRow] = []
        self._known: dict[str, tuple[str, float, float | None]] = {}
        if reference is not None:
            for ent in reference.enterprises:
                for zone in ent.zones:
                    for s in zone.sensors:
                        self._known[s.id] = (zone.id, s.interval_s, zone.normal_temperature_c)

    # --- state ---------------------------------------------------------------------
    def _sensor(self, r: Reading) -> _Sensor:
        st = self._sensors.get(r.sensor_id)
        if st is not None:
            return st
        h = self.limits.health
        zone_id, interval, normal_c = self._known.get(
            r.sensor_id, (f"{r.enterprise_id}:unzoned", h.default_interval_s, None)
        )
        rules = self.limits.rules(r.hazard)
        windows: dict[AlertKind, WindowAverage] = {}
        for rule in rules:
            if rule.kind in (AlertKind.STEL, AlertKind.TWA):
                windows[rule.kind] = WindowAverage(
                    rule.window_min * 60.0,
                    rule.averaging,
                    max_hold_s=max(3 * interval, 60.0),
                    exchange_rate_db=rule.exchange_rate_db,
                )
        alarms = {rule.kind: AlarmState(rule.clear_hold_s) for rule in rules}
        alarms[AlertKind.SENSOR_FAULT] = AlarmState(h.fault_clear_s)
        alarms[AlertKind.STALE] = AlarmState(0.0)
        st = _Sensor(
            sensor_id=r.sensor_id,
            enterprise_id=r.enterprise_id,
            hazard=r.hazard,
            zone_key=f"{r.enterprise_id}/{zone_id}",
            stale_after_s=max(h.stale_factor * interval, h.min_stale_s),
            rules=rules,
            windows=windows,
            alarms=alarms,
        )
        if r.hazard == "temperature":
            st.heat = HeatState(self.limits.fire, normal_c)
        st.fire_role = r.hazard in ("temperature", "smoke", "co")
        self._split_rules(st)
        self._sensors[r.sensor_id] = st
        return st

    # --- events ----------------------------------------------------------------------
    def _event(
        self,
        action: AlertAction | None,
        st: _Sensor,
        kind: AlertKind,
        alarm: AlarmState,
        ts: datetime,
        value: float | None,
        message: str,
        limit: float | None = None,
        *,
        subject: str | None = None,
        **details: object,
    ) -> list[AlertEvent]:
        if action is None:
            return []
        name = f"{kind.value}:{action.value}"
        self.stats.events[name] = self.stats.events.get(name, 0) + 1
        severity = alarm.severity or alarm.cleared_severity or Severity.WARNING
        return [
            AlertEvent(
                action=action,
                key=alarm.alert_key(subject or st.sensor_id, kind, ts),
                kind=kind,
                severity=severity,
                enterprise_id=st.enterprise_id,
                sensor_id=st.sensor_id,
                hazard=st.hazard,
                ts=ts,
                value=value,
                message=message,
                limit=limit,
                zone_id=st.zone_key.split("/", 1)[1],
                details=dict(details),
            )
        ]

    def _describe(self, st: _Sensor, value: float) -> str:
        hz = self.catalogue[st.hazard]
        return f"{hz.name_en} {value:.4g} {hz.unit}"

    # --- the pipeline ----------------------------------------------------------------
    def process(self, r: Reading) -> list[AlertEvent]:
        """Run every check on one reading; return the alarm changes it causes.

        Raises `InvalidReading` for timestamps that cannot be trusted
        (``future_timestamp``, ``old_timestamp``, ``too_late``); the caller
        dead-letters those.

        Instantaneous limits, sensor faults and fire act on the reading as it
        arrives. A reading that arrives late (older than the sensor's newest, within
        the lateness) re-runs the instantaneous limits from its place in time, and
        any alert whose opening reading changes is retracted and opened again, so
        the outcome equals in-order processing. Averages (STEL, TWA) and exposure
        rows take readings in time order once no earlier one can still arrive
        (``lateness_s`` behind the sensor's newest reading, or 64 readings).
        """
        t = r.ts.timestamp()
        now = self.check_timestamp(r, t)
        st = self._sensor(r)
        events: list[AlertEvent] = []
        late = st.last_t is not None and t < st.last_t
        if t == st.last_t or (late and any(x[0] == t for x in st.log)):
            self.stats.duplicates += 1
            return []
        self.stats.readings += 1
        if late:
            self.stats.late += 1
        # Event time never runs ahead of the receiver's clock: a sensor whose clock is
        # fast must not make its neighbours look silent.
        event_t = t if now is None else min(t, now)
        wm = self.watermarks.get(r.enterprise_id)
        if wm is None or event_t > wm:
            self.watermarks[r.enterprise_id] = event_t
            events += self._expire_stale(r.enterprise_id, event_t)
        if not late:
            st.last_t, st.last_ts = t, r.ts
            if not st.queued:  # one heap entry per sensor, moved lazily when it comes due
                st.queued = True
                heap = self._stale_heaps.setdefault(r.enterprise_id, [])
                heapq.heappush(heap, (t + st.stale_after_s, st.sensor_id))
        stale = st.alarms[AlertKind.STALE]
        if stale.severity is not None:
            events += self._event(
                stale.force_clear(),
                st,
                AlertKind.STALE,
                stale,
                r.ts,
                r.value,
                f"{r.sensor_id} reports again",
            )
        events += self._health(st, r, t, late)
        if not r.plausible:
            return events
        value = r.value
        if late:
            events += self._rewind_instant(st, t, r.ts, value)
        else:
            events += self._instant(st, t, r.ts, value)
        # Averages: in time order, once final.
        bisect.insort(st.pending, (t, value))
        events += self._release(st, (st.last_t or t) - self.limits.health.lateness_s)
        if st.fire_role:
            events += self._fire(st, r, t, value)
        return events

    # --- instantaneous limits, with rewind for late readings --------------------------
    def _instant(self, st: _Sensor, t: float, ts: datetime, value: float) -> list[AlertEvent]:
        """Evaluate threshold/ceiling rules and log what it did, for a later rewind."""
        before = tuple(st.alarms[rule.kind].snapshot() for rule in st.instant_rules)
        events: list[AlertEvent] = []
        for rule in st.instant_rules:
            alarm = st.alarms[rule.kind]
            action = alarm.update(rule.level(value), rule.clear(value), ts)
            if action is not None:
                events += self._limit_event(action, st, rule, alarm, ts, value, value)
        log = st.log
        log.append((t, ts, value, before, events))
        # A reading can only arrive after what the averages have taken (see _release).
        while log and (log[0][0] <= st.released_t or len(log) > _MAX_PENDING + 1):
            log.pop(0)
        return events

    def _rewind_instant(
        self, st: _Sensor, t: float, ts: datetime, value: float
    ) -> list[AlertEvent]:
        """Re-run the instantaneous rules from a late reading's place in time."""
        log = st.log
        i = bisect.bisect_left([x[0] for x in log], t)
        if i < len(log):
            for rule, snap in zip(st.instant_rules, log[i][3], strict=True):
                st.alarms[rule.kind].restore(snap)
        old = [e for entry in log[i:] for e in entry[4]]
        tail = log[i:]
        del log[i:]
        new: list[AlertEvent] = []
        for t2, ts2, v2 in [(t, ts, value)] + [(x[0], x[1], x[2]) for x in tail]:
            new += self._instant(st, t2, ts2, v2)
        if old == new:
            return []
        retracted = [
            replace(e, action=AlertAction.RETRACT)
            for e in old
            if e.action is AlertAction.OPEN and e not in new
        ]
        return retracted + [e for e in new if e not in old]

    # --- averages and exposures, in time order -----------------------------------------
    def _release(self, st: _Sensor, upto: float) -> list[AlertEvent]:
        """Feed pending readings up to ``upto`` (or beyond 64 of them) to the averages."""
        events: list[AlertEvent] = []
        pending = st.pending
        while pending and (pending[0][0] <= upto or len(pending) > _MAX_PENDING):
            t, value = pending.pop(0)
            st.released_t = t
            if not st.windows:
                continue
            ts = datetime.fromtimestamp(t, UTC)
            self._close_minute(st, t)
            if value > st.minute_max:
                st.minute_max = value
            for rule in st.window_rules:
                kind = rule.kind
                alarm = st.alarms[kind]
                window = st.windows[kind]
                window.add(t, value)
                avg = window.average(t)
                if avg is None:
                    action = alarm.update(None, True, ts)
                else:
                    action = alarm.update(rule.level(avg), rule.clear(avg), ts)
                if action is not None:
                    events += self._limit_event(action, st, rule, alarm, ts, value, avg)
                if kind is AlertKind.TWA:
                    st.minute_twa = avg
                else:
                    st.minute_stel = avg
        return events

    def flush(self) -> list[AlertEvent]:
        """Feed every pending reading to the averages (end of a replay file)."""
        events: list[AlertEvent] = []
        for st in self._sensors.values():
            events += self._release(st, math.inf)
        return events

    def check_timestamp(self, r: Reading, t: float | None = None) -> float | None:
        """Refuse a timestamp that cannot be trusted, with the reason; changes no state.

        ``future_timestamp`` and ``old_timestamp`` are judged against the receiver's
        clock (the watermark when there is none, see `check_clock`); ``too_late``
        against the sensor's newest reading and the allowed lateness. ``t`` is
        ``r.ts`` as a POSIX timestamp, when the caller has it. Returns the clock's
        reading (None without a clock).
        """
        if t is None:
            t = r.ts.timestamp()
        now = self.check_clock(r, t)
        h = self.limits.health
        st = self._sensors.get(r.sensor_id)
        if (
            st is not None
            and st.last_t is not None
            and (st.last_t - t > h.lateness_s or t <= st.released_t)
        ):
            self._refuse("too_late")
            raise InvalidReading(
                "too_late",
                f"ts {r.ts.isoformat()} is more than"
                f" {h.lateness_s:.0f} s behind the sensor's newest reading",
            )
        return now

    def check_clock(self, r: Reading, t: float | None = None) -> float | None:
        """Refuse a timestamp too far ahead of or behind the receiver's clock (the watermark
        when there is none); needs no state of the sensor. Returns the clock's reading
        (None without a clock)."""
        h = self.limits.health
        if t is None:
            t = r.ts.timestamp()
        now = self.clock() if self.clock else None
        ref = now if now is not None else self.watermark
        if ref is None:
            return now
        if t > ref + h.future_skew_s:
            self._refuse("future_timestamp")
            raise InvalidReading(
                "future_timestamp",
                f"ts {r.ts.isoformat()} is more than"
                f" {h.future_skew_s:.0f} s ahead of the receiver's clock",
            )
        if t < ref - h.max_age_s:
            self._refuse("old_timestamp")
            raise InvalidReading(
                "old_timestamp", f"ts {r.ts.isoformat()} is more than {h.max_age_s:.0f} s old"
            )
        return now

    @staticmethod
    def _split_rules(st: _Sensor) -> None:
        st.instant_rules = [
            r for r in st.rules if r.kind in (AlertKind.THRESHOLD, AlertKind.CEILING)
        ]
        st.window_rules = [r for r in st.rules if r.kind in (AlertKind.STEL, AlertKind.TWA)]

    def _refuse(self, reason: str) -> None:
        self.stats.refused[reason] = self.stats.refused.get(reason, 0) + 1

    def _limit_event(
        self,
        action: AlertAction | None,
        st: _Sensor,
        rule: LimitRule,
        alarm: AlarmState,
        ts: datetime,
        value: float,
        measured: float | None,
    ) -> list[AlertEvent]:
        if action is None:
            return []
        unit = self.catalogue[st.hazard].unit
        severity = alarm.severity or alarm.cleared_severity or Severity.WARNING
        limit = rule.limit_for(severity)
        what = {
            AlertKind.THRESHOLD: "reading",
            AlertKind.CEILING: "reading (ceiling)",
            AlertKind.STEL: f"{rule.window_min:g}-min average",
            AlertKind.TWA: f"{rule.window_min / 60:g}-h average",
        }[rule.kind]
        m = measured if measured is not None else value
        if action is AlertAction.CLEAR:
            msg = f"{self._describe(st, m).split(' ', 1)[0]} {what} back to {m:.4g} {unit}"
        else:
            below = rule.warning_below is not None and m <= (rule.warning_below or 0)
            sign = "≤" if below else "≥"
            msg = (
                f"{self.catalogue[st.hazard].name_en} {what} {m:.4g} {unit} {sign}"
                f" {severity.value} level {limit:g} {unit} ({rule.source})"
            )
        return self._event(
            action,
            st,
            rule.kind,
            alarm,
            ts,
            round(m, 6),
            msg,
            limit,
            source=rule.source,
            confirmed=rule.confirmed,
        )

    def _health(self, st: _Sensor, r: Reading, t: float, late: bool) -> list[AlertEvent]:
        fault = st.alarms[AlertKind.SENSOR_FAULT]
        hz = self.catalogue[st.hazard]
        problem = ""
        if not r.plausible:
            self.stats.faults += 1
            problem = (
                f"{r.sensor_id}: {self._describe(st, r.value)} is physically impossible"
                f" (plausible {hz.plausible_min:g}..{hz.plausible_max:g} {hz.unit})"
            )
            st.stuck_value, st.stuck_count = None, 0
        elif not late:
            prior = self.limits.health.stuck_after_s.get(st.hazard, 0.0)
            silence = t - st.stuck_last_t > st.stale_after_s
            if r.value == st.stuck_value and not silence:
                st.stuck_count += 1
            else:
                # A run that ended is learnt (one that was reported too: a sensor that
                # moves on by itself was not broken), unless it was clean air. It held
                # until this reading, unless a silence came first: hours without readings
                # are not hours of one value (a stale sensor that came back with the
                # value it went silent on once taught that it holds values for hours).
                if st.stuck_value is not None and not self._clean_air(st, st.stuck_value):
                    end = st.stuck_last_t if silence else t
                    st.run_max_s = max(st.run_max_s, end - st.stuck_since)
                    st.runs += 1
                st.stuck_value, st.stuck_since, st.stuck_count = r.value, t, 1
            st.stuck_last_t = t
            ignorable = self._clean_air(st, r.value)
            st.low = min(st.low, r.value)
            if (
                prior > 0
                and not ignorable
                and st.stuck_count >= _STUCK_MIN_READINGS
                and t - st.stuck_since >= self._stuck_limit(st, prior)
            ):
                usual = (
                    f"; its longest normal run is {st.run_max_s / 60:.0f} min"
                    if st.runs >= _STUCK_LEARN_RUNS
                    else ""
                )
                problem = (
                    f"{r.sensor_id}: stuck at {self._describe(st, r.value)} for"
                    f" {(t - st.stuck_since) / 60:.0f} min ({st.stuck_count} readings{usual})"
                )
        if late and not problem:
            return []
        action = fault.update(Severity.WARNING if problem else None, not problem, r.ts)
        if action is AlertAction.CLEAR:
            problem = f"{r.sensor_id}: readings plausible again"
        return self._event(action, st, AlertKind.SENSOR_FAULT, fault, r.ts, r.value, problem or "")

    @staticmethod
    def _clean_air(st: _Sensor, value: float) -> bool:
        """A gas sensor in clean air reads a flat zero, or the lowest step it ever shows."""
        return st.hazard in _GASES and value <= max(st.low, 0.0)

    @staticmethod
    def _stuck_limit(st: _Sensor, prior: float) -> float:
        """How long ``st`` may hold one value before it is stuck (s; inf: never)."""
        if prior <= 0:
            return math.inf
        learnt = _STUCK_FACTOR * st.run_max_s
        if st.runs < _STUCK_LEARN_RUNS or st.run_max_s > _STUCK_FINE_S:
            # Not learnt yet, or coarse: it holds a value for minutes by itself (a 0.5 °C
            # step, a cold store all night), and a quiet night may hold it far longer than
            # the day it learnt from: only far longer than both the prior and its runs.
            return max(_STUCK_CAP * prior, learnt)
        return max(learnt, _STUCK_FLOOR_S)

    @property
    def watermark(self) -> float | None:
        """The newest timestamp seen from any enterprise."""
        return max(self.watermarks.values(), default=None)

    def _expire_stale(self, enterprise_id: str, now: float) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        heap = self._stale_heaps.get(enterprise_id)
        if heap is None:
            return events
        while heap and heap[0][0] <= now:
            deadline, sid = heapq.heappop(heap)
            st = self._sensors.get(sid)
            if st is None or st.last_t is None:
                continue  # the enterprise was dropped
            due = st.last_t + st.stale_after_s
            if due > deadline:  # the sensor reported since: look again at its new deadline
                heapq.heappush(heap, (due, sid))
                continue
            st.queued = False
            events += self._release(st, math.inf)  # no later reading can come to wait for
            alarm = st.alarms[AlertKind.STALE]
            ts = datetime.fromtimestamp(deadline, UTC)
            action = alarm.update(Severity.WARNING, False, ts)
            events += self._event(
                action,
                st,
                AlertKind.STALE,
                alarm,
                ts,
                None,
                f"{sid} silent since {st.last_ts:%Y-%m-%d %H:%M:%S}Z"
                f" ({st.stale_after_s:.0f} s without a reading)",
            )
        return events

    def advance(self, ts: datetime) -> list[AlertEvent]:
        """Move every enterprise's watermark to ``ts`` if it is behind (e.g. the end
        of a replay file)."""
        t = ts.timestamp()
        events: list[AlertEvent] = []
        for eid, wm in sorted(self.watermarks.items()):
            if t > wm:
                self.watermarks[eid] = t
                events += self._expire_stale(eid, t)
        return events

    def advance_by(self, seconds: float) -> list[AlertEvent]:
        """Move every enterprise's watermark on by ``seconds`` of silence."""
        events: list[AlertEvent] = []
        for eid, wm in sorted(self.watermarks.items()):
            self.watermarks[eid] = wm + seconds
            events += self._expire_stale(eid, wm + seconds)
        return events

    # --- fire ---------------------------------------------------------------------------
    def _fire(self, st: _Sensor, r: Reading, t: float, value: float) -> list[AlertEvent]:
        """One fire alarm per zone, fed by each sensor's own signal and their combination."""
        f = self.limits.fire
        zone = self._zones.get(st.zone_key)
        if zone is None:
            zone = self._zones[st.zone_key] = ZoneFire(f)
        level: Severity | None = None
        msg = ""
        smoulder = self._smoulder(st, zone, t, value)
        if st.heat is not None:
            threshold = st.heat.fixed_threshold
            fixed, ror, rate = st.heat.update(t, value)
            if rate >= f.combo_heat_c_per_min:
                zone.signal("heat", t)
            if fixed:
                level = Severity.CRITICAL
                msg = (
                    f"heat {value:.1f} °C ≥ {threshold:.1f} °C (fixed {f.fixed_c:g} °C, or"
                    f" the zone's normal {st.heat.baseline:.1f} °C + {f.fixed_above_normal_c:g})"
                )
            elif ror:
                level = Severity.WARNING
                msg = f"heat rising {rate:.1f} °C/min ≥ {f.ror_c_per_min:g} °C/min"
        elif st.hazard == "smoke":
            if value >= f.combo_smoke:
                zone.signal("smoke", t)
            if value >= f.smoke_critical:
                level, msg = Severity.CRITICAL, f"smoke {value:.2f} %obs/m ≥ {f.smoke_critical:g}"
            elif value >= f.smoke_warning:
                level, msg = Severity.WARNING, f"smoke {value:.2f} %obs/m ≥ {f.smoke_warning:g}"
        elif st.hazard == "co":
            if st.co_normal is None:
                st.co_normal = value
            if value - st.co_normal >= f.combo_co_rise:
                zone.signal("co", t)
            else:  # learn the normal level only while CO is not rising
                st.co_normal += 0.01 * (value - st.co_normal)
        else:
            return []
        if smoulder and level is not Severity.CRITICAL:
            level, msg = Severity.CRITICAL, smoulder
        zone.levels[st.sensor_id] = level
        signals = zone.active(t)
        if len(signals) >= 2:
            level, msg = Severity.CRITICAL, f"{' + '.join(signals)} together"
        else:
            worst = max(
                (lv for lv in zone.levels.values() if lv is not None),
                key=lambda lv: lv.rank,
                default=None,
            )
            if worst is not None and (level is None or worst.rank > level.rank):
                level, msg = worst, msg or "another sensor of the zone still signals fire"
        zone_alarm = self._zone_alarms.get(st.zone_key)
        if zone_alarm is None:
            zone_alarm = self._zone_alarms[st.zone_key] = AlarmState(f.clear_hold_s)
        action = zone_alarm.update(level, level is None, r.ts)
        text = (
            f"fire in zone {st.zone_key}: {msg}"
            if action is not AlertAction.CLEAR
            else f"fire signals in zone {st.zone_key} over"
        )
        return self._event(
            action,
            st,
            AlertKind.FIRE,
            zone_alarm,
            r.ts,
            value,
            text,
            subject=f"zone:{st.zone_key}",
            signals=signals,
        )

    def _smoulder(self, st: _Sensor, zone: ZoneFire, t: float, value: float) -> str:
        """Smoke creeping up for a minute while the zone's CO or heat rises too: a
        smouldering fire that no single signal calls (``smoulder_*`` in the limits)."""
        f = self.limits.fire
        if st.creep is None:
            st.creep = Creep()
        if st.hazard != "smoke":
            rise = f.smoulder_co_rise if st.hazard == "co" else f.smoulder_heat_rise
            if st.creep.update(t, value, rise, None):  # rising, as of its last 30 s
                zone.rising[st.sensor_id] = t
            return ""
        creeping = st.creep.update(t, value, f.smoulder_smoke_rise, f.smoulder_smoke_rate)
        with_it = (
            sorted(sid for sid, at in zone.rising.items() if at >= t - 120.0) if creeping else []
        )
        if not with_it:
            zone.creeping_since.pop(st.sensor_id, None)
            return ""
        since = zone.creeping_since.setdefault(st.sensor_id, t)
        if t - since < f.smoulder_for_s:
            return ""
        base = st.creep.baseline if st.creep.baseline is not None else value
        fit = st.creep.fitted
        floor, rate = (fit[1], fit[0]) if fit is not None else (value, 0.0)
        return (
            f"smouldering: smoke creeping up {rate:.2f} %obs/m a minute for 8 min, its floor"
            f" now {floor:.2f} %obs/m against its normal {base:.2f} (no welding run or"
            f" forklift keeps rising like this), with {', '.join(with_it)} rising too"
        )

    # --- exposures ----------------------------------------------------------------------
    def _close_minute(self, st: _Sensor, t: float) -> None:
        """Emit the exposure row of the sensor's previous minute when ``t`` starts a new one."""
        if not st.windows:
            return
        minute = int(t // 60)
        if st.minute is not None and minute != st.minute:
            self._exposures.append(
                ExposureRow(
                    st.sensor_id,
                    datetime.fromtimestamp((st.minute + 1) * 60, UTC),
                    st.enterprise_id,
                    st.hazard,
                    st.minute_twa,
                    st.minute_stel,
                    st.minute_max,
                )
            )
            st.minute_max = -math.inf
        st.minute = minute

    def drain_exposures(self) -> list[ExposureRow]:
        """Exposure rows of the minutes closed since the last call."""
        rows, self._exposures = self._exposures, []
        return rows

    def faulty(self, sensor_id: str) -> bool:
        """Is the sensor's ``sensor_fault`` alarm open (its readings not to be trusted)?"""
        st = self._sensors.get(sensor_id)
        return st is not None and st.alarms[AlertKind.SENSOR_FAULT].is_open

    def covered(self, sensor_id: str) -> bool:
        """Does a limit alarm (or, for a fire sensor, its zone's fire alarm) already speak
        for this sensor? An anomaly alert would only repeat it."""
        st = self._sensors.get(sensor_id)
        if st is None:
            return False
        if any(st.alarms[rule.kind].is_open for rule in st.rules):
            return True
        zone = self._zone_alarms.get(st.zone_key) if st.fire_role else None
        return zone is not None and zone.is_open

    # --- checkpoints ----------------------------------------------------------------------
    def enterprises(self) -> set[str]:
        """Enterprises whose state this detector holds."""
        return {st.enterprise_id for st in self._sensors.values()}

    def export_state(self, enterprise_id: str) -> bytes:
        """One enterprise's detection state, compact, for a checkpoint.

        Rules are not saved: they are re-attached from the current limits on import,
        so an edited limit applies at once (an averaging window whose rule
        changed starts afresh).
        """
        prefix = f"{enterprise_id}/"
        sensors = {}
        for sid, st in self._sensors.items():
            if st.enterprise_id == enterprise_id:
                fields = {k: getattr(st, k) for k in st.__dataclass_fields__ if k != "rules"}
                fields["windows"] = {
                    k.value: (w.window_s, w.averaging, w) for k, w in st.windows.items()
                }
                sensors[sid] = fields
        state = {
            "v": 4,  # 2: averaging windows in flat arrays; 3: smoulder buffers; 4: floors
            "watermark": self.watermarks.get(enterprise_id),
            "sensors": sensors,
            "zones": {k: v for k, v in self._zones.items() if k.startswith(prefix)},
            "zone_alarms": {k: v for k, v in self._zone_alarms.items() if k.startswith(prefix)},
        }
        return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)

    def import_state(self, enterprise_id: str, blob: bytes) -> None:
        """Restore an enterprise exported by `export_state` (replacing what is held)."""
        self.drop_enterprise(enterprise_id)
        state = pickle.loads(zlib.decompress(blob))  # our own checkpoint, from our own database
        if state.get("v") != 4:  # another layout: detection starts afresh
            return
        wm = state.get("watermark")
        if wm is not None:
            self.watermarks[enterprise_id] = wm
        for sid, fields in state["sensors"].items():
            fields = dict(fields)
            saved_windows = fields.pop("windows")
            rules = self.limits.rules(fields["hazard"])
            windows: dict[AlertKind, WindowAverage] = {}
            for rule in rules:
                if rule.kind in (AlertKind.STEL, AlertKind.TWA):
                    saved = saved_windows.get(rule.kind.value)
                    if saved and saved[0] == rule.window_min * 60.0 and saved[1] == rule.averaging:
                        windows[rule.kind] = saved[2]
                    else:
                        windows[rule.kind] = WindowAverage(
                            rule.window_min * 60.0,
                            rule.averaging,
                            exchange_rate_db=rule.exchange_rate_db,
                        )
            st = _Sensor(rules=rules, windows=windows, **fields)
            self._split_rules(st)
            for rule in rules:
                st.alarms.setdefault(rule.kind, AlarmState(rule.clear_hold_s))
            if st.heat is not None:
                st.heat.settings = self.limits.fire
            self._sensors[sid] = st
            st.queued = st.last_t is not None
            if st.last_t is not None:
                heap = self._stale_heaps.setdefault(enterprise_id, [])
                heapq.heappush(heap, (st.last_t + st.stale_after_s, sid))
        for k, zone in state["zones"].items():
            zone.settings = self.limits.fire
            for name in ("rising", "creeping_since"):  # a checkpoint from before smouldering
                if not hasattr(zone, name):
                    setattr(zone, name, {})
            self._zones[k] = zone
        self._zone_alarms.update(state["zone_alarms"])

    def drop_enterprise(self, enterprise_id: str) -> None:
        """Forget an enterprise (its partition moved to another worker)."""
        prefix = f"{enterprise_id}/"
        for sid in [sid for sid, st in self._sensors.items() if st.enterprise_id == enterprise_id]:
            del self._sensors[sid]
        for mapping in (self._zones, self._zone_alarms):
            for k in [k for k in mapping if k.startswith(prefix)]:
                del mapping[k]
        self._stale_heaps.pop(enterprise_id, None)
        self.watermarks.pop(enterprise_id, None)
