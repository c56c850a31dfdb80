"""A major incident on request (`qorgau incident`): the simulator's readings then cross the
critical limits, and the real detection pipeline raises the critical alarm a newcomer
asked for; the request travels through the state directory to a running simulator."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from core.alarms import AlertEvent
from core.catalogue import load_catalogue
from core.limits import load_limits
from core.reference import load_reference
from edge.simulator import IncidentRequest, Simulator
from stream.detection.detector import Detector
from stream.replay import ReplaySummary, load_readings
from tests.edge.test_edge import MOSQUITTO, Broker

CATALOGUE = load_catalogue()
LIMITS = load_limits(None, CATALOGUE)
REFERENCE = load_reference(CATALOGUE)
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _simulator(enterprise: str, port: int = 1, requests: Path | None = None) -> Simulator:
    found = REFERENCE.enterprise(enterprise)
    assert found is not None
    return Simulator(
        [found], CATALOGUE, "127.0.0.1", port, incident_every_s=0, limits=LIMITS,
        requests_dir=requests,
    )  # fmt: skip


def _alerts_after(
    sim: Simulator, request: IncidentRequest, tmp_path: Path
) -> tuple[str, list[AlertEvent]]:
    """Twelve minutes of the simulator's readings, the incident started at minute 5,
    through the real detection pipeline; what was started and the alarm changes
    (open and escalate) it made."""
    lines, answer = [], ""
    for second in range(12 * 60):
        t = T0 + timedelta(seconds=second)
        if second == 5 * 60:
            answer = sim.start_major_incident(request, t)
        for s in sim.sensors:
            if second % int(s.sensor.interval_s) == 0:
                reading = {**s.reading(t), "enterprise_id": s.sensor.enterprise_id}
                lines.append(orjson.dumps({**reading, "sensor_id": s.sensor.id}))
    detector = Detector(CATALOGUE, LIMITS, REFERENCE)
    summary = ReplaySummary()
    events = []
    for reading in load_readings(iter(lines), CATALOGUE, summary):
        events += [e for e in detector.process(reading) if e.action in ("open", "escalate")]
    assert summary.lines == len(lines) and not summary.rejected  # every line parsed
    return answer, events


def test_a_gas_leak_on_request_raises_a_critical_alarm(tmp_path: Path) -> None:
    answer, alerts = _alerts_after(_simulator("E001"), IncidentRequest("E001"), tmp_path)
    assert answer.startswith("gas leak at E001-S01 (co)") and "critical limit 100 mg/m3" in answer
    critical = [a for a in alerts if a.severity == "critical"]
    assert [(a.kind, a.sensor_id) for a in critical] == [("threshold", "E001-S01")]
    assert timedelta(0) < critical[0].ts - (T0 + timedelta(minutes=5)) < timedelta(seconds=60)


def test_a_fire_on_request_raises_a_critical_fire_alarm(tmp_path: Path) -> None:
    answer, alerts = _alerts_after(_simulator("E004"), IncidentRequest("E004", "fire"), tmp_path)
    assert answer.startswith("fire in zone E004-Z01")
    fire = [a for a in alerts if a.kind == "fire" and a.severity == "critical"]
    assert fire and fire[0].ts - (T0 + timedelta(minutes=5)) < timedelta(seconds=90), alerts


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (IncidentRequest("E999"), "no simulated sensors"),
        (IncidentRequest("E001", zone_id="E001-Z99"), "no simulated sensors"),
        (IncidentRequest("E001", sensor_id="E002-S01"), "no gas sensor"),
    ],
)
def test_requests_for_what_is_not_simulated_are_refused(
    request_: IncidentRequest, why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        _simulator("E001").start_major_incident(request_, T0)


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b'{"kind": "gas"}', b'{"enterprise_id": 7}', b'{"enterprise_id": "E001",'
     b' "kind": "flood"}', b'{"enterprise_id": "E001", "zone_id": ["x"]}', b"\xff\xfe"],
)  # fmt: skip
def test_malformed_request_files_are_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        IncidentRequest.from_json(raw)


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto not installed")
def test_qorgau_incident_reaches_a_running_simulator_and_says_what_started(
    tmp_path: Path,
) -> None:
    broker = Broker(tmp_path)
    state = tmp_path / "state"
    requests = state / "simulate" / "requests"
    requests.mkdir(parents=True)
    sim = _simulator("E001", broker.port, requests)
    thread = threading.Thread(target=sim.run)
    thread.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    env["QORGAU_STATE_DIR"] = str(state)

    def incident(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "qorgau", "incident", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    try:
        asked = incident("E001")
        refused = incident("E001", "--zone", "E001-Z99")
        # A bad file dropped by hand is answered too, and does not stop the simulator.
        (requests / "bad.json").write_bytes(b"{not json")
        again = incident("E001", "--kind", "fire")
    finally:
        sim.stop()
        thread.join(10)
        broker.stop()
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("E001: gas leak at E001-S01 (co): rising to 150 mg/m3")
    assert refused.returncode == 1 and "no simulated sensors" in refused.stderr
    assert again.returncode == 0 and "fire in zone" in again.stdout, again.stderr
    assert (requests / "bad.done").read_text().startswith("refused:")
    assert not list(requests.glob("*.json"))
    assert any(i.kind == "gas_leak" for s in sim.sensors for i in s.profile.incidents)


def test_without_a_simulator_it_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    env["QORGAU_STATE_DIR"] = str(tmp_path / "nothing-here")
    r = subprocess.run(
        [sys.executable, "-m", "qorgau", "incident", "E001"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1 and "start `qorgau demo`" in r.stderr
