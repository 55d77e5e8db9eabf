"""Saving an explore chart to a dashboard: analysts only, whoever can open the explore page.

The callback lives here, not in ``pages/explore.py``, because it needs a higher role than
the page: the guard gives callbacks of this module the analyst role (``app.guard``).
"""

from __future__ import annotations

from typing import Any

import dash_mantine_components as dmc
from dash import Input, Output, State, callback
from flask_login import current_user

from app.access import find_visible_dataset
from app.charts import CHART_KEYS, Chart
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
            dmc.Autocomplete(
                id="explore-save-name", placeholder="Dashboard name", data=names, w=240
            ),
            dmc.Button("Save to dashboard", id="explore-save", variant="light", size="xs"),
            dmc.Text(id="explore-save-message", size="sm"),
        ]
    )


@callback(
    Output("explore-save-message", "children"),
    Input("explore-save", "n_clicks"),
    State("explore-save-name", "value"),
    *(State(f"explore-{key}", "value") for key in CHART_KEYS),
    prevent_initial_call=True,
)
def save(_clicks: Any, name: Any, *values: Any) -> Any:
    chart = Chart.from_mapping(dict(zip(CHART_KEYS, values, strict=True)))
    if chart.dataset is None or find_visible_dataset(current_user, chart.dataset) is None:
        return "Choose a dataset first."
    try:
        dashboard = add_chart(current_user, name, chart.as_dict())
    except DashboardError as exc:
        return sentence(exc)
    return dmc.Anchor(f"Saved to {dashboard.name}", href=f"/dashboards?id={dashboard.id}")
