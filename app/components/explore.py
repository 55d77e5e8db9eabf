"""The explore page's pieces: the controls (filled from a chart), the figure and the table."""

from __future__ import annotations

from typing import Any

import dash_ag_grid as dag
import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import dcc

from app.charts import BUCKETS, CUSTOM, PRESETS, VIEWS, Answer, Chart, line_name
from app.components.dashboard_save import save_controls
from app.components.grid import FILL_WIDTH
from app.event_queries import CHART_AGGREGATES, MAX_GROUPS

SHOW_MARKERS = 40  # a line of this many points or fewer also marks each point
FILTER_OPERATORS = [  # what the filter builder offers; the API's other operators work typed in
    {"value": "eq", "label": "equals"},
    {"value": "in", "label": "in (a,b,c)"},
    {"value": "between", "label": "range (low,high)"},
    {"value": "contains", "label": "contains"},
    {"value": "ne", "label": "not equal"},
    {"value": "gte", "label": "at least"},
    {"value": "lte", "label": "at most"},
]


def explore_page(datasets: list[str], chart: Chart, notice: str | None = None) -> dmc.Stack:
    """The explore page set to ``chart``, with ``notice`` above it (why the link's dataset
    is not the one shown)."""
    custom = chart.range == CUSTOM
    shown = [dmc.Alert(notice, color="yellow", id="explore-notice")] if notice else []
    return dmc.Stack(
        [
            dmc.Title("Explore", order=2),
            *shown,
            dmc.Group(
                [
                    dmc.Select(
                        id="explore-dataset",
                        label="Dataset",
                        data=datasets,
                        value=chart.dataset if chart.dataset in datasets else None,
                        searchable=True,
                        w=220,
                    ),
                    dmc.Select(
                        id="explore-range",
                        label="Range",
                        data=[*({"value": p, "label": f"last {p}"} for p in PRESETS), CUSTOM],
                        value=chart.range,
                        w=120,
                    ),
                    dmc.DateTimePicker(
                        id="explore-start",
                        label="From (UTC)",
                        value=chart.start if custom else None,
                        withSeconds=False,
                        valueFormat="YYYY-MM-DD HH:mm",
                        w=170,
                        display="block" if custom else "none",
                    ),
                    dmc.DateTimePicker(
                        id="explore-end",
                        label="To (UTC)",
                        value=chart.end if custom else None,
                        withSeconds=False,
                        valueFormat="YYYY-MM-DD HH:mm",
                        w=170,
                        display="block" if custom else "none",
                    ),
                    dmc.Select(
                        id="explore-agg",
                        label="Aggregate",
                        data=list(CHART_AGGREGATES),
                        value=chart.agg,
                        w=110,
                    ),
                    dmc.Select(
                        id="explore-field", label="Field", data=[], value=chart.field, w=170
                    ),
                ],
                align="flex-start",
            ),
            dmc.Group(
                [
                    dmc.Select(
                        id="explore-bucket",
                        label="Bucket",
                        data=["auto", *BUCKETS],
                        value=chart.bucket,
                        w=90,
                    ),
                    dmc.Select(
                        id="explore-group",
                        label="Group by",
                        data=[],
                        value=chart.group,
                        clearable=True,
                        placeholder="no grouping",
                        w=170,
                    ),
                    dmc.NumberInput(
                        id="explore-top",
                        label="Top",
                        value=chart.top,
                        min=1,
                        max=MAX_GROUPS,
                        w=80,
                    ),
                    dmc.TagsInput(
                        id="explore-filters",
                        label="Filters (field:op:value)",
                        value=list(chart.filters),
                        placeholder="e.g. city:eq:Yangon",
                        clearable=True,
                        w=420,
                    ),
                    dmc.SegmentedControl(
                        id="explore-view", data=list(VIEWS), value=chart.view, mt="lg"
                    ),
                ],
                align="flex-start",
            ),
            filter_builder(),
            save_controls(),
            dmc.Group(
                [
                    dmc.Anchor("Link to this view", id="explore-link", href="/explore", size="sm"),
                    dmc.Button("Export CSV", id="explore-export", variant="light", size="xs"),
                    dmc.Text(id="explore-note", c="dimmed", size="sm"),
                ]
            ),
            dmc.Text(
                "Click a bar or point to zoom into its bucket; click a group in the legend "
                "to keep only that group.",
                c="dimmed",
                size="xs",
            ),
            dcc.Loading(
                [
                    dcc.Graph(
                        id="explore-graph",
                        config={"displaylogo": False, "toImageButtonOptions": {"format": "png"}},
                    ),
                    dag.AgGrid(
                        id="explore-table",
                        columnDefs=[{"field": "bucket"}, {"field": "group"}, {"field": "value"}],
                        rowData=[],
                        defaultColDef=FILL_WIDTH,  # hidden in the chart views
                        style={"display": "none"},
                    ),
                ]
            ),
            dcc.Store(id="explore-drawn"),
            dcc.Download(id="explore-download"),
        ],
        gap="md",
    )


