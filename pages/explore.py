from datetime import UTC, datetime, timedelta

import dash
from dash import Input, Output, State, callback, dcc, no_update
from dash.exceptions import PreventUpdate
from flask_login import current_user

from app.access import find_visible_dataset, visible_datasets
from app.charts import CHART_KEYS, CUSTOM, Chart
from app.components.explore import explore_page
from app.components.explore_steer import (
    drawing,
    drill,
    export_csv,
    picker,
    where_the_data_is,
)
from app.event_queries import column_types
from app.queries import numeric_fields

dash.register_page(
    __name__,
    path="/explore",
    name="Explore",
    order=1,
    required_role="viewer",
    description="Pick a dataset, a time range and an aggregate, and chart it.",
)

CONTROLS = CHART_KEYS
GROUPABLE = ("text", "integer", "boolean")


def layout(**query):
    found = {dataset.name: dataset for dataset in visible_datasets(current_user)}
    names = list(found)
    chart = Chart.from_mapping(query)
    notice = None
    if chart.dataset not in found:
        if chart.dataset is not None:  # unknown, or not this user's to see: the same words
            notice = f"No dataset {chart.dataset!r} is available to you"
            notice += f"; showing {names[0]!r} instead." if names else "."
        chart = Chart.from_mapping({**query, "dataset": names[0] if names else None})
    elif "range" not in query:
        chart, notice = where_the_data_is(chart, found[chart.dataset])
    return explore_page(names, chart, notice)


def chart_from(values) -> Chart:
    return Chart.from_mapping(dict(zip(CONTROLS, values, strict=True)))


def visible(name):
    """Return the named dataset if the user may see it; anything but a name gives None."""
    if not isinstance(name, str) or not name:
        return None
    return find_visible_dataset(current_user, name)


@callback(
    Output("explore-field", "data"),
    Output("explore-field", "value"),
    Output("explore-group", "data"),
    Output("explore-group", "value"),
    Output("explore-filter-field", "data"),
    Input("explore-dataset", "value"),
    State("explore-field", "value"),
    State("explore-group", "value"),
)
def choose_fields(name, chosen, group):
    dataset = visible(name)
    types = column_types(dataset) if dataset is not None else {}
    fields = numeric_fields(dataset) if dataset is not None else []
    groupable = [field for field, kind in types.items() if kind in GROUPABLE]
    return (
        fields,
        chosen if chosen in fields else (fields[0] if fields else None),
        groupable,
        group if group in groupable else None,
        list(types),
    )


@callback(
    Output("explore-range", "value"),
    Output("explore-start", "value"),
    Output("explore-end", "value"),
    Output("explore-start", "display"),
    Output("explore-end", "display"),
    Output("explore-bucket", "value"),
    Output("explore-filters", "value"),
    Output("explore-filter-value", "value"),
    Input("explore-range", "value"),
    Input("explore-graph", "clickData"),
    Input("explore-graph", "restyleData"),
    Input("explore-filter-add", "n_clicks"),
    State("explore-start", "value"),
    State("explore-end", "value"),
    State("explore-bucket", "value"),
    State("explore-filters", "value"),
    State("explore-drawn", "data"),
    State("explore-filter-field", "value"),
    State("explore-filter-op", "value"),
    State("explore-filter-value", "value"),
)
def steer(span, clicked, restyled, _added, start, end, _bucket, filters, drawn, *new_filter):
    """Change the range and filters: custom range, drill-down clicks and the filter builder."""
    trigger = dash.ctx.triggered_id
    filters = [item for item in filters or [] if isinstance(item, str)]
    shown = "block" if span == CUSTOM else "none"
    keep = (no_update,) * 8
    if trigger == "explore-filter-add":
        field, op, value = new_filter
        if not field or not op or value in (None, ""):
            raise PreventUpdate
        added = f"{field}:{op}:{str(value).strip()}"
        return *keep[:6], [*filters, added] if added not in filters else filters, ""
    if trigger == "explore-graph" and isinstance(drawn, dict):
        return drill(clicked, restyled, filters, drawn)
    if span == CUSTOM and not (start and end):
        now = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
        return CUSTOM, picker(now - timedelta(days=1)), picker(now), shown, shown, *keep[:3]
    return no_update, no_update, no_update, shown, shown, *keep[:3]


@callback(
    Output("explore-graph", "figure"),
    Output("explore-graph", "style"),
    Output("explore-table", "rowData"),
    Output("explore-table", "style"),
    Output("explore-link", "href"),
    Output("explore-note", "children"),
    Output("explore-drawn", "data"),
    *(Input(f"explore-{key}", "value") for key in CONTROLS),
)
def draw(*values):
    """Chart the aggregate for the chosen range; the link beside it reproduces the view."""
    chart = chart_from(values)
    dataset = visible(chart.dataset)
    if dataset is None:
        return (*(no_update,) * 5, "Choose a dataset.", None)
    return drawing(chart, dataset)


@callback(
    Output("explore-download", "data"),
    Input("explore-export", "n_clicks"),
    *(State(f"explore-{key}", "value") for key in CONTROLS),
    prevent_initial_call=True,
)
def export(_clicks, *values):
    """Export what the chart shows, computed again on the server (never the browser's copy)."""
    chart = chart_from(values)
    dataset = visible(chart.dataset)
    content = None if dataset is None else export_csv(chart, dataset, current_user)
    if content is None:
        return no_update
    return dcc.send_string(content, f"{dataset.name}-{chart.agg}-{chart.range}.csv")
