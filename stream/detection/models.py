"""Online models per sensor, after the safety rules: anomalies, baseline drift, zone fire risk.

`ModelBank` is the model half of detection that the Faust worker and
``qorgau replay`` both run, reading by reading, after `Detector` (the rules)
has seen the same reading. It never delays nor replaces a rule: it adds

* an ``anomaly`` alert when a sensor's model (``online_ml``, one per sensor,
  keyed like the readings) flags a departure from what it learnt as normal for
  that sensor, with an explanation an inspector can read — which feature, the
  range it expected, the value observed;
* a ``sensor_fault`` alert when a gas or smoke sensor's baseline (its quiet
  level, the zero) drifts slowly — calibration drift (`online_ml.drift`);
* a fire-risk score per zone (`online_ml.fire_risk`), stored with the scores.

The models see one value per sensor and ``resolution_s`` (10 s) window of
event time — the mean of the readings in it — so that a model's time scales
(its warm-up, memory, the shape of "the last 12 values") mean the same for a
noise meter reporting every second as for a gas sensor every 10 s, and fast
sensors do not cost ten times the CPU. A window is scored as soon as it holds
the readings the sensor's interval lets it expect; a sensor reporting every
10 s or slower is scored on every reading. (Instantaneous limits, in the rules,
see every reading.)

Discipline: no alert before ``warmup`` windows of a sensor (the ``departure``
model: ``warmup`` x ``resolution_s`` of event time, at least an hour); readings that are
implausible, or arrive while the sensor's ``sensor_fault`` alarm is open, never
reach its model; readings older than the model's newest are skipped (models
learn in time order); what the model flags it does not learn (see
`online_ml.make_stream_model`). A model that raises is logged with the sensor
id and skips that reading; after repeated failures it starts afresh.

Scores are stored per sensor and minute (the highest of the minute), and every
window scoring at or above the alert threshold, with its explanation.
"""

from __future__ import annotations

import math
import pickle
import statistics
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from core.alarms import AlertAction, AlertEvent, AlertKind, Severity
from core.catalogue import Catalogue
from core.errors import ConfigError
from core.limits import Limits
from core.reference import ReferenceData
from core.settings import Settings
from core.types import Reading
from online_ml import ALERT_THRESHOLDS, DepartureDetector, LearningGuard, make_stream_model
from online_ml.base import AnomalyDetector, Explanation
from online_ml.drift import BaselineDrift
from online_ml.fire_risk import ZoneFireRisk
from storage.detection import ScoreRecord
from stream.detection.alarm import AlarmState

__all__ = ["ModelBank", "ModelSettings", "ModelStats"]

log = structlog.get_logger(__name__)

DRIFT_HAZARDS = frozenset({"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4", "smoke"})
_FIRE_HAZARDS = frozenset({"temperature", "smoke", "co"})
# The direction in which a departure is a danger (the rest: up).
_DANGER = {"o2": "down", "humidity": "both"}
# Microclimate follows the weather and the work across a whole site; its limits and the
# fire rules judge it. Its model runs (its movement tells its zone's other sensors how
# the work moves) but opens no anomaly alert of its own.
_NO_ANOMALY = frozenset({"temperature", "humidity"})
# Levels whose noise grows with them (emissions diluted, vibration): judged on a log scale.
_LOG_HAZARDS = frozenset(
    {"co", "h2s", "no2", "so2", "nh3", "cl2", "ch4", "dust", "smoke", "vibration"}
)
_TOGETHER_S = 900.0  # sensors departing within this long of each other move together
_MOVEMENT_S = 180.0  # a neighbour's movement older than this is not used
_MOVING = 2.0  # a sensor moving by this many of its usual movements is moving
_RESET_AFTER_ERRORS = 20  # consecutive failures of one model before it starts afresh
_STATE_VERSION = 6


