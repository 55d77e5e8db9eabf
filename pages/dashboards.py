import time

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, no_update
from dash.exceptions import PreventUpdate
from flask_login import current_user

from app.access import find_visible_dataset, visible_datasets
from app.charts import Chart, QueryError, answer
from app.components.dashboards import chart_title, dashboard_list, dashboard_view
from app.components.explore import answer_figure, message_figure
from app.components.messages import sentence
from app.dashboards import (
    RANGES,
    REFRESH_SECONDS,
    DashboardError,
    arrange,
    delete,
    duplicate,
    get_dashboard,
    historical_chart,
    list_dashboards,
    may_change,
)
from app.guard import can_access
from app.models import Role

dash.register_page(
    __name__,
    path="/dashboards",
    name="Dashboards",
    order=2,
    required_role="viewer",
    description="Saved dashboards: charts from Explore, with one time range and auto-refresh.",
)


def layout(id=None, **_query):
    dashboard = get_dashboard(id) if id is not None else None
    if dashboard is None:
        notice = None if id is None else f"There is no dashboard {str(id)[:20]!r}: pick one below."
        return dashboard_list(list_dashboards(), notice)
    visible = {found.name for found in visible_datasets(current_user)}
    return dashboard_view(
        dashboard, may_change(current_user, dashboard), can_access(Role.ANALYST), visible
    )


@callback(
    Output({"type": "dashboard-chart", "index": ALL}, "figure"),
    Output({"type": "dashboard-explore", "index": ALL}, "href"),
    Input("dashboard-range", "value"),
    Input("dashboard-tick", "n_intervals"),
    State("dashboard-id", "data"),
)
def draw(span, _tick, dashboard_id):
    """Draw every historical chart over the dashboard's range, and link each to Explore as
    drawn; a hidden dataset says so."""
    dashboard = get_dashboard(dashboard_id)
    if dashboard is None or span not in RANGES:
        raise PreventUpdate  # a wildcard output takes a list, not no_update
    charts = dashboard.spec.get("charts", [])

    def drawn(index: int) -> Chart:
        return historical_chart(charts[index] if 0 <= index < len(charts) else {}, span)

    graphs, anchors = ([o["id"]["index"] for o in outputs] for outputs in dash.ctx.outputs_list)
    return (
        [chart_figure(drawn(index)) for index in graphs],
        [f"/explore?{drawn(index).query_string()}" for index in anchors],
    )


def chart_figure(chart: Chart) -> go.Figure:
    dataset = find_visible_dataset(current_user, chart.dataset) if chart.dataset else None
    if dataset is None:
        return message_figure("A chart of a dataset you may not see", 360)
    try:
        found = answer(chart, dataset)
    except QueryError as exc:
        return message_figure(f"{chart_title(chart.as_dict())}: {exc}", 360)
    figure = answer_figure(found, chart.view, chart.group is not None, chart.agg)
    figure.update_layout(title=None, height=360, margin={"t": 20})  # the card names the chart
    return figure


@callback(
    Output("dashboard-reload", "href"),
    Output("dashboard-message", "children", allow_duplicate=True),
    Input({"type": "dashboard-arrange", "index": ALL, "action": ALL}, "n_clicks"),
    State("dashboard-id", "data"),
    prevent_initial_call=True,
)
def rearrange(clicks, dashboard_id):
    """Move, resize or remove a chart (its owner or an admin), then show the new grid."""
    trigger = dash.ctx.triggered_id
    if not isinstance(trigger, dict) or not isinstance(clicks, list) or not any(clicks):
        raise PreventUpdate  # a click, or nothing (a malformed request changes nothing)
    dashboard = get_dashboard(dashboard_id)
    if dashboard is None:
        return no_update, "That dashboard is gone."
    try:
        arrange(current_user, dashboard, trigger.get("index"), trigger.get("action"))
    except DashboardError as exc:
        return no_update, sentence(exc)
    # A new address each time, so the page reloads with the new grid.
    return f"/dashboards?id={dashboard.id}&arranged={time.time_ns()}", ""


@callback(
    Output("dashboard-tick", "interval"),
    Output("dashboard-tick", "disabled"),
    Input("dashboard-refresh", "value"),
)
def set_refresh(seconds):
    value = int(seconds) if str(seconds).isdigit() and int(seconds) in REFRESH_SECONDS else 0
    return max(value, 1) * 1000, value == 0


@callback(
    Output("dashboard-delete-confirm", "displayed"),
    Input("dashboard-delete", "n_clicks"),
    prevent_initial_call=True,
)
def ask_to_delete(_clicks):
    return True


@callback(
    Output("dashboard-location", "href"),
    Output("dashboard-message", "children"),
    Input("dashboard-delete-confirm", "submit_n_clicks"),
    Input("dashboard-duplicate", "n_clicks"),
    State("dashboard-id", "data"),
    prevent_initial_call=True,
)
def change(_deleted, _duplicated, dashboard_id):
    """Delete (after confirmation) or duplicate, then go to the list or to the copy."""
    dashboard = get_dashboard(dashboard_id)
    if dashboard is None:
        return no_update, "That dashboard is gone."
    try:
        if dash.ctx.triggered_id == "dashboard-duplicate":
            copy = duplicate(current_user, dashboard)
            return f"/dashboards?id={copy.id}", ""
        delete(current_user, dashboard)
    except DashboardError as exc:
        return no_update, sentence(exc)
    return "/dashboards", ""
