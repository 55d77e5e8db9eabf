"""The explore page's pieces: controls read from the URL, the automatic bucket, the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import dash_ag_grid as dag
import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import dcc
from flask_login import current_user

from app.access import find_visible_dataset
from app.components.dashboard_save import save_controls
from app.models import Dataset
from app.queries import explore_series, numeric_fields

PRESETS = {  # range name -> length
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
BUCKETS = {  # bucket name -> width
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
}
AGGREGATES = ("count", "sum", "avg", "min", "max", "p50", "p95")
VIEWS = ("line", "bar", "area", "scatter", "table")
TARGET_POINTS = 120  # the automatic bucket aims at about this many points


def auto_bucket(span: timedelta) -> str:
    """The smallest bucket that keeps the chart at or under about ``TARGET_POINTS`` points."""
    for name, width in BUCKETS.items():
        if span / width <= TARGET_POINTS:
            return name
    return "1d"


def state_from_query(query: dict[str, Any], datasets: list[str]) -> dict[str, Any]:
    """Read the view from URL parameters, keeping only values the page offers."""

    def pick(key: str, allowed: Any, default: Any) -> Any:
        value = query.get(key)
        return value if isinstance(value, str) and value in allowed else default

    return {
        "dataset": pick("dataset", datasets, datasets[0] if datasets else None),
        "range": pick("range", PRESETS, "24h"),
        "agg": pick("agg", AGGREGATES, "count"),
        "field": query.get("field") if isinstance(query.get("field"), str) else None,
        "bucket": pick("bucket", BUCKETS, "auto"),
        "view": pick("view", VIEWS, "line"),
    }


def permalink(state: dict[str, Any]) -> str:
    return "/explore?" + urlencode({k: v for k, v in state.items() if v})


def explore_page(datasets: list[str], state: dict[str, Any]) -> dmc.Stack:
    def select(key: str, label: str, data: Any, width: int) -> dmc.Select:
        return dmc.Select(id=f"explore-{key}", label=label, data=data, value=state[key], w=width)

    return dmc.Stack(
        [
            dmc.Title("Explore", order=2),
            dmc.Group(
                [
                    select("dataset", "Dataset", datasets, 220),
                    select("range", "Last", list(PRESETS), 100),
                    select("agg", "Aggregate", list(AGGREGATES), 120),
                    dmc.Select(
                        id="explore-field", label="Field", data=[], value=state["field"], w=180
                    ),
                    select("bucket", "Bucket", ["auto", *BUCKETS], 100),
                    dmc.SegmentedControl(
                        id="explore-view", data=list(VIEWS), value=state["view"], mt="lg"
                    ),
                ],
                align="flex-start",
            ),
            save_controls(),
            dmc.Group(
                [
                    dmc.Anchor("Link to this view", id="explore-link", href="/explore", size="sm"),
                    dmc.Button("Export CSV", id="explore-export", variant="light", size="xs"),
                    dmc.Text(id="explore-note", c="dimmed", size="sm"),
                ]
            ),
            dcc.Loading(
                [
                    dcc.Graph(
                        id="explore-graph",
                        config={"displaylogo": False, "toImageButtonOptions": {"format": "png"}},
                    ),
                    dag.AgGrid(
                        id="explore-table",
                        columnDefs=[{"field": "bucket"}, {"field": "value"}],
                        rowData=[],
                        columnSize="responsiveSizeToFit",
                        style={"display": "none"},
                    ),
                ]
            ),
            dcc.Download(id="explore-download"),
        ],
        gap="md",
    )


def series_figure(points: list[tuple[Any, Any]], view: str, title: str) -> go.Figure:
    xs = [bucket for bucket, _ in points]
    ys = [value for _, value in points]
    if view == "bar":
        trace: Any = go.Bar(x=xs, y=ys, name=title)
    elif view == "scatter":
        trace = go.Scatter(x=xs, y=ys, mode="markers", name=title)
    else:
        fill = "tozeroy" if view == "area" else None
        trace = go.Scatter(x=xs, y=ys, mode="lines", fill=fill, name=title)
    figure = go.Figure(trace)
    figure.update_layout(
        margin={"l": 50, "r": 10, "t": 30, "b": 40}, height=420, title=title, uirevision=title
    )
    return figure


def chart_series(name: Any, span: Any, agg: Any, field: Any, bucket: Any) -> Any:
    """Return (points, bucket name, title), or a message saying what to choose."""
    dataset = visible_dataset(name)
    if dataset is None:
        return "Choose a dataset."
    if span not in PRESETS or agg not in AGGREGATES:
        return "Choose a range and an aggregate."
    if agg != "count" and field not in numeric_fields(dataset):
        return "Choose a numeric field."
    label = auto_bucket(PRESETS[span]) if bucket not in BUCKETS else bucket
    width = BUCKETS[label]
    end = datetime.now(UTC)
    measured = field if agg != "count" else None
    points = explore_series(dataset, measured, agg, width, end - PRESETS[span], end)
    title = f"{agg}({field})" if agg != "count" else "count of events"
    return points, label, title


def visible_dataset(name: Any) -> Dataset | None:
    if not isinstance(name, str) or not name:
        return None
    return find_visible_dataset(current_user, name)
