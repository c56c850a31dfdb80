"""The committed walls are what the code generates, byte for byte, and the provisioning
files are valid YAML that name the data source the walls query."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from core.catalogue import load_catalogue
from core.limits import load_limits
from dashboards import DATASOURCE_TYPE, DATASOURCE_UID, FOLDER_UID, build
from dashboards.build import DASHBOARDS_PATH, DATASOURCE_ENV

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "grafana"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_the_committed_walls_regenerate_byte_identical(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    build(tmp_path, catalogue, load_limits(None, catalogue))
    fresh, committed = _files(tmp_path), _files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run: qorgau dashboards build deploy/grafana"
    for name, data in fresh.items():
        assert committed[name] == data, (
            f"{name} is stale: run qorgau dashboards build deploy/grafana"
        )


def test_a_second_build_changes_nothing(tmp_path: Path) -> None:
    catalogue = load_catalogue()
    limits = load_limits(None, catalogue)
    build(tmp_path, catalogue, limits)
    first = _files(tmp_path)
    build(tmp_path, catalogue, limits)
    assert _files(tmp_path) == first


def _walls() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((COMMITTED / "dashboards").glob("*.json"))]


def _datasource_refs(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.append(node["datasource"])
        for value in node.values():
            found += _datasource_refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _datasource_refs(value)
    return found


def test_provisioning_names_the_datasource_every_wall_uses() -> None:
    doc = yaml.safe_load((COMMITTED / "provisioning" / "datasources" / "qorgau.yaml").read_text())
    assert doc["apiVersion"] == 1
    (source,) = doc["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert source["jsonData"]["timescaledb"] is False  # the walls' SQL is plain PostgreSQL
    # The connection comes from Grafana's environment, never a secret in the file.
    assert source["secureJsonData"]["password"] == f"${{{DATASOURCE_ENV['password']}}}"
    assert source["url"] == f"${{{DATASOURCE_ENV['host']}}}"
    refs = [ref for wall in _walls() for ref in _datasource_refs(wall)]
    assert refs and all(ref == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID} for ref in refs)


def test_provisioning_serves_the_walls_from_their_folder() -> None:
    doc = yaml.safe_load((COMMITTED / "provisioning" / "dashboards" / "qorgau.yaml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["folderUid"] == FOLDER_UID
    assert provider["options"]["path"] == DASHBOARDS_PATH
    assert provider["allowUiUpdates"] is False  # the JSON in git is the truth


def test_walls_have_stable_unique_uids_and_link_to_each_other() -> None:
    walls = _walls()
    uids = [w["uid"] for w in walls]
    assert sorted(uids) == [
        "qorgau-enterprise",
        "qorgau-national",
        "qorgau-region",
        "qorgau-sensor",
    ]
    for wall in walls:
        assert "id" not in wall and "version" not in wall  # nothing that changes per push
        assert all(p["id"] == i for i, p in enumerate(wall["panels"], start=1))
        (dropdown,) = wall["links"]
        assert dropdown["type"] == "dashboards" and dropdown["tags"] == ["qorgau"]
        assert dropdown["keepTime"] and dropdown["includeVars"]
        text = json.dumps(wall)
        for target in ("qorgau-region", "qorgau-enterprise", "qorgau-sensor"):
            if target in text and target != wall["uid"]:
                assert f"/d/{target}/" in text
