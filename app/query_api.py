"""Read endpoints of ``/api/v1``: datasets, their schema, events and bucketed series.

A dataset the caller may not see answers 404 exactly as a missing one does. The SQL lives in
``app.event_queries``; these views only check access and translate its answers. Their reads
go to READ_DATABASE_URL when it is set (a replica); the guard before them uses DATABASE_URL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, jsonify
from flask_login import current_user

from app import event_queries
from app.access import find_visible_dataset, visible_datasets
from app.api import api_error, bp
from app.api_spec import (
    DatasetInfo,
    DatasetList,
    EventPage,
    EventsQuery,
    Series,
    SeriesQuery,
    responses,
    spec,
)
from app.database import reads_from_replica
from app.guard import requires
from app.models import Dataset, Role

SERIES_DEFAULT_SPAN = timedelta(hours=24)
TAGS = ["datasets"]


@bp.get("/datasets")
@requires(Role.VIEWER)
@reads_from_replica()
@spec.validate(resp=responses(DatasetList), tags=TAGS)
def list_datasets() -> Any:
    """List the datasets you may see, with their columns."""
    return jsonify(datasets=[_describe(dataset) for dataset in visible_datasets(current_user)])


@bp.get("/datasets/<name>")
@requires(Role.VIEWER)
@reads_from_replica()
@spec.validate(resp=responses(DatasetInfo, 404), tags=TAGS)
def describe_dataset(name: str) -> Any:
    """Describe one dataset: its columns and their types, time column and key."""
    dataset = find_visible_dataset(current_user, name)
    if dataset is None:
        return _not_found(name)
    return jsonify(_describe(dataset))


@bp.get("/datasets/<name>/events")
@requires(Role.VIEWER)
@reads_from_replica()
@spec.validate(query=EventsQuery, resp=responses(EventPage, 404), tags=TAGS)
def list_events(name: str, query: EventsQuery) -> Any:
    """Page through a dataset's events oldest first; follow ``next_cursor`` for the next page."""
    dataset = find_visible_dataset(current_user, name)
    if dataset is None:
        return _not_found(name)
    span = event_queries.TimeRange(_utc(query.from_), _utc(query.to))
    try:
        filters = [event_queries.parse_filter(item) for item in query.filter]
        page = event_queries.find_events(dataset, span, filters, query.limit, query.cursor)
    except event_queries.QueryError as exc:
        return api_error(400, "bad_query", str(exc))
    return jsonify(events=page.events, next_cursor=page.next_cursor)


@bp.get("/datasets/<name>/series")
@requires(Role.VIEWER)
@reads_from_replica()
@spec.validate(query=SeriesQuery, resp=responses(Series, 404), tags=TAGS)
def series(name: str, query: SeriesQuery) -> Any:
    """Aggregate a dataset per minute, hour or day over a time range (default: the last 24 h)."""
    dataset = find_visible_dataset(current_user, name)
    if dataset is None:
        return _not_found(name)
    end = _utc(query.to) or datetime.now(UTC)
    try:
        start = _utc(query.from_) or end - SERIES_DEFAULT_SPAN
    except OverflowError:
        return api_error(400, "bad_query", "to is too early to count a day back from; give from")
    if start >= end:
        return api_error(400, "bad_query", "from must be before to")
    try:
        filters = [event_queries.parse_filter(item) for item in query.filter]
        computed = event_queries.bucketed_series(
            dataset,
            event_queries.TimeRange(start, end),
            query.bucket,
            query.agg,
            query.field,
            filters,
            query.group_by,
            query.top,
        )
    except event_queries.QueryError as exc:
        return api_error(400, "bad_query", str(exc))
    answer: dict[str, Any] = {
        "dataset": dataset.name,
        "bucket": query.bucket,
        "agg": query.agg,
        "field": query.field,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "points": computed if query.group_by is None else [],
    }
    if query.group_by is not None:
        answer["groups"] = computed
    return jsonify(answer)


def _describe(dataset: Dataset) -> dict[str, Any]:
    return {
        "name": dataset.name,
        "label": dataset.label,
        "columns": dataset.columns,
        "time_column": dataset.time_column,
        "key_columns": list(dataset.key_columns or []),
    }


def _not_found(name: str) -> Response:
    return api_error(404, "not_found", f"no dataset {name!r}")


def _utc(moment: datetime | None) -> datetime | None:
    """Read a time without a zone as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
