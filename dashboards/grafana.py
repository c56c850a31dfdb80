"""Small, typed glue over the Grafana Foundation SDK for Qorgau's walls.

The SDK (``grafana-foundation-sdk``, pinned) types dashboards, panels, field
configs, variables and links, but has no query model for the PostgreSQL data
source: `SQL` is that model (``rawSql``, ``format``, ``refId``, as Grafana's
own query editor saves it in code mode). The helpers below give every panel
of a kind the same settings (data source, legend, state colours and words), so
a dashboard module only says what a panel shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from grafana_foundation_sdk.builders import barchart, stat, statetimeline, table
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import geomap as geomap_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog import builder as cog_builder
from grafana_foundation_sdk.cog import variants as cog_variants
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m
from grafana_foundation_sdk.models import geomap as geomap_m

from dashboards.links import Link

__all__ = [
    "DATASOURCE",
    "DATASOURCE_TYPE",
    "DATASOURCE_UID",
    "SQL",
    "barchart_panel",
    "geomap_panel",
    "query_variable",
    "row",
    "stat_panel",
    "state_mappings",
    "state_timeline_panel",
    "table_panel",
    "timeseries_panel",
]

DATASOURCE_UID = "qorgau-pg"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE = common.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_UID)

Format = Literal["table", "time_series"]

# Alarm state as a number (so state timelines, maps and tables colour it), always shown
# with its word as well: colour is never the only signal.
STATE_WORDS = {0: ("OK", "green"), 1: ("warning", "orange"), 2: ("critical", "red")}


class _SQLQuery(cog_variants.Dataquery):
    """The PostgreSQL data source's query, as its editor saves it in code mode."""

    def __init__(self, sql: str, ref_id: str, fmt: Format) -> None:
        self.sql = sql
        self.ref_id = ref_id
        self.fmt = fmt

    def to_json(self) -> dict[str, object]:
        return {
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID},
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.sql,
            "refId": self.ref_id,
        }


class SQL(cog_builder.Builder[cog_variants.Dataquery]):
    """A panel's SQL query; ``fmt`` is ``table`` or ``time_series`` (a ``time`` column,
    rows in time order, an optional ``metric`` column naming each series)."""

    def __init__(self, sql: str, *, ref_id: str = "A", fmt: Format = "table") -> None:
        self.query = _SQLQuery(sql.strip(), ref_id, fmt)

    def build(self) -> cog_variants.Dataquery:
        return self.query


def state_mappings() -> list[dash_m.ValueMapping]:
    return [
        dash_m.ValueMap(
            options={
                str(code): dash_m.ValueMappingResult(text=word, color=colour, index=code)
                for code, (word, colour) in STATE_WORDS.items()
            }
        )
    ]


def _state_thresholds() -> dash_b.ThresholdsConfig:
    return (
        dash_b.ThresholdsConfig()
        .mode(dash_m.ThresholdsMode.ABSOLUTE)
        .steps(
            [
                dash_m.Threshold(value=None, color="green"),
                dash_m.Threshold(value=1, color="orange"),
                dash_m.Threshold(value=2, color="red"),
            ]
        )
    )


def _thresholds(red_from: float | None) -> dash_b.ThresholdsConfig:
    steps = [dash_m.Threshold(value=None, color="green")]
    if red_from is not None:
        steps.append(dash_m.Threshold(value=red_from, color="red"))
    return dash_b.ThresholdsConfig().mode(dash_m.ThresholdsMode.ABSOLUTE).steps(steps)


def _legend(
    placement: common.LegendPlacement = common.LegendPlacement.BOTTOM,
) -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .show_legend(True)
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(placement)
        .calcs([])
    )


def _tooltip() -> common_b.VizTooltipOptions:
    return (
        common_b.VizTooltipOptions()
        .mode(common.TooltipDisplayMode.MULTI)
        .sort(common.SortOrder.DESCENDING)
    )


