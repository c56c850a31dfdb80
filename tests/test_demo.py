"""The README's demo command, as a newcomer runs it: embedded everything, then Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion


def test_demo_shows_readings_tells_a_person_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAU_")}
    env.update(QORGAU_STATE_DIR=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    out = tmp_path / "demo.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "qorgau", "demo", "--incident-every", "0"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    started = time.monotonic()
    descendants: list[psutil.Process] = []
    try:
        api = password = None
        while time.monotonic() - started < 60 and password is None:
            assert proc.poll() is None, out.read_text()
            m = re.search(r"API\s+(http://\S+)/docs", out.read_text())
            api = m.group(1) if m else None
            # The demo prints how to sign in (the password is kept in the state directory).
            m = re.search(r"Sign in\s+admin / (\S+)", out.read_text())
            password = m.group(1) if m else None
            time.sleep(0.2)
        assert api and password, out.read_text()
        assert (tmp_path / "state" / "demo-password").read_text().strip() == password
        token = httpx.post(
            f"{api}/api/v1/login/access-token",
            data={"username": "officer.e001", "password": password},
            timeout=10,
        )
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        descendants = psutil.Process(proc.pid).children(recursive=True)
        assert len(descendants) >= 6  # brokers, bridge, worker, api, simulator
        points: list[object] = []
        while time.monotonic() - started < 60 and not points:
            r = httpx.get(f"{api}/api/v1/sensors/E001-S01/readings", headers=auth, timeout=5)
            assert r.status_code == 200, r.text
            points = r.json()["points"]
            time.sleep(0.5)
        assert points, "no reading reached the API within a minute"
        # The safety officer of E001 sees their enterprise only.
        body = httpx.get(f"{api}/api/v1/enterprises", headers=auth, timeout=5).json()
        assert [e["id"] for e in body] == ["E001"]
        assert httpx.get(f"{api}/api/v1/enterprises", timeout=5).status_code == 401
        # From another shell in the same directory, the commands find the running stack.
        users = subprocess.run(
            [sys.executable, "-m", "qorgau", "users", "list"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert users.returncode == 0 and "officer.e001" in users.stdout, users.stderr
        devices = subprocess.run(
            [sys.executable, "-m", "qorgau", "devices", "list", "--enterprise", "E001"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert devices.returncode == 0 and "E001-S01" in devices.stdout, devices.stderr
        _a_critical_reading_reaches_a_person(tmp_path, env, out)
        # Every simulated sensor connects as itself; nobody connects without an identity.
        s01 = next(line for line in devices.stdout.splitlines() if line.startswith("E001-S01 "))
        assert "sensor" in s01 and "active" in s01
        broker_log = (tmp_path / "state" / "logs" / "mqtt-broker.log").read_text()
        assert "as E001-S01 " in broker_log and "u'E001-S01'" in broker_log
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0, out.read_text()
    assert "stopped; nothing left running." in out.read_text()
    time.sleep(0.5)
    alive = [p for p in descendants if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]
    # Nothing still serves the stack's state directory (embedded PostgreSQL included).
    leftover = [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if p.info["status"] != psutil.STATUS_ZOMBIE
        and str(tmp_path) in " ".join(p.info["cmdline"] or [])
    ]
    assert leftover == []


def _a_critical_reading_reaches_a_person(tmp_path: Path, env: dict[str, str], out: Path) -> None:
    """A gateway added from another shell publishes a critical CO reading for E001; the
    demo's console says who was told, and the e-mail is in the demo's inbox page."""
    secrets = tmp_path / "gw.json"
    added = subprocess.run(
        [sys.executable, "-m", "qorgau", "devices", "add-gateway", "gw-demo-test",
         "--enterprise", "E001", "--sensor", "E001-S01", "--secrets-file", str(secrets)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    password = orjson.loads(secrets.read_bytes())["gw-demo-test"]
    mqtt_url = re.search(r"MQTT broker\s+mqtt://([\d.]+):(\d+)", out.read_text())
    inbox = re.search(r"Inbox\s+(http://\S+)", out.read_text())
    assert mqtt_url and inbox, out.read_text()
    gw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-demo-test")
    gw.username_pw_set("gw-demo-test", password)
    gw.connect(mqtt_url.group(1), int(mqtt_url.group(2)))
    gw.loop_start()
    try:
        ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        reading = {"ts": ts, "hazard": "co", "value": 150.0, "unit": "mg/m3", "seq": 1}
        info = gw.publish("qorgau/v1/E001/sensors/E001-S01/reading", orjson.dumps(reading), qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published()
    finally:
        gw.loop_stop()
        gw.disconnect()
    told = "told Safety officer, Nura Steel Works by e-mail: critical threshold co at E001"
    deadline = time.monotonic() + 60
    while told not in out.read_text():
        assert time.monotonic() < deadline, out.read_text()[-3000:]
        time.sleep(0.5)
    sent = re.findall(r"notifications sent: (\d+) of (\d+)", out.read_text())
    while not sent or int(sent[-1][0]) == 0:
        assert time.monotonic() < deadline, out.read_text()[-3000:]
        time.sleep(0.5)
        sent = re.findall(r"notifications sent: (\d+) of (\d+)", out.read_text())
    page = httpx.get(inbox.group(1), timeout=5)
    assert page.status_code == 200
    assert "officer.e001@qorgau.example" in page.text
    assert "Оксид углерода" in page.text  # the subject, in the officer's language
