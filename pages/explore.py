from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dash
from dash import Input, Output, State, callback, dcc, no_update
from dash.exceptions import PreventUpdate
from flask_login import current_user

from app import audit
from app.access import find_visible_dataset, visible_datasets
from app.charts import (
    CHART_KEYS,
    CUSTOM,
    PRESETS,
    Chart,
    QueryError,
    answer,
    line_name,
    parse_moment,
    range_over,
)
from app.components.explore import answer_figure, explore_page, message_figure, table_rows
from app.components.messages import counted, sentence
from app.event_queries import column_types, time_span
from app.models import Dataset
from app.queries import numeric_fields
from etl.export import csv_lines

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
        chart, notice = _where_the_data_is(chart, found[chart.dataset])
    return explore_page(names, chart, notice)


def _where_the_data_is(chart: Chart, dataset: Dataset) -> tuple[Chart, str | None]:
    """A link that names no range opens on the last day, unless the dataset has nothing
    there (history uploaded from a file): then on the days its events span."""
    span = time_span(dataset)
    if span is None or span[1] >= datetime.now(UTC) - PRESETS[chart.range]:
        return chart, None
    start, end = range_over(*span)
    notice = (
        f"{chart.dataset} has no events in the last day; showing {start[:10]} to {end[:10]}, "
        "where its events are."
    )
    return replace(chart, range=CUSTOM, start=start, end=end), notice


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
def steer(span, clicked, restyled, _added, start, end, bucket, filters, drawn, *new_filter):
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
        return drill(clicked, restyled, filters, drawn, bucket)
    if span == CUSTOM and not (start and end):
        now = datetime.now(UTC).replace(second=0, microsecond=0, tzinfo=None)
        return CUSTOM, picker(now - timedelta(days=1)), picker(now), shown, shown, *keep[:3]
    return no_update, no_update, no_update, shown, shown, *keep[:3]


def drill(clicked, restyled, filters, drawn, bucket):
    """A clicked point zooms into its bucket (and group); a legend click keeps one group."""
    group_field = drawn.get("group")
    groups = drawn.get("groups") or []
    no = no_update
    if dash.ctx.triggered_prop_ids.get("explore-graph.restyleData") is not None:
        visible_lines = legend_choice(restyled)
        if group_field and len(visible_lines) == 1 and visible_lines[0] < len(groups):
            chosen = groups[visible_lines[0]]
            if chosen is not None:
                return no, no, no, no, no, no, with_filter(filters, group_field, chosen), no
        raise PreventUpdate
    point = (clicked or {}).get("points", [{}])[0]
    try:
        start = parse_moment(str(point["x"]), "bucket")
    except (KeyError, QueryError):
        raise PreventUpdate from None
    width = timedelta(seconds=float(drawn.get("width", 0)))
    chosen = point.get("customdata")
    narrowed = with_filter(filters, group_field, chosen) if group_field and chosen else filters
    if width <= timedelta(minutes=1):  # nothing finer to zoom into: keep the range
        return no, no, no, no, no, no, narrowed, no
    end = start + width
    naive = (start.replace(tzinfo=None), end.replace(tzinfo=None))
    return CUSTOM, picker(naive[0]), picker(naive[1]), "block", "block", "auto", narrowed, no


def legend_choice(restyled) -> list[int]:
    """The lines left visible by a legend click ('toggleothers' hides all but one)."""
    if not isinstance(restyled, list) or len(restyled) != 2 or not isinstance(restyled[0], dict):
        return []
    shown, indices = restyled[0].get("visible"), restyled[1]
    if not isinstance(shown, list) or not isinstance(indices, list):
        return []
    return [index for index, seen in zip(indices, shown, strict=False) if seen is True]


def with_filter(filters, field, value):
    added = f"{field}:eq:{value}"
    return filters if added in filters else [*filters, added]


def picker(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def refused(message: str) -> tuple[object, ...]:
    """The chart says why there is nothing to draw (not the last chart under a new question)."""
    return message_figure(message, 420), {}, [], {"display": "none"}, no_update, message, None


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
    if chart.agg != "count" and chart.field not in numeric_fields(dataset):
        return refused("Choose a numeric field.")
    try:
        found = answer(chart, dataset)
    except QueryError as exc:
        return refused(sentence(exc))
    grouped = chart.group is not None
    table = chart.view == "table"
    points = sum(len(line.points) for line in found.lines)
    count = len(found.lines)
    lines = f" in {counted(count, 'group')}" if grouped else ""
    note = f"{counted(points, 'point')} in {found.bucket} buckets{lines}"
    note = note if points else "No events in this range."
    drawn = {"width": found.width.total_seconds(), "group": chart.group, "groups": found.groups}
    return (
        answer_figure(found, chart.view, grouped, chart.agg),
        {"display": "none"} if table else {},
        table_rows(found, grouped),
        {} if table else {"display": "none"},
        "/explore?" + chart.query_string(),
        note,
        drawn,
    )


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
    if dataset is None:
        return no_update
    try:
        found = answer(chart, dataset)
    except QueryError:
        return no_update
    grouped = chart.group is not None
    header = ["bucket", chart.group, found.title] if grouped else ["bucket", found.title]
    rows = (
        [bucket.isoformat(), line_name(line, found.title, grouped), value]
        if grouped
        else [bucket.isoformat(), value]
        for line in found.lines
        for bucket, value in line.points
    )
    content = "".join(csv_lines(header, rows))
    audit.record_export("explore", current_user, dataset.name, agg=chart.agg, range=chart.range)
    return dcc.send_string(content, f"{dataset.name}-{chart.agg}-{chart.range}.csv")
