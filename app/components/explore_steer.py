"""What the explore page's callbacks answer: where a link opens, drill-down by a click on the
chart or its legend, and the chart's and the export's contents for a dataset one may see."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
from dash import no_update
from dash.exceptions import PreventUpdate

from app import audit
from app.charts import (
    CUSTOM,
    PRESETS,
    Chart,
    answer,
    line_name,
    parse_moment,
    range_over,
)
from app.components.explore import answer_figure, message_figure, table_rows
from app.components.messages import counted, sentence
from app.event_queries import QueryError, time_span
from app.models import Dataset, User
from app.queries import numeric_fields
from etl.export import csv_lines


def where_the_data_is(chart: Chart, dataset: Dataset) -> tuple[Chart, str | None]:
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


def drill(
    clicked: Any, restyled: Any, filters: list[str], drawn: dict[str, Any]
) -> tuple[Any, ...]:
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


def legend_choice(restyled: Any) -> list[int]:
    """The lines left visible by a legend click ('toggleothers' hides all but one)."""
    if not isinstance(restyled, list) or len(restyled) != 2 or not isinstance(restyled[0], dict):
        return []
    shown, indices = restyled[0].get("visible"), restyled[1]
    if not isinstance(shown, list) or not isinstance(indices, list):
        return []
    return [index for index, seen in zip(indices, shown, strict=False) if seen is True]


def with_filter(filters: list[str], field: str, value: object) -> list[str]:
    added = f"{field}:eq:{value}"
    return filters if added in filters else [*filters, added]


def picker(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def refused(message: str) -> tuple[Any, ...]:
    """The chart says why there is nothing to draw (not the last chart under a new question)."""
    return message_figure(message, 420), {}, [], {"display": "none"}, no_update, message, None


def drawing(chart: Chart, dataset: Dataset) -> tuple[Any, ...]:
    """The chart's figure and style, the table's rows and style, the link that reproduces the
    view, the note under it and what was drawn (for drill-down)."""
    if chart.agg != "count" and chart.field not in numeric_fields(dataset):
        return refused("Choose a numeric field.")
    try:
        found = answer(chart, dataset)
    except QueryError as exc:
        return refused(sentence(exc))
    grouped = chart.group is not None
    table = chart.view == "table"
    points = sum(len(line.points) for line in found.lines)
    lines = f" in {counted(len(found.lines), 'group')}" if grouped else ""
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


def export_csv(chart: Chart, dataset: Dataset, user: User) -> str | None:
    """What the chart shows as CSV text, computed again on the server (audited), or None when
    the question has no answer."""
    try:
        found = answer(chart, dataset)
    except QueryError:
        return None
    group = chart.group
    header = ["bucket", found.title] if group is None else ["bucket", group, found.title]
    rows = (
        [bucket.isoformat(), value]
        if group is None
        else [bucket.isoformat(), line_name(line, found.title, True), value]
        for line in found.lines
        for bucket, value in line.points
    )
    content = "".join(csv_lines(header, rows))
    audit.record_export("explore", user, dataset.name, agg=chart.agg, range=chart.range)
    return content
