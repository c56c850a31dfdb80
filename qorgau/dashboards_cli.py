"""``qorgau dashboards``: build the Grafana walls' files, or push them into a Grafana.

    qorgau dashboards build deploy/grafana
    QORGAU_GRAFANA_TOKEN=glsa_... qorgau dashboards push https://grafana.example.kz

``build DIR`` writes ``DIR/dashboards/*.json`` and ``DIR/provisioning/...`` (what
docker-compose.yml mounts into Grafana), from the limits catalogue in use
(QORGAU_LIMITS_PATH). ``push URL`` creates or updates the Qorgau folder, the
PostgreSQL data source (from QORGAU_GRAFANA_DATABASE_URL, else QORGAU_DATABASE_URL:
the database as Grafana reaches it) and every wall, as often as you like. It signs in
with QORGAU_GRAFANA_TOKEN (a service account token), or QORGAU_GRAFANA_USER and
QORGAU_GRAFANA_PASSWORD: secrets come from the environment, not the command line.
A Grafana that cannot be reached or refuses us exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.catalogue import load_catalogue
from core.errors import QorgauError
from core.limits import load_limits
from core.settings import Settings

__all__ = ["add_parser", "cmd_dashboards"]

PUSH_FAILED = 2


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboards",
        help="Grafana walls: build their JSON and provisioning files, or push them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ds = p.add_subparsers(dest="dashboards_command", required=True, metavar="DASHBOARDS_COMMAND")
    b = ds.add_parser("build", help="write the walls' JSON and Grafana provisioning files")
    b.add_argument("dir", type=Path, help="output folder, e.g. deploy/grafana")
    u = ds.add_parser("push", help="create or update folder, data source and walls in a Grafana")
    u.add_argument("url", help="Grafana's base URL, e.g. http://127.0.0.1:3000")
    u.add_argument(
        "--no-datasource",
        action="store_true",
        help="leave the data source as it is (it must exist with uid qorgau-pg)",
    )
    u.add_argument("--timeout", type=float, default=10.0, help="seconds per request")


def _credential(settings: Settings) -> str | tuple[str, str]:
    if settings.grafana_token is not None:
        return settings.grafana_token.get_secret_value()
    if settings.grafana_user and settings.grafana_password is not None:
        return (settings.grafana_user, settings.grafana_password.get_secret_value())
    raise QorgauError(
        "set QORGAU_GRAFANA_TOKEN (a service account token) or QORGAU_GRAFANA_USER and"
        " QORGAU_GRAFANA_PASSWORD"
    )


def cmd_dashboards(settings: Settings, args: argparse.Namespace) -> int:
    from dashboards import build, render_dashboards

    catalogue = load_catalogue(settings.catalogue_path)
    limits = load_limits(settings.limits_path, catalogue)
    if args.dashboards_command == "build":
        for path in build(args.dir, catalogue, limits):
            print(path)
        return 0

    from grafana_client.api import GrafanaApi

    from dashboards.push import PushError, datasource_from_url, push

    parts = urlsplit(args.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise QorgauError(f"not an http(s) URL: {args.url}")
    if parts.username or parts.password:
        raise QorgauError(
            "put no credentials in the URL (they would show in the process list):"
            " use QORGAU_GRAFANA_TOKEN or QORGAU_GRAFANA_USER/QORGAU_GRAFANA_PASSWORD"
        )
    credential = _credential(settings)
    try:
        source = None
        if not args.no_datasource:
            dsn = settings.grafana_database_url or settings.database_url
            source = datasource_from_url(dsn) if dsn else None
        api = GrafanaApi.from_url(args.url, credential=credential, timeout=args.timeout)
        result = push(api, args.url, render_dashboards(catalogue, limits), source)
    except PushError as exc:
        print(f"qorgau dashboards push: {exc}", file=sys.stderr)
        return PUSH_FAILED
    print(f"folder: {result.folder}; data source: {result.datasource}")
    for url in result.dashboards:
        print(f"  {url}")
    return 0