def stat_panel(
    title: str,
    sql: str,
    *,
    description: str,
    unit: str = "short",
    red_from: float | None = None,
    decimals: float | None = None,
    width: int = 4,
    height: int = 4,
) -> stat.Panel:
    """One number, from the first row of a query; red from ``red_from`` when given."""
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(SQL(sql))
        .unit(unit)
        .thresholds(_thresholds(red_from))
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .reduce_options(common_b.ReduceDataOptions().values(False).calcs(["lastNotNull"]))
        .graph_mode(common.BigValueGraphMode.NONE)
        .color_mode(common.BigValueColorMode.VALUE)
        .text_mode(common.BigValueTextMode.VALUE)
        .span(width)
        .height(height)
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def timeseries_panel(
    title: str,
    targets: Sequence[SQL],
    *,
    description: str,
    unit: str = "short",
    interval: str = "1m",
    width: int = 12,
    height: int = 8,
    bars: bool = False,
    limit_lines: bool = False,
) -> ts_b.Panel:
    """Series over time. ``limit_lines``: query B holds limits (dashed; warning lines
    orange, critical red, by the words `dashboards.sql.limit_label` puts in their names)."""
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .interval(interval)
        .unit(unit)
        .legend(_legend())
        .tooltip(_tooltip())
        .line_width(1)
        .fill_opacity(80 if bars else 0)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .span(width)
        .height(height)
    )
    if bars:
        panel = panel.draw_style(common.GraphDrawStyle.BARS).stacking(
            common_b.StackingConfig().mode(common.StackingMode.NORMAL)
        )
    if limit_lines:
        dashed = dash_m.DynamicConfigValue(
            id_val="custom.lineStyle", value={"dash": [10, 10], "fill": "dash"}
        )
        panel = (
            panel.override_by_query("B", [dashed])
            .override_by_regexp(
                "^limit · [^·]+ · warning",
                [_fixed_colour("orange")],
            )
            .override_by_regexp(
                "^limit · [^·]+ · critical",
                [_fixed_colour("red")],
            )
        )
    return panel


def _fixed_colour(colour: str) -> dash_m.DynamicConfigValue:
    return dash_m.DynamicConfigValue(id_val="color", value={"fixedColor": colour, "mode": "fixed"})


def table_panel(
    title: str,
    sql: str,
    *,
    description: str,
    links: dict[str, Link] | None = None,
    hidden: Sequence[str] = (),
    state_columns: Sequence[str] = (),
    word_colours: dict[str, dict[str, str]] | None = None,
    units: dict[str, str] | None = None,
    width: int = 24,
    height: int = 8,
) -> table.Panel:
    """Named columns. ``links`` puts a data link on a column, ``hidden`` hides columns
    the links need, ``state_columns`` show alarm state codes as coloured words,
    ``word_colours`` colours the text of columns holding words (never colour alone)."""
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(SQL(sql))
        .filterable(True)
        .span(width)
        .height(height)
    )
    for column, link in (links or {}).items():
        panel = panel.override_by_name(
            column, [dash_m.DynamicConfigValue(id_val="links", value=[link])]
        )
    for column in hidden:
        panel = panel.override_by_name(
            column, [dash_m.DynamicConfigValue(id_val="custom.hidden", value=True)]
        )
    text_cell = dash_m.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"})
    for column in state_columns:
        panel = panel.override_by_name(
            column,
            [
                dash_m.DynamicConfigValue(id_val="mappings", value=state_mappings()),
                text_cell,
            ],
        )
    for column, colours in (word_colours or {}).items():
        mapping = dash_m.ValueMap(
            options={
                word: dash_m.ValueMappingResult(color=colour, index=i)
                for i, (word, colour) in enumerate(colours.items())
            }
        )
        panel = panel.override_by_name(
            column, [dash_m.DynamicConfigValue(id_val="mappings", value=[mapping]), text_cell]
        )
    for column, unit in (units or {}).items():
        panel = panel.override_by_name(
            column, [dash_m.DynamicConfigValue(id_val="unit", value=unit)]
        )
    return panel


