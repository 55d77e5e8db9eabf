"""A live chart: one dataset's newest points, kept moving by points the hub pushes.

Any page may hold several, each under its own ``key``: every piece has a pattern-matching id
``{"type": "live-chart-...", "key": key}``, so the callbacks below (``MATCH``) serve each
chart on its own. The server draws the first window of a dataset the user may see; the
browser (``assets/live.js``) keeps one hub connection per chart and appends pushed points.
The guard gives this module's callbacks the viewer role (``app.guard``).
"""

from __future__ import annotations

import secrets
from typing import Any

import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import (
    MATCH,
    ClientsideFunction,
    Input,
    Output,
    State,
    callback,
    clientside_callback,
    dcc,
    html,
)
from dash_extensions import WebSocket
from flask_login import current_user

from app.access import find_visible_dataset
from app.models import Dataset
from app.queries import numeric_fields, recent_points

WINDOWS = (200, 500, 1000, 5000)  # points kept on screen per field
DEFAULT_WINDOW = 500
MAX_FIELDS = 4


def chart_id(part: str, key: Any = MATCH) -> dict[str, Any]:
    """Return the id of one piece of the chart under ``key`` (every chart's: ``MATCH``)."""
    return {"type": f"live-chart-{part}", "key": key}


def live_chart(
    key: str, dataset: str, fields: list[str], window: int, title: str | None = None
) -> dmc.Stack:
    """Return a live chart of ``fields`` of ``dataset``, ``window`` points wide.

    ``key`` tells the charts of one page apart; ``title``, if any, stands above the chart.
    """
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Text(title, fw=500) if title else html.Span(),
                    dmc.Group(
                        [
                            dmc.Badge(
                                "connecting",
                                id=chart_id("status", key),
                                color="gray",
                                variant="dot",
                            ),
                            dmc.Button(
                                "Pause", id=chart_id("pause", key), variant="light", size="xs"
                            ),
                        ],
                        gap="xs",
                    ),
                ],
                justify="space-between",
            ),
            dmc.Text(id=chart_id("note", key), c="dimmed", size="sm"),
            dcc.Graph(
                id=chart_id("graph", key), figure=empty_figure(), config={"displaylogo": False}
            ),
            dmc.Text(id=chart_id("updated", key), c="dimmed", size="xs"),
            WebSocket(id=chart_id("ws", key)),
            dcc.Store(
                id=chart_id("source", key),
                data={"dataset": dataset, "fields": list(fields), "window": window},
            ),
            dcc.Store(id=chart_id("state", key)),
            dcc.Store(id=chart_id("resync", key), data=0),
            dcc.Store(id=chart_id("paused", key), data=False),
            dcc.Interval(id=chart_id("clock", key), interval=1000),
        ],
        gap="xs",
        className="live-chart",
    )


def window_size(raw: Any) -> int:
    """Return ``raw`` as a window size the chart offers (a number or its text), else the default."""
    sizes = {str(size): size for size in WINDOWS}
    return sizes.get(str(raw), DEFAULT_WINDOW) if isinstance(raw, int | str) else DEFAULT_WINDOW


def plotted_fields(dataset: Dataset, wanted: Any) -> list[str]:
    """Return the fields of ``wanted`` that ``dataset`` can plot, in that order, at most four."""
    if not isinstance(wanted, list):
        return []
    allowed = numeric_fields(dataset)
    chosen = dict.fromkeys(field for field in wanted if isinstance(field, str))
    return [field for field in chosen if field in allowed][:MAX_FIELDS]


def empty_figure(title: str | None = None) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        margin={"l": 40, "r": 10, "t": 30 if title else 10, "b": 40},
        height=420,
        uirevision="live",
        xaxis={"title": None},
        legend={"orientation": "h", "y": 1.1},
        title=title,
    )
    return figure


def window_figure(points: dict[str, Any], fields: list[str]) -> go.Figure:
    """Draw one line per field over time; live points are appended to these traces in order."""
    figure = empty_figure()
    for field in fields:
        figure.add_trace(
            # SVG, not WebGL: a dashboard may hold more live charts than a browser gives WebGL
            # contexts (about 16), and a few thousand points per line draw fine as SVG.
            go.Scatter(x=points["ts"], y=points["values"][field], mode="lines", name=field)
        )
    return figure


@callback(
    Output(chart_id("graph"), "figure"),
    Output(chart_id("state"), "data"),
    Output(chart_id("note"), "children"),
    Input(chart_id("source"), "data"),
    Input(chart_id("resync"), "data"),
)
def draw_window(source: Any, _resync: Any) -> tuple[go.Figure, dict[str, Any] | None, str]:
    """Draw the newest points, then hand the last id to the browser to subscribe from."""
    source = source if isinstance(source, dict) else {}
    name = source.get("dataset")
    dataset = find_visible_dataset(current_user, name) if isinstance(name, str) and name else None
    if dataset is None:
        note = f"{name}: not available to you" if isinstance(name, str) and name else "No dataset."
        return empty_figure(note), None, note
    fields = plotted_fields(dataset, source.get("fields"))
    window = window_size(source.get("window"))
    points = recent_points(dataset, fields, window)
    state = {
        "dataset": dataset.name,
        "fields": fields,
        "window": window,
        "last_id": points["last_id"],
        "drawn": secrets.token_hex(8),  # each draw replaces the figure: the browser starts over
    }
    if fields:
        note = ""
    elif numeric_fields(dataset):
        note = "Choose a field to plot."
    else:
        note = "This dataset has no numeric field to plot."
    return window_figure(points, fields), state, note


clientside_callback(
    ClientsideFunction("insightwave_live", "connect"),
    Output(chart_id("ws"), "send"),
    Output(chart_id("status"), "children"),
    Output(chart_id("status"), "color"),
    Input(chart_id("state"), "data"),
    Input(chart_id("ws"), "state"),
    Input(chart_id("paused"), "data"),
    Input(chart_id("clock"), "n_intervals"),
    State(chart_id("ws"), "id"),
)

clientside_callback(
    ClientsideFunction("insightwave_live", "receive"),
    Output(chart_id("graph"), "extendData"),
    Output(chart_id("resync"), "data"),
    Output(chart_id("updated"), "children"),
    Input(chart_id("ws"), "message"),
    State(chart_id("state"), "data"),
    State(chart_id("resync"), "data"),
    State(chart_id("ws"), "id"),
)

clientside_callback(
    ClientsideFunction("insightwave_live", "togglePause"),
    Output(chart_id("paused"), "data"),
    Output(chart_id("pause"), "children"),
    Input(chart_id("pause"), "n_clicks"),
    State(chart_id("paused"), "data"),
    prevent_initial_call=True,
)