@dataclass(frozen=True, slots=True)
class ModelSettings:
    detector: str = "departure"
    params: dict[str, Any] = field(default_factory=dict)
    budget: float = 1.0  # model alerts per sensor per 100 days of normal operation
    threshold: float | None = None  # None: the detector's own alert threshold
    warmup: int = 1000  # model inputs (windows) of a sensor before its model may alert
    resolution_s: float = 10.0  # the model sees one mean per window this long (0: every reading)
    clear_hold_s: float = 300.0  # unflagged event time before an anomaly alert clears
    drift: bool = True
    drift_fraction: float = 0.2  # drift worth an alert: this share of the lowest limit
    fire_risk: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelSettings:
        return cls(
            detector=settings.model_detector,
            budget=settings.model_budget,
            threshold=settings.model_threshold,
            warmup=settings.model_warmup,
            resolution_s=settings.model_resolution_s,
        )

    @property
    def alert_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        return ALERT_THRESHOLDS.get(self.detector, 0.5)


@dataclass(slots=True)
class ModelStats:
    scored: int = 0
    skipped_fault: int = 0  # implausible, or the sensor's fault alarm open
    skipped_order: int = 0  # not newer than the model's newest reading
    errors: int = 0
    resets: int = 0
    events: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _MinuteBest:
    """The highest score of the current minute; stored once a later minute begins."""

    minute: int | None = None
    row: ScoreRecord | None = None

    def beaten_by(self, minute: int, score: float) -> bool:
        """Would ``score`` at ``minute`` be kept (a new minute, or a higher score)?"""
        return self.minute != minute or self.row is None or score > self.row.score

    def keep(self, minute: int, row: ScoreRecord, closed: list[ScoreRecord]) -> None:
        """Keep ``row`` if it is the best of its minute; a new minute first moves the
        previous minute's best to ``closed``."""
        if self.minute is not None and minute != self.minute and self.row is not None:
            closed.append(self.row)
            self.row = None
        self.minute = minute
        if self.row is None or row.score > self.row.score:
            self.row = row


@dataclass(slots=True)
class _SensorModel:
    sensor_id: str
    enterprise_id: str
    hazard: str
    zone_key: str
    model: LearningGuard
    alarm: AlarmState
    drift: BaselineDrift | None = None
    drift_alarm: AlarmState | None = None
    drift_reference: float | None = None  # the baseline before the open drift alert
    last_t: float | None = None
    interval: float | None = None  # the sensor's usual interval (s), smoothed
    window: int = 0  # the current resolution window (index) and its readings
    w_sum: float = 0.0
    w_n: int = 0
    w_ts: datetime | None = None
    scores: _MinuteBest = field(default_factory=_MinuteBest)
    failures: int = 0
    zone_minute: int | None = None  # the last minute it exchanged movements with its zone


@dataclass(slots=True)
class _Zone:
    risk: ZoneFireRisk
    scores: _MinuteBest = field(default_factory=_MinuteBest)