def filter_builder() -> dmc.Group:
    return dmc.Group(
        [
            dmc.Select(id="explore-filter-field", placeholder="field", data=[], w=170, size="xs"),
            dmc.Select(
                id="explore-filter-op",
                data=FILTER_OPERATORS,
                value="eq",
                w=150,
                size="xs",
                allowDeselect=False,
            ),
            dmc.TextInput(id="explore-filter-value", placeholder="value", w=200, size="xs"),
            dmc.Button("Add filter", id="explore-filter-add", variant="light", size="xs"),
        ],
        gap="xs",
    )


def answer_figure(found: Answer, view: str, grouped: bool, agg: str) -> go.Figure:
    """Draw one trace per line; counts and sums of groups stack, other aggregates stand apart."""
    stacked = grouped and agg in ("count", "sum")
    figure = go.Figure()
    for line, group in zip(found.lines, found.groups, strict=True):
        xs = [bucket for bucket, _ in line.points]
        ys = [value for _, value in line.points]
        name = line_name(line, found.title, grouped)
        extra: dict[str, Any] = {"name": name, "customdata": [group] * len(xs)}
        if view == "bar":
            figure.add_trace(go.Bar(x=xs, y=ys, **extra))
        elif view == "scatter":
            figure.add_trace(go.Scatter(x=xs, y=ys, mode="markers", **extra))
        else:
            fill = "tozeroy" if view == "area" and not stacked else None
            stack = "all" if view == "area" and stacked else None
            mode = "lines+markers" if len(xs) <= SHOW_MARKERS else "lines"  # one point shows
            figure.add_trace(
                go.Scatter(x=xs, y=ys, mode=mode, fill=fill, stackgroup=stack, **extra)
            )
    # The x axis spans the range asked for, as on a time-series panel: a lone bucket is not
    # stretched over a millisecond, and gaps at either end show as gaps.
    buckets = [bucket for line in found.lines for bucket, _ in line.points]
    half = found.width / 2
    figure.update_xaxes(range=[min([found.start, *buckets]) - half, found.end + half])
    if not buckets:
        figure.add_annotation(_centred("No data in this range"))
        figure.update_yaxes(visible=False)
    figure.update_layout(
        margin={"l": 50, "r": 10, "t": 40, "b": 40},
        height=420,
        title=found.title,
        uirevision=found.title,
        barmode="stack" if stacked else "group",
        showlegend=grouped,
        legend={"itemclick": "toggleothers", "itemdoubleclick": False},
    )
    return figure


def message_figure(text: str, height: int) -> go.Figure:
    """A chart area that only says ``text`` (no axes to misread)."""
    figure = go.Figure()
    figure.add_annotation(_centred(text))
    figure.update_layout(height=height, xaxis={"visible": False}, yaxis={"visible": False})
    return figure


def _centred(text: str) -> dict[str, Any]:
    return {
        "text": text,
        "showarrow": False,
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.5,
        "font": {"size": 16, "color": "gray"},
    }


def table_rows(found: Answer, grouped: bool) -> list[dict[str, Any]]:
    return [
        {
            "bucket": bucket.isoformat(),
            "group": line_name(line, found.title, grouped),
            "value": value,
        }
        for line in found.lines
        for bucket, value in line.points
    ]
