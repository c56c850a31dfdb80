"""Put the walls into a running Grafana over its HTTP API, idempotently.

For deployments where Grafana is not provisioned from files (a shared Grafana, a
managed one). With ``grafana-client``, using the documented endpoints:

1. the folder: ``GET /api/folders/:uid``; if missing ``POST /api/folders``
   ``{uid, title}``; if its title differs ``PUT /api/folders/:uid``
   ``{title, overwrite: true}``;
2. the data source (when its connection is given): ``GET /api/datasources/uid/:uid``,
   then ``POST /api/datasources`` (missing) or ``PUT /api/datasources/uid/:uid``;
   without a connection it must already exist;
3. every wall: ``POST /api/dashboards/db`` ``{dashboard, folderUid, overwrite: true,
   message}`` — Grafana updates the dashboard with that uid or creates it.

Pushing again changes nothing but the dashboards' version counters: no duplicate
folder, data source or dashboard. Failures raise `PushError` with what to do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaUnauthorizedError,
)

from core.errors import QorgauError
from dashboards.build import datasource_model
from dashboards.grafana import DATASOURCE_UID
from dashboards.links import FOLDER_TITLE, FOLDER_UID

__all__ = ["PushError", "PushResult", "datasource_from_url", "push"]

MESSAGE = "qorgau dashboards push"


class PushError(QorgauError):
    """Grafana could not be reached, refused us, or lacks what the walls need."""


@dataclass(slots=True)
class PushResult:
    folder: str = "unchanged"  # created | renamed | unchanged
    datasource: str = "unchanged"  # created | updated | exists
    dashboards: list[str] = field(default_factory=list)  # their URLs in Grafana


def datasource_from_url(url: str) -> dict[str, Any]:
    """The data source for a libpq URL ``postgresql://user:password@host:port/db?sslmode=``
    as Grafana reaches the database (``sslmode`` defaults to ``require``)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.hostname:
        raise PushError(f"not a postgresql:// URL with a host: {parts.scheme}://{parts.hostname}")
    database = unquote(parts.path.lstrip("/"))
    if not database or not parts.username:
        raise PushError("the database URL needs a user and a database name")
    sslmode = parse_qs(parts.query).get("sslmode", ["require"])[0]
    return datasource_model(
        host=f"{parts.hostname}:{parts.port or 5432}",
        database=database,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        sslmode=sslmode,
    )


def _status(exc: GrafanaException) -> int:
    return int(exc.status_code or 0)


def _explain(exc: Exception, url: str) -> PushError:
    if isinstance(exc, GrafanaUnauthorizedError):
        return PushError(
            f"Grafana at {url} refused the credentials (401): set QORGAU_GRAFANA_TOKEN"
            " (a service account token) or QORGAU_GRAFANA_USER and QORGAU_GRAFANA_PASSWORD"
        )
    if isinstance(exc, GrafanaException) and _status(exc) == 403:
        return PushError(
            f"Grafana at {url} does not let this account do that (403): it needs the Editor"
            " role for folders and dashboards and Admin for the data source"
        )
    if isinstance(exc, GrafanaException) and _status(exc) != 0:
        return PushError(f"Grafana at {url} answered: {exc.message}")
    return PushError(f"cannot reach Grafana at {url}: {exc}")


def _folder(api: GrafanaApi) -> str:
    try:
        folder = api.folder.get_folder(FOLDER_UID)
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"
    if folder.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        return "renamed"
    return "unchanged"


def _datasource(api: GrafanaApi, model: Mapping[str, Any] | None) -> str:
    try:
        api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except GrafanaClientError as exc:
        if _status(exc) != 404:
            raise
        if model is None:
            raise PushError(
                f"Grafana has no data source {DATASOURCE_UID!r}: give the database as Grafana"
                " reaches it in QORGAU_GRAFANA_DATABASE_URL (or QORGAU_DATABASE_URL)"
            ) from None
        api.datasource.create_datasource(dict(model))
        return "created"
    if model is None:
        return "exists"
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, dict(model))
    return "updated"


def push(
    api: GrafanaApi,
    url: str,
    walls: Mapping[str, Mapping[str, Any]],
    datasource: Mapping[str, Any] | None,
) -> PushResult:
    """Folder, data source (created or updated when ``datasource`` is given) and every
    wall of ``walls`` (by uid) into the Grafana ``api`` talks to (``url`` for messages)."""
    result = PushResult()
    try:
        result.folder = _folder(api)
        result.datasource = _datasource(api, datasource)
        for uid in sorted(walls):
            body = {
                "dashboard": dict(walls[uid]),
                "folderUid": FOLDER_UID,
                "overwrite": True,
                "message": MESSAGE,
            }
            answer = api.dashboard.update_dashboard(body)
            result.dashboards.append(str(answer.get("url", uid)))
    except (GrafanaException, niquests.exceptions.RequestException) as exc:
        raise _explain(exc, url) from None
    return result