class ModelBank:
    """Per-sensor online models over any number of sensors (see the module docs)."""

    def __init__(
        self,
        catalogue: Catalogue,
        limits: Limits,
        settings: ModelSettings | None = None,
        reference: ReferenceData | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.limits = limits
        self.settings = settings or ModelSettings()
        self.threshold = self.settings.alert_threshold
        self.stats = ModelStats()
        self._sensors: dict[str, _SensorModel] = {}
        self._zones: dict[str, _Zone] = {}
        self._scores: list[ScoreRecord] = []
        self._zone_of: dict[str, str] = {}
        # Per zone and per enterprise: when each sensor last departed (see _moves_with_others).
        self._peers: dict[str, dict[str, tuple[float, float]]] = {}
        # Per zone: each sensor's latest movement (time, z), for its neighbours' models.
        self._movement: dict[str, dict[str, tuple[float, float, float | None]]] = {}
        if reference is not None:
            for ent in reference.enterprises:
                for zone in ent.zones:
                    for s in zone.sensors:
                        self._zone_of[s.id] = zone.id
        try:  # fail fast on an unknown detector or parameter, before any reading
            make_stream_model(self.settings.detector, 1, **self.settings.params)
        except ValueError as exc:
            raise ConfigError(f"online models: {exc}") from None

    # --- state ---------------------------------------------------------------------
    def _new_model(self, hazard: str) -> LearningGuard:
        s = self.settings
        params = dict(s.params)
        if s.detector == "departure":
            params.setdefault("direction", _DANGER.get(hazard, "up"))  # which way is danger
            params.setdefault("budget", s.budget)
            lowest = self._lowest_limit(hazard)
            if hazard in _LOG_HAZARDS:  # below 1 % of the lowest limit, ratios do not matter
                params.setdefault("log_floor", 0.01 * lowest if lowest else 0.01)
            params.setdefault("warmup_hours", max(1, round(s.warmup * s.resolution_s / 3600)))
        return make_stream_model(s.detector, self._guard_warmup(), **params)

    def _guard_warmup(self) -> int:
        """The learning guard's warm-up, in windows. The departure model keeps its own, in
        hours of event time (windows would make a sensor reporting every minute wait six
        times longer than one every 10 s)."""
        return 0 if self.settings.detector == "departure" else self.settings.warmup

    def _lowest_limit(self, hazard: str) -> float | None:
        limits = [
            x for rule in self.limits.rules(hazard) for x in (rule.warning, rule.critical) if x
        ]
        if hazard == "smoke":
            limits.append(self.limits.fire.smoke_warning)
        return min(limits) if limits else None

    def _drift_shift(self, hazard: str) -> float | None:
        """The smallest baseline drift worth an alert: a share of the hazard's lowest limit."""
        lowest = self._lowest_limit(hazard)
        return self.settings.drift_fraction * lowest if lowest else None

    def _sensor(self, r: Reading) -> _SensorModel:
        sm = self._sensors.get(r.sensor_id)
        if sm is not None:
            return sm
        zone = self._zone_of.get(r.sensor_id, "unzoned")
        sm = _SensorModel(
            sensor_id=r.sensor_id,
            enterprise_id=r.enterprise_id,
            hazard=r.hazard,
            zone_key=f"{r.enterprise_id}/{zone}",
            model=self._new_model(r.hazard),
            alarm=AlarmState(self.settings.clear_hold_s),
        )
        shift = self._drift_shift(r.hazard) if r.hazard in DRIFT_HAZARDS else None
        if self.settings.drift and shift is not None:
            sm.drift = BaselineDrift.hourly(shift)
            sm.drift_alarm = AlarmState(0.0)
        self._sensors[r.sensor_id] = sm
        return sm

    # --- the pipeline ----------------------------------------------------------------
    def process(
        self, r: Reading, *, faulty: bool = False, covered: bool = False, emit: bool = True
    ) -> list[AlertEvent]:
        """Score, then learn, one reading; return the alert changes it causes.

        ``faulty``: the rules hold a ``sensor_fault`` alarm open for this sensor.
        ``covered``: a limit or fire alarm already speaks for it — the model still
        scores and (not) learns, but opens no anomaly alert of its own.
        ``emit=False`` (catching up on stored readings after a restart) learns and
        keeps scores (stored again idempotently, so the minute that spans a restart
        is whole) but returns no alert changes: those were published when the
        readings first arrived.
        """
        if not r.plausible or faulty:
            self.stats.skipped_fault += 1
            return []
        sm = self._sensor(r)
        t = r.ts.timestamp()
        if sm.last_t is not None and t <= sm.last_t:
            self.stats.skipped_order += 1
            return []
        if sm.last_t is not None:  # the sensor's usual interval, for closing windows on time
            gap = t - sm.last_t
            sm.interval = gap if sm.interval is None else sm.interval + 0.1 * (gap - sm.interval)
        sm.last_t = t
        events: list[AlertEvent] = []
        for value, ts, n in self._windows(sm, r, t):
            events += self._score(sm, value, ts, n, covered)
        if sm.drift is not None:
            events += self._drift(sm, r, t)
        if self.settings.fire_risk and r.hazard in _FIRE_HAZARDS:
            self._fire_risk(sm, r, t)
        return events if emit else []

    def _windows(self, sm: _SensorModel, r: Reading, t: float) -> list[tuple[float, datetime, int]]:
        """The model's input: one value per ``resolution_s`` window of event time, the
        mean of the sensor's readings in it, as (mean, time of its last reading, count).

        A window closes as soon as it holds the readings the sensor's interval lets it
        expect (a sensor reporting every ``resolution_s`` or slower: every reading at
        once), or when a reading of a later window shows it is over.
        """
        res = self.settings.resolution_s
        if res <= 0:
            return [(r.value, r.ts, 1)]
        closed: list[tuple[float, datetime, int]] = []
        window = int(t // res)
        if sm.w_n and window != sm.window:
            closed.append((sm.w_sum / sm.w_n, sm.w_ts or r.ts, sm.w_n))
            sm.w_sum, sm.w_n = 0.0, 0
        if not sm.w_n:
            sm.window = window
        sm.w_sum += r.value
        sm.w_n += 1
        sm.w_ts = r.ts
        expected = max(1, round(res / sm.interval)) if sm.interval else 1
        if sm.w_n >= expected:
            closed.append((sm.w_sum / sm.w_n, r.ts, sm.w_n))
            sm.w_sum, sm.w_n = 0.0, 0
        return closed

    def _score(
        self, sm: _SensorModel, value: float, ts: datetime, n: int, covered: bool
    ) -> list[AlertEvent]:
        """Score, then learn, one window's value; the anomaly alert changes it causes."""
        t = ts.timestamp()
        x = {"value": value, "t": t}
        minute = int(t // 60)
        inner = sm.model.detector
        model: AnomalyDetector = sm.model
        # The departure model keeps its own warm-up and learning discipline (the guard is
        # a pass-through for it), and works per minute: what it takes from its zone, and
        # what it tells the zone, change once a minute (on its first window).
        new_minute = False
        if isinstance(inner, DepartureDetector):
            model = inner
            new_minute = minute != sm.zone_minute
            if new_minute:
                sm.zone_minute = minute
                common, common_ctx = self._zone_movement(sm, t)
                if common is not None:
                    x["common"] = common
                if common_ctx is not None:
                    x["common_ctx"] = common_ctx
        try:
            score = model.score_one(x)
            if not 0.0 <= score <= 1.0:  # NaN included
                raise ValueError(f"score {score!r} outside [0, 1]")
            flagged = score >= self.threshold
            best = sm.scores.beaten_by(minute, score)
            why = model.explain(x) if flagged or best else None
            model.learn_one(x)
            # Once a minute, and while flagged every window (its neighbours' minutes close
            # seconds after its own). Movements towards danger: a shift's gases rising and
            # its oxygen falling are the zone moving the same way.
            if isinstance(inner, DepartureDetector) and (new_minute or flagged):
                z, zc = inner.towards()
                if new_minute and z is not None:
                    self._movement.setdefault(sm.zone_key, {})[sm.sensor_id] = (t, z, zc)
                # (the call records its own movement too, so it comes before `flagged`)
                if self._moves_with_others(sm, t, z, inner.episode_s) and flagged:
                    inner.absorb()  # the zone moves with it: a change of activity
                    flagged = False
            holding = model.flagging
        except Exception:
            self._failed(sm, ts, value)
            return []
        sm.failures = 0
        self.stats.scored += 1
        if flagged or best:
            row = self._row(sm, ts, value, score, why)
            if flagged:
                self._scores.append(row)
            if best:
                sm.scores.keep(minute, row, self._scores)
        if sm.hazard in _NO_ANOMALY:
            flagged = holding = False
        return self._anomaly(sm, ts, value, n, score, flagged and not covered, holding, why)

    def _zone_movement(self, sm: _SensorModel, t: float) -> tuple[float | None, float | None]:
        """The median movement, and the median level against the usual for the time, of
        the zone's other sensors (each towards danger, in its own spreads) in the last
        ``_MOVEMENT_S``; None for a sensor alone in its zone (or whose neighbours' usual
        is not known)."""
        zone = self._movement.get(sm.zone_key)
        if not zone:
            return None, None
        since = t - _MOVEMENT_S
        zs: list[float] = []
        zcs: list[float] = []
        for sid, (at, z, zc) in zone.items():
            if at >= since and sid != sm.sensor_id:
                zs.append(z)
                if zc is not None:
                    zcs.append(zc)
        return (
            statistics.median(zs) if zs else None,
            statistics.median(zcs) if zcs else None,
        )

    def _moves_with_others(
        self, sm: _SensorModel, t: float, z: float | None, episode_s: float
    ) -> bool:
        """Record whether ``sm`` is moving now (by ``_MOVING`` of its usual movements or
        more, and which way); do most of its zone's other sensors (or a third of its
        enterprise's) move the same way with it, within ``_TOGETHER_S`` — of now, or of
        any time since its departure began ``episode_s`` ago (a sensor that starts
        minutes before the others, held out of learning since, still moved with them)?

        Sensors that move together are following the work (a shift starting on a kind
        of day not seen before, a line switched on): that is for the limits to judge,
        not an anomaly of one sensor."""
        zone = self._peers.setdefault(sm.zone_key, {})
        ent = self._peers.setdefault(sm.enterprise_id, {})
        way = 0.0 if z is None or abs(z) < _MOVING else math.copysign(1.0, z)
        if way or sm.sensor_id not in zone:
            zone[sm.sensor_id] = ent[sm.sensor_id] = (t if way else -math.inf, way)
        if not way:
            return False
        since = t - _TOGETHER_S - episode_s
        for peers, share, least in ((zone, 0.5, 1), (ent, 1 / 3, 3)):
            others = len(peers) - 1
            moving = sum(1 for at, w in peers.values() if at >= since and w == way) - 1
            if others >= least and moving >= max(1.0, share * others):
                return True
        return False

    def _failed(self, sm: _SensorModel, ts: datetime, value: float) -> None:
        self.stats.errors += 1
        sm.failures += 1
        log.exception(
            "online model failed; reading skipped",
            sensor=sm.sensor_id,
            ts=ts.isoformat(),
            value=value,
            failures=sm.failures,
        )
        if sm.failures >= _RESET_AFTER_ERRORS:
            log.error("online model reset after repeated failures", sensor=sm.sensor_id)
            sm.model, sm.failures = self._new_model(sm.hazard), 0
            self.stats.resets += 1

    # --- anomaly alerts ----------------------------------------------------------------
    def _anomaly(
        self,
        sm: _SensorModel,
        ts: datetime,
        value: float,
        n: int,
        score: float,
        flagged: bool,
        holding: bool,
        why: Explanation | None,
    ) -> list[AlertEvent]:
        alarm = sm.alarm
        action = alarm.update(Severity.WARNING if flagged else None, not (flagged or holding), ts)
        if action is None:
            return []
        hz = self.catalogue[sm.hazard]
        if action is AlertAction.CLEAR:
            message = f"{hz.name_en} on {sm.sensor_id} back within what its model expects"
        else:
            reason = why.describe(hz.unit) if why is not None else "departure from its usual level"
            what = f"{self.settings.resolution_s:g}-s mean " if n > 1 else ""
            message = (
                f"{hz.name_en} {what}{value:.4g} {hz.unit} unusual for {sm.sensor_id} —"
                f" {reason} (anomaly score {score:.2f} ≥ {self.threshold:g})"
            )
        details: dict[str, Any] = {"source": f"model:{self.settings.detector}", "score": score}
        if why is not None:
            details |= {
                "feature": why.feature,
                "observed": why.observed,
                "expected_low": why.expected_low,
                "expected_high": why.expected_high,
                "unit": why.unit or hz.unit,
            }
        return [self._event(action, sm, AlertKind.ANOMALY, alarm, ts, value, message, "", details)]

    def _event(
        self,
        action: AlertAction,
        sm: _SensorModel,
        kind: AlertKind,
        alarm: AlarmState,
        ts: datetime,
        value: float,
        message: str,
        subject_suffix: str,
        details: dict[str, Any],
    ) -> AlertEvent:
        name = f"{kind.value}:{action.value}"
        self.stats.events[name] = self.stats.events.get(name, 0) + 1
        return AlertEvent(
            action=action,
            key=alarm.alert_key(f"{sm.sensor_id}{subject_suffix}", kind, ts),
            kind=kind,
            severity=Severity.WARNING,
            enterprise_id=sm.enterprise_id,
            sensor_id=sm.sensor_id,
            hazard=sm.hazard,
            ts=ts,
            value=round(value, 6),
            message=message,
            zone_id=sm.zone_key.split("/", 1)[1],
            details=details,
        )

    # --- calibration drift -------------------------------------------------------------
    def _drift(self, sm: _SensorModel, r: Reading, t: float) -> list[AlertEvent]:
        assert sm.drift is not None and sm.drift_alarm is not None
        finding = sm.drift.update(t, r.value)
        alarm = sm.drift_alarm
        unit = self.catalogue[sm.hazard].unit
        action: AlertAction | None = None
        message = ""
        details: dict[str, Any] = {"source": "model:drift"}
        if finding is not None and not alarm.is_open:
            action = alarm.update(Severity.WARNING, False, r.ts)
            sm.drift_reference = finding.baseline_before
            hours = (finding.t - finding.since_t) / 3600.0
            message = (
                f"{sm.sensor_id}: zero drifting — quiet level from {finding.baseline_before:.4g}"
                f" to {finding.baseline_now:.4g} {unit} over {hours:.0f} h"
                f" ({finding.rate_per_day / 24:+.3g} {unit}/h) — check the calibration"
            )
            details |= {
                "baseline_before": finding.baseline_before,
                "baseline_now": finding.baseline_now,
                "rate_per_day": finding.rate_per_day,
                "rate_per_hour": finding.rate_per_day / 24,
                "size": finding.baseline_now - finding.baseline_before,
                "since": datetime.fromtimestamp(finding.since_t, UTC).isoformat(),
            }
        elif alarm.is_open and sm.drift_reference is not None:
            base = sm.drift.baseline
            if base is not None and abs(base - sm.drift_reference) <= sm.drift.min_shift / 2:
                action = alarm.update(None, True, r.ts)
                message = f"{sm.sensor_id}: baseline back at {base:.4g} {unit} (recalibrated)"
                sm.drift_reference = None
        if action is None:
            return []
        return [
            self._event(
                action, sm, AlertKind.SENSOR_FAULT, alarm, r.ts, r.value, message, "/drift", details
            )
        ]

    # --- zone fire risk ----------------------------------------------------------------
    def _fire_risk(self, sm: _SensorModel, r: Reading, t: float) -> None:
        zone = self._zones.get(sm.zone_key)
        if zone is None:
            f = self.limits.fire
            zone = self._zones[sm.zone_key] = _Zone(
                ZoneFireRisk(
                    heat_rate_mid=f.combo_heat_c_per_min,
                    smoke_mid=f.combo_smoke,
                    co_rise_mid=f.combo_co_rise,
                    trend_s=f.combo_window_s,
                )
            )
        risk = zone.risk.update(sm.sensor_id, sm.hazard, t, r.value)
        # Sensors of a zone may arrive slightly out of order: a minute closes only forwards.
        last = zone.scores.minute
        minute = int(t // 60) if last is None else max(int(t // 60), last)
        score = min(max(risk, 0.0), 1.0)
        if zone.scores.beaten_by(minute, score):
            row = ScoreRecord(
                f"zone:{sm.zone_key}",
                r.ts,
                sm.enterprise_id,
                "fire_risk",
                score,
                None,
                None,
                None,
                ", ".join(f"{k} {v:.3g}" for k, v in zone.risk.explain().items()),
            )
            zone.scores.keep(minute, row, self._scores)

    # --- stored scores -------------------------------------------------------------------
    def _row(
        self, sm: _SensorModel, ts: datetime, value: float, score: float, why: Explanation | None
    ) -> ScoreRecord:
        return ScoreRecord(
            sm.sensor_id,
            ts,
            sm.enterprise_id,
            self.settings.detector,
            score,
            value,
            why.expected_low if why is not None and why.unit is None else None,
            why.expected_high if why is not None and why.unit is None else None,
            why.feature if why is not None else None,
        )

    def drain_scores(self) -> list[ScoreRecord]:
        """Score rows of the minutes closed (and the alerts opened) since the last call."""
        rows, self._scores = self._scores, []
        return rows

    # --- checkpoints ----------------------------------------------------------------------
    def enterprises(self) -> set[str]:
        return {sm.enterprise_id for sm in self._sensors.values()}

    def export_state(self, enterprise_id: str) -> bytes:
        """One enterprise's models, compact, for a checkpoint."""
        prefix = f"{enterprise_id}/"
        state = {
            "v": _STATE_VERSION,
            "detector": self.settings.detector,
            "params": self.settings.params,
            "resolution_s": self.settings.resolution_s,
            "sensors": {
                sid: sm for sid, sm in self._sensors.items() if sm.enterprise_id == enterprise_id
            },
            "zones": {k: z for k, z in self._zones.items() if k.startswith(prefix)},
            # what its zones' models last told each other (see _score)
            "movement": {k: v for k, v in self._movement.items() if k.startswith(prefix)},
            "peers": {
                k: v for k, v in self._peers.items() if k.startswith(prefix) or k == enterprise_id
            },
        }
        return zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)

    def import_state(self, enterprise_id: str, blob: bytes) -> bool:
        """Restore an enterprise exported by `export_state`; False (and nothing restored)
        if the checkpoint was made with another detector configuration."""
        self.drop_enterprise(enterprise_id)
        state = pickle.loads(zlib.decompress(blob))  # our own checkpoint, from our own database
        s = self.settings
        if (
            state.get("v") != _STATE_VERSION
            or state.get("detector") != s.detector
            or state.get("params") != s.params
            or state.get("resolution_s") != s.resolution_s
        ):
            log.warning(
                "model checkpoint from another configuration ignored; models start afresh",
                enterprise=enterprise_id,
                saved=state.get("detector"),
                current=s.detector,
            )
            return False
        for sid, sm in state["sensors"].items():
            sm.model.warmup = self._guard_warmup()  # the checkpoint's detector is this one
            sm.alarm.clear_hold_s = s.clear_hold_s
            self._sensors[sid] = sm
        self._zones.update(state["zones"])
        self._movement.update(state["movement"])
        self._peers.update(state["peers"])
        return True

    def drop_enterprise(self, enterprise_id: str) -> None:
        prefix = f"{enterprise_id}/"
        for sid in [sid for sid, sm in self._sensors.items() if sm.enterprise_id == enterprise_id]:
            del self._sensors[sid]
        for k in [k for k in self._zones if k.startswith(prefix)]:
            del self._zones[k]
        for table in (self._movement, self._peers):
            for k in [k for k in table if k.startswith(prefix) or k == enterprise_id]:
                del table[k]