def geomap_panel(
    title: str,
    sql: str,
    *,
    description: str,
    links: Link | None = None,
    width: int = 12,
    height: int = 12,
) -> geomap_b.Panel:
    """Enterprises as markers at ``latitude``/``longitude``, coloured (and labelled in the
    tooltip) by their alarm ``state``."""
    layer = (
        common_b.MapLayerOptions()
        .type("markers")
        .name("Enterprises")
        .location(
            common_b.FrameGeometrySource()
            .mode(common.FrameGeometrySourceMode.COORDS)
            .latitude("latitude")
            .longitude("longitude")
        )
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "state", "fixed": "green"},
                    "size": {"fixed": 8, "max": 16, "min": 6, "field": "open_alerts"},
                    "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                    "text": {"field": "name", "mode": "field"},
                    "textConfig": {"fontSize": 10, "offsetY": -14},
                },
            }
        )
        .tooltip(True)
    )
    panel = (
        geomap_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(SQL(sql))
        .view(geomap_b.MapViewConfig().id("coords").lat(48).lon(67).zoom(4))
        .basemap(common_b.MapLayerOptions().type("default").name("Basemap"))
        .layers([layer])
        .tooltip(geomap_b.TooltipOptions().mode(geomap_m.TooltipMode.DETAILS))
        .mappings(state_mappings())
        .thresholds(_state_thresholds())
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .span(width)
        .height(height)
    )
    if links is not None:
        panel = panel.override_by_name(
            "name", [dash_m.DynamicConfigValue(id_val="links", value=[links])]
        )
    return panel


def state_timeline_panel(
    title: str, sql: str, *, description: str, width: int = 24, height: int = 10
) -> statetimeline.Panel:
    """Alarm state per row (a ``metric`` each), as coloured bands with their words."""
    return (
        statetimeline.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(SQL(sql, fmt="time_series"))
        .mappings(state_mappings())
        .thresholds(_state_thresholds())
        .color_scheme(dash_b.FieldColor().mode(dash_m.FieldColorModeId.THRESHOLDS))
        .show_value(common.VisibilityMode.AUTO)
        .merge_values(True)
        .row_height(0.8)
        .legend(_legend())
        .tooltip(_tooltip())
        .fill_opacity(80)
        .line_width(0)
        .span(width)
        .height(height)
    )


def barchart_panel(
    title: str, sql: str, *, description: str, width: int = 12, height: int = 12
) -> barchart.Panel:
    """Categories (the first, text column) with stacked numeric columns."""
    return (
        barchart.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .with_target(SQL(sql))
        .orientation(common.VizOrientation.HORIZONTAL)
        .stacking(common.StackingMode.NORMAL)
        .show_value(common.VisibilityMode.NEVER)
        .legend(_legend())
        .tooltip(_tooltip())
        .fill_opacity(80)
        .span(width)
        .height(height)
    )


def row(title: str) -> dash_b.Row:
    return dash_b.Row(title)


def query_variable(
    name: str,
    label: str,
    sql: str,
    *,
    multi: bool = False,
    include_all: bool = False,
    hide: dash_m.VariableHide = dash_m.VariableHide.DONT_HIDE,
) -> dash_b.QueryVariable:
    """A drop-down filled by SQL (``__value``/``__text`` columns), refreshed with the time
    range. Queries use it as ``${name:sqlstring}``: quoted, quotes doubled, so a value
    typed into the URL stays a string literal."""
    variable = (
        dash_b.QueryVariable(name)
        .label(label)
        .query(sql.strip())
        .definition(sql.strip())
        .datasource(DATASOURCE)
        .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dash_m.VariableSort.DISABLED)
        .multi(multi)
        .include_all(include_all)
        .allow_custom_value(False)
        .hide(hide)
    )
    if include_all:
        variable = variable.current(
            dash_m.VariableOption(selected=True, text=["All"], value=["$__all"])
        )
    return variable
