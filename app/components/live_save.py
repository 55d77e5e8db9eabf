"""Saving the live page's chart to a dashboard: analysts only, whoever can open the live page.

The callback lives here, not in ``pages/live.py``, because it needs a higher role than the
page: the guard gives callbacks of this module the analyst role (``app.guard``).
"""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
from dash import Input, Output, State, callback
from flask_login import current_user

from app.access import find_visible_dataset
from app.components.live_chart import plotted_fields, window_size
from app.components.messages import sentence
from app.dashboards import DashboardError, add_chart, list_dashboards
from app.guard import can_access
from app.models import Role


def save_controls() -> Any:
    """The save form, shown to analysts and admins (the server checks again)."""
    if not can_access(Role.ANALYST):
        return None
    names = [found.name for found in list_dashboards()]
    return dmc.Group(
        [
            dmc.Autocomplete(id="live-save-name", placeholder="Dashboard name", data=names, w=240),
            dmc.Button("Save to dashboard", id="live-save", variant="light", size="xs"),
            dmc.Text(id="live-save-message", size="sm"),
        ]
    )


@callback(
    Output("live-save-message", "children"),
    Input("live-save", "n_clicks"),
    State("live-save-name", "value"),
    State("live-dataset", "value"),
    State("live-fields", "value"),
    State("live-window", "value"),
    prevent_initial_call=True,
)
def save(_clicks: Any, name: Any, dataset: Any, fields: Any, window: Any) -> Any:
    found = find_visible_dataset(current_user, dataset) if isinstance(dataset, str) else None
    if found is None:
        return "Choose a dataset first."
    plotted = plotted_fields(found, fields)
    if not plotted:
        return "Choose a field to plot first."
    chart: dict[str, Any] = {"kind": "live", "dataset": found.name, "fields": plotted}
    chart["window"] = window_size(window)
    try:
        dashboard = add_chart(current_user, name, chart)
    except DashboardError as exc:
        return sentence(exc)
    return dmc.Anchor(f"Saved to {dashboard.name}", href=f"/dashboards?id={dashboard.id}")
