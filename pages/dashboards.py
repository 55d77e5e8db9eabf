import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, callback, no_update
from dash.exceptions import PreventUpdate
from flask_login import current_user

from app.components.dashboards import chart_title, dashboard_list, dashboard_view
from app.components.explore import chart_series, series_figure
from app.dashboards import (
    RANGES,
    REFRESH_SECONDS,
    DashboardError,
    delete,
    duplicate,
    get_dashboard,
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
        return dashboard_list(list_dashboards())
    return dashboard_view(dashboard, may_change(current_user, dashboard), can_access(Role.ANALYST))


@callback(
    Output({"type": "dashboard-chart", "index": ALL}, "figure"),
    Input("dashboard-range", "value"),
    Input("dashboard-tick", "n_intervals"),
    State("dashboard-id", "data"),
)
def draw(span, _tick, dashboard_id):
    """Draw every chart over the dashboard's range; a chart of a hidden dataset says so."""
    dashboard = get_dashboard(dashboard_id)
    if dashboard is None or span not in RANGES:
        raise PreventUpdate  # a wildcard output takes a list, not no_update
    figures = []
    for chart in dashboard.spec.get("charts", []):
        answer = chart_series(
            chart.get("dataset"), span, chart.get("agg"), chart.get("field"), chart.get("bucket")
        )
        if isinstance(answer, str):
            figure = go.Figure()
            figure.update_layout(title=f"{chart.get('dataset')}: not available to you")
        else:
            points, _bucket, _title = answer
            figure = series_figure(points, chart.get("view") or "line", chart_title(chart))
        figures.append(figure)
    return figures


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
        return no_update, str(exc).capitalize() + "."
    return "/dashboards", ""
