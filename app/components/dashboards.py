"""The dashboards page's pieces: the list, one dashboard's controls and its grid of charts."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import dash_mantine_components as dmc
from dash import dcc

from app.components.live_chart import live_chart
from app.components.messages import counted
from app.dashboards import RANGES, REFRESH_SECONDS, SAVED
from app.models import Dashboard


def dashboard_list(dashboards: list[Dashboard], notice: str | None = None) -> dmc.Stack:
    """The dashboards, with ``notice`` above them (why the one asked for is not shown)."""
    items = [
        dmc.Group(
            [
                dmc.Anchor(found.name, href=f"/dashboards?id={found.id}"),
                dmc.Badge(counted(len(found.spec.get("charts", [])), "chart"), variant="light"),
            ]
        )
        for found in dashboards
    ]
    empty = dmc.Text(
        "No dashboard yet: analysts save charts from Explore.", c="dimmed", id="dashboards-empty"
    )
    shown = [dmc.Alert(notice, color="yellow", id="dashboards-notice")] if notice else []
    return dmc.Stack(
        [dmc.Title("Dashboards", order=2), *shown, *(items or [empty])], id="dashboards-list"
    )


def dashboard_view(
    dashboard: Dashboard, may_change: bool, may_copy: bool, visible: Collection[str]
) -> dmc.Stack:
    """The dashboard's charts; those over a dataset not in ``visible`` show neither their
    dataset nor their question."""
    spec = dashboard.spec
    charts = spec.get("charts", [])
    refresh = spec.get("refresh", 0)
    return dmc.Stack(
        [
            dmc.Group(
                [
                    dmc.Title(dashboard.name, order=2, id="dashboard-title"),
                    dmc.Group(
                        [
                            dmc.Select(
                                id="dashboard-range",
                                data=[
                                    {
                                        "value": span,
                                        "label": "as saved" if span == SAVED else f"last {span}",
                                    }
                                    for span in RANGES
                                ],
                                value=spec.get("range", "24h"),
                                allowDeselect=False,
                                w=120,
                            ),
                            dmc.Select(
                                id="dashboard-refresh",
                                data=[
                                    {
                                        "value": str(s),
                                        "label": f"every {s} s" if s else "no refresh",
                                    }
                                    for s in REFRESH_SECONDS
                                ],
                                value=str(refresh),
                                w=150,
                            ),
                            dmc.Button(
                                "Duplicate",
                                id="dashboard-duplicate",
                                variant="light",
                                display="inline-block" if may_copy else "none",
                            ),
                            dmc.Button(
                                "Delete",
                                id="dashboard-delete",
                                color="red",
                                variant="light",
                                display="inline-block" if may_change else "none",
                            ),
                        ]
                    ),
                ],
                justify="space-between",
            ),
            dmc.Text(id="dashboard-message", size="sm"),
            dcc.ConfirmDialog(
                id="dashboard-delete-confirm",
                message=f"Delete the dashboard {dashboard.name!r}? This cannot be undone.",
            ),
            dcc.Location(id="dashboard-location", refresh=True),
            dcc.Location(id="dashboard-reload", refresh=True),
            dcc.Store(id="dashboard-id", data=dashboard.id),
            dcc.Interval(
                id="dashboard-tick", interval=max(refresh, 1) * 1000, disabled=not refresh
            ),
            dmc.Grid(
                [
                    dmc.GridCol(
                        chart_card(index, chart, may_change, chart.get("dataset") in visible),
                        span={"base": 12, "lg": chart.get("width", 6)},
                    )
                    for index, chart in enumerate(charts)
                ],
                gutter="md",
            ),
        ],
        gap="md",
    )


ARRANGE = (  # (action, label, tooltip)
    ("earlier", "←", "Move earlier"),
    ("later", "→", "Move later"),
    ("resize", "↔", "Wide or narrow"),
    ("remove", "✕", "Remove from the dashboard"),
)


def chart_card(index: int, chart: dict[str, Any], may_change: bool, visible: bool) -> dmc.Paper:
    """One chart of the grid, with its owner's arrangement buttons and, for a historical
    chart, a link to it in Explore (where it can be changed or exported)."""
    buttons = [
        dmc.Tooltip(
            dmc.ActionIcon(
                label,
                id={"type": "dashboard-arrange", "index": index, "action": action},
                variant="subtle",
                size="sm",
                **{"aria-label": tip},
            ),
            label=tip,
        )
        for action, label, tip in ARRANGE
    ]
    kind = "live" if chart.get("kind") == "live" else "historical"
    header = dmc.Group(
        [
            dmc.Group(
                [
                    dmc.Text(
                        chart_title(chart) if visible else "A chart of a dataset you may not see",
                        fw=500,
                        size="sm",
                    ),
                    dmc.Badge(
                        kind,
                        size="xs",
                        variant="light",
                        color="green" if kind == "live" else "gray",
                    ),
                ],
                gap="xs",
            ),
            dmc.Group(
                [
                    dmc.Anchor(
                        "Explore",
                        id={"type": "dashboard-explore", "index": index},
                        href="/explore",  # the drawn chart's, set with its figure
                        size="xs",
                        display="inline" if visible and kind == "historical" else "none",
                    ),
                    *(buttons if may_change else []),
                ],
                gap=2,
            ),
        ],
        justify="space-between",
    )
    if kind == "live":
        body: Any = live_chart(
            f"dashboard-{index}", chart["dataset"], list(chart["fields"]), int(chart["window"])
        )
    else:
        body = dcc.Graph(
            id={"type": "dashboard-chart", "index": index},
            config={"displaylogo": False},
        )
    return dmc.Paper([header, body], withBorder=True, p="xs", className="dashboard-card")


def chart_title(chart: dict[str, Any]) -> str:
    if chart.get("kind") == "live":
        return f"{chart.get('dataset')}: {', '.join(chart.get('fields') or [])}"
    what = "count" if chart.get("agg") == "count" else f"{chart.get('agg')}({chart.get('field')})"
    by = f" by {chart['group']}" if chart.get("group") else ""
    where = f" where {' and '.join(chart['filters'])}" if chart.get("filters") else ""
    return f"{chart.get('dataset')}: {what}{by}{where}"
