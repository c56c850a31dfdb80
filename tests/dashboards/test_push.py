"""`qorgau dashboards push` against a small real HTTP server that answers the few
endpoints it uses as Grafana's HTTP API documentation describes them (folders:
``GET /api/folders/:uid``, ``POST /api/folders``, ``PUT /api/folders/:uid``; data
sources: ``GET``/``PUT /api/datasources/uid/:uid``, ``POST /api/datasources``;
dashboards: ``POST /api/dashboards/db``), keeps what it is given and records every
request: method, path, authorisation and body are checked, and a second push
must leave one folder, one data source and the same dashboards."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dashboards import DATASOURCE_TYPE, DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID
from qorgau.cli import main

TOKEN = "glsa_test_token"
DATABASE = "postgresql://grafana_reader:s3cret@db.example:5433/qorgau?sslmode=disable"
WALL_UIDS = ["qorgau-enterprise", "qorgau-national", "qorgau-region", "qorgau-sensor"]


@dataclass
class Grafana:
    """What the fake Grafana holds and what it was asked."""

    authorization: str = f"Bearer {TOKEN}"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str, Any]] = field(default_factory=list)

    def handle(self, method: str, path: str, auth: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if auth != self.authorization:
            return 401, {"message": "Unauthorized"}
        parts = path.split("/")
        if path.startswith("/api/folders/") and len(parts) == 4:
            uid = parts[3]
            if uid not in self.folders:
                return 404, {"message": "folder not found", "status": "not-found"}
            if method == "GET":
                return 200, self.folders[uid]
            if method == "PUT":
                if (
                    not body.get("overwrite")
                    and body.get("version") != self.folders[uid]["version"]
                ):
                    return 412, {"message": "The folder has been changed by someone else",
                                 "status": "version-mismatch"}  # fmt: skip
                self.folders[uid] |= {
                    "title": body["title"],
                    "version": self.folders[uid]["version"] + 1,
                }
                return 200, self.folders[uid]
        if path == "/api/folders" and method == "POST":
            if body["uid"] in self.folders:
                return 412, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {"id": len(self.folders) + 1, "uid": body["uid"],
                                         "title": body["title"], "version": 1}  # fmt: skip
            return 200, self.folders[body["uid"]]
        if path.startswith("/api/datasources/uid/"):
            uid = parts[4]
            if uid not in self.datasources:
                return 404, {"message": "Data source not found"}
            if method == "GET":
                return 200, self.datasources[uid]
            if method == "PUT":
                if body.get("uid") not in (None, uid):
                    return 400, {"message": "uid in the payload does not match the URL"}
                self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
                return 200, {"datasource": self.datasources[uid], "id": self.datasources[uid]["id"],
                             "message": "Datasource updated", "name": body["name"]}  # fmt: skip
        if path == "/api/datasources" and method == "POST":
            if any(d["name"] == body["name"] for d in self.datasources.values()):
                return 409, {"message": "data source with the same name already exists"}
            self.datasources[body["uid"]] = {**body, "id": len(self.datasources) + 1}
            return 200, {"datasource": self.datasources[body["uid"]], "id": len(self.datasources),
                         "message": "Datasource added", "name": body["name"]}  # fmt: skip
        if path == "/api/dashboards/db" and method == "POST":
            dash = body["dashboard"]
            uid = dash["uid"]
            if uid in self.dashboards and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists",
                             "status": "name-exists"}  # fmt: skip
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {"dashboard": dash, "folderUid": body["folderUid"],
                                    "version": version}  # fmt: skip
            return 200, {"id": 1, "uid": uid, "url": f"/d/{uid}/{uid}", "status": "success",
                         "version": version, "slug": uid}  # fmt: skip
        return 404, {"message": "Not found"}


@pytest.fixture
def grafana() -> Iterator[tuple[Grafana, str]]:
    state = Grafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, answer = state.handle(
                self.command, self.path, self.headers.get("Authorization", ""), body
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in ("QORGAU_GRAFANA_USER", "QORGAU_GRAFANA_PASSWORD", "QORGAU_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QORGAU_STATE_DIR", str(tmp_path / "state"))  # no local stack here
    monkeypatch.setenv("QORGAU_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("QORGAU_GRAFANA_DATABASE_URL", DATABASE)
    return monkeypatch


def _calls(state: Grafana) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in state.requests]


def test_push_creates_folder_datasource_and_walls_then_updates_them_in_place(
    grafana: tuple[Grafana, str], env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = grafana
    assert main(["dashboards", "push", url]) == 0
    walls = [("POST", "/api/dashboards/db")] * 4
    assert _calls(state) == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("POST", "/api/datasources"),
        *walls,
    ]
    assert {auth for _, _, auth, _ in state.requests} == {f"Bearer {TOKEN}"}
    assert state.requests[1][3] == {"uid": FOLDER_UID, "title": FOLDER_TITLE}
    source = state.requests[3][3]
    assert (source["uid"], source["type"], source["access"]) == (
        DATASOURCE_UID,
        DATASOURCE_TYPE,
        "proxy",
    )
    assert (source["url"], source["user"]) == ("db.example:5433", "grafana_reader")
    assert source["jsonData"]["database"] == "qorgau"
    assert source["jsonData"]["sslmode"] == "disable"
    assert source["secureJsonData"] == {"password": "s3cret"}
    for _, _, _, body in state.requests[4:]:
        assert set(body) == {"dashboard", "folderUid", "overwrite", "message"}
        assert body["folderUid"] == FOLDER_UID and body["overwrite"] is True
        assert "id" not in body["dashboard"]  # a new or the same dashboard, found by uid
    assert sorted(state.dashboards) == WALL_UIDS
    assert "folder: created; data source: created" in capsys.readouterr().out

    state.requests.clear()
    assert main(["dashboards", "push", url]) == 0
    assert _calls(state) == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}"),
        *walls,
    ]
    assert state.requests[2][3]["uid"] == DATASOURCE_UID
    assert len(state.folders) == 1 and len(state.datasources) == 1
    assert sorted(state.dashboards) == WALL_UIDS
    assert {d["version"] for d in state.dashboards.values()} == {2}


def test_a_renamed_folder_gets_its_title_back(
    grafana: tuple[Grafana, str], env: pytest.MonkeyPatch
) -> None:
    state, url = grafana
    state.folders[FOLDER_UID] = {"id": 7, "uid": FOLDER_UID, "title": "Old", "version": 3}
    # --no-datasource: the data source must exist already; here it does not.
    assert main(["dashboards", "push", url, "--no-datasource"]) == 2
    assert state.requests[1][:2] == ("PUT", f"/api/folders/{FOLDER_UID}")
    assert state.requests[1][3] == {"title": FOLDER_TITLE, "overwrite": True}
    state.datasources[DATASOURCE_UID] = {"id": 1, "uid": DATASOURCE_UID, "name": "x"}
    state.requests.clear()
    assert main(["dashboards", "push", url, "--no-datasource"]) == 0
    assert _calls(state)[:2] == [
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
    ]  # the title is right now, and the data source is left alone
    assert state.datasources[DATASOURCE_UID]["name"] == "x"


def test_user_and_password_sign_in_with_basic_auth(
    grafana: tuple[Grafana, str], env: pytest.MonkeyPatch
) -> None:
    state, url = grafana
    env.delenv("QORGAU_GRAFANA_TOKEN")
    env.setenv("QORGAU_GRAFANA_USER", "admin")
    env.setenv("QORGAU_GRAFANA_PASSWORD", "pa:ss")
    state.authorization = "Basic " + base64.b64encode(b"admin:pa:ss").decode()
    assert main(["dashboards", "push", url]) == 0
    assert {auth for _, _, auth, _ in state.requests} == {state.authorization}


def test_refused_credentials_exit_2_with_what_to_do(
    grafana: tuple[Grafana, str], env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = grafana
    state.authorization = "Bearer another"
    assert main(["dashboards", "push", url]) == 2
    err = capsys.readouterr().err
    assert "401" in err and "QORGAU_GRAFANA_TOKEN" in err and "Traceback" not in err
    assert len(state.requests) == 1  # stopped at the first refusal


def test_an_unreachable_grafana_exits_2(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dashboards", "push", _nobody_listens(), "--timeout", "2"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach Grafana" in err and "Traceback" not in err


def _nobody_listens() -> str:
    """A local address nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_credentials_in_the_url_are_refused(env: pytest.MonkeyPatch) -> None:
    assert main(["dashboards", "push", "http://admin:admin@127.0.0.1:3000"]) == 1
