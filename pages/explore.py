import csv
import io

import dash
from dash import Input, Output, State, callback, dcc, no_update
from flask_login import current_user

from app.access import visible_datasets
from app.components.explore import (
    VIEWS,
    chart_series,
    explore_page,
    permalink,
    series_figure,
    state_from_query,
    visible_dataset,
)
from app.queries import numeric_fields

dash.register_page(
    __name__,
    path="/explore",
    name="Explore",
    order=1,
    required_role="viewer",
    description="Pick a dataset, a time range and an aggregate, and chart it.",
)

CONTROLS = ("dataset", "range", "agg", "field", "bucket", "view")


def layout(**query):
    names = [found.name for found in visible_datasets(current_user)]
    return explore_page(names, state_from_query(query, names))


@callback(
    Output("explore-field", "data"),
    Output("explore-field", "value"),
    Input("explore-dataset", "value"),
    State("explore-field", "value"),
)
def choose_field(name, chosen):
    dataset = visible_dataset(name)
    fields = numeric_fields(dataset) if dataset is not None else []
    return fields, chosen if chosen in fields else (fields[0] if fields else None)


@callback(
    Output("explore-graph", "figure"),
    Output("explore-graph", "style"),
    Output("explore-table", "rowData"),
    Output("explore-table", "style"),
    Output("explore-link", "href"),
    Output("explore-note", "children"),
    *(Input(f"explore-{key}", "value") for key in CONTROLS),
)
def draw(name, span, agg, field, bucket, view):
    """Chart the aggregate for the chosen range; the link beside it reproduces the view."""
    answer = chart_series(name, span, agg, field, bucket)
    if isinstance(answer, str) or view not in VIEWS:
        note = answer if isinstance(answer, str) else "Choose a view."
        return no_update, no_update, no_update, no_update, no_update, note
    points, label, title = answer
    rows = [{"bucket": b.isoformat(), "value": v} for b, v in points]
    state = dict(zip(CONTROLS, (name, span, agg, field, bucket, view), strict=True))
    table = view == "table"
    note = f"{len(points)} buckets of {label}" if points else "No events in this range."
    return (
        series_figure(points, view, title),
        {"display": "none"} if table else {},
        rows,
        {} if table else {"display": "none"},
        permalink(state),
        note,
    )


@callback(
    Output("explore-download", "data"),
    Input("explore-export", "n_clicks"),
    *(State(f"explore-{key}", "value") for key in CONTROLS[:-1]),
    prevent_initial_call=True,
)
def export(_clicks, name, span, agg, field, bucket):
    """Export what the chart shows, computed again on the server (never the browser's copy)."""
    answer = chart_series(name, span, agg, field, bucket)
    if isinstance(answer, str):
        return no_update
    points, _label, title = answer
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["bucket", title])
    writer.writerows((bucket_start.isoformat(), value) for bucket_start, value in points)
    return dcc.send_string(out.getvalue(), f"{name}-{agg}-{span}.csv")
