"""The walls' identities and how they link to each other.

Stable uids (a bookmark or a link from another wall keeps working after every
push); every wall starts from `dashboard`, which gives it the same tags, time,
refresh and a drop-down of the other walls that keeps the time range and the
variables they share.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.models import dashboard as dash_m

__all__ = [
    "ENTERPRISE_SLUG",
    "ENTERPRISE_UID",
    "FOLDER_TITLE",
    "FOLDER_UID",
    "REGION_SLUG",
    "REGION_UID",
    "SENSOR_SLUG",
    "SENSOR_UID",
    "TAG",
    "TO_ENTERPRISE",
    "TO_REGION",
    "TO_SENSOR",
    "Link",
    "dashboard",
]

TAG = "qorgau"
FOLDER_UID = "qorgau"
FOLDER_TITLE = "Qorgau"
REGION_UID, REGION_SLUG = "qorgau-region", "qorgau-region"
ENTERPRISE_UID, ENTERPRISE_SLUG = "qorgau-enterprise", "qorgau-enterprise"
SENSOR_UID, SENSOR_SLUG = "qorgau-sensor", "qorgau-sensor"


class Link:
    """A data link to another wall, carrying the time range and named fields as variables."""

    def __init__(self, title: str, uid: str, slug: str, fields: dict[str, str]) -> None:
        params = "&".join(f"var-{var}=${{__data.fields.{field}}}" for var, field in fields.items())
        self.title = title
        self.url = f"/d/{uid}/{slug}?{params}&${{__url_time_range}}"

    def to_json(self) -> dict[str, object]:
        return {"title": self.title, "url": self.url}


# The links from a row of a table or a point of a map to the wall of its region, enterprise
# or sensor (the row's fields named as the variables they set).
TO_REGION = Link("Region wall", REGION_UID, REGION_SLUG, {"region": "region_id"})
TO_ENTERPRISE = Link(
    "Enterprise wall",
    ENTERPRISE_UID,
    ENTERPRISE_SLUG,
    {"region": "region_id", "enterprise": "enterprise_id"},
)
TO_SENSOR = Link(
    "Sensor wall", SENSOR_UID, SENSOR_SLUG, {"enterprise": "enterprise_id", "sensor": "sensor"}
)


def dashboard(uid: str, title: str, level: str) -> dash_b.Dashboard:
    """A wall with Qorgau's common settings; ``level`` is its tag below ``qorgau``."""
    return (
        dash_b.Dashboard(title)
        .uid(uid)
        .tags([TAG, level])
        .timezone("browser")
        .time("now-6h", "now")
        .refresh("30s")
        .readonly()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .link(
            dash_b.DashboardLink("Qorgau walls")
            .type(dash_m.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
