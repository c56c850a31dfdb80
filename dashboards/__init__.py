"""Grafana walls as code: the control room's dashboards, their provisioning, the push.

Four walls drill down from the country to one sensor — `national`, `region`,
`enterprise`, `sensor` — each built with the Grafana Foundation SDK (typed
dashboards, panels and variables; pinned, since its releases follow Grafana's
schema) and PostgreSQL queries that run on plain PostgreSQL and TimescaleDB alike.
`build` writes their JSON and Grafana's provisioning files; `push` puts the same
folder, data source and dashboards into a running Grafana over its HTTP API. The
limits drawn on exposure panels come from the limits catalogue the caller loaded.
"""

from dashboards.build import WALLS, build, datasource_model, render_dashboards
from dashboards.grafana import DATASOURCE_TYPE, DATASOURCE_UID
from dashboards.links import FOLDER_TITLE, FOLDER_UID

__all__ = [
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "WALLS",
    "build",
    "datasource_model",
    "render_dashboards",
]
