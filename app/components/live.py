"""The live page's pieces: controls, the connection badge and the figure drawn from points."""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
import plotly.graph_objects as go
from dash import dcc, html
from dash_extensions import WebSocket

WINDOWS = ("200", "500", "1000", "5000")  # points kept on screen per field
MAX_FIELDS = 4


def live_page(datasets: list[str], chosen: str | None) -> dmc.Stack:
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title("Live", order=2),
                    dmc.Badge("connecting", id="live-status", color="gray", variant="dot"),
                ],
                justify="space-between",
            ),
            dmc.Group(
                [
                    dmc.Select(
                        id="live-dataset",
                        label="Dataset",
                        data=datasets,
                        value=chosen,
                        searchable=True,
                        w=260,
                    ),
                    dmc.MultiSelect(
                        id="live-fields",
                        label="Fields",
                        data=[],
                        maxValues=MAX_FIELDS,
                        w=360,
                    ),
                    dmc.Select(
                        id="live-window",
                        label="Points on screen",
                        data=list(WINDOWS),
                        value="500",
                        w=150,
                    ),
                    dmc.Button("Pause", id="live-pause", variant="light", mt="lg"),
                ],
                align="flex-start",
            ),
            dmc.Text(
                "No dataset yet: upload a CSV or start with --demo." if not datasets else "",
                id="live-note",
                c="dimmed",
                size="sm",
            ),
            dcc.Graph(id="live-graph", figure=empty_figure(), config={"displaylogo": False}),
            dmc.Text(id="live-updated", c="dimmed", size="xs"),
            WebSocket(id="live-ws"),
            dcc.Store(id="live-state"),
            dcc.Store(id="live-resync", data=0),
            dcc.Store(id="live-paused", data=False),
            dcc.Interval(id="live-clock", interval=1000),
            html.Div(id="live-sink", hidden=True),
        ],
        gap="md",
    )


def empty_figure() -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        margin={"l": 40, "r": 10, "t": 10, "b": 40},
        height=420,
        uirevision="live",
        xaxis={"title": None},
        legend={"orientation": "h", "y": 1.1},
    )
    return figure


def window_figure(points: dict[str, Any], fields: list[str]) -> go.Figure:
    """Draw one line per field over time; live points are appended to these traces in order."""
    figure = empty_figure()
    for field in fields:
        figure.add_trace(
            go.Scattergl(x=points["ts"], y=points["values"][field], mode="lines", name=field)
        )
    return figure
