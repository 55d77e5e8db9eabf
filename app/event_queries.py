"""Typed read queries over a dataset's events: filtered pages and bucketed aggregates.

Field names come only from the dataset's schema and, like every value, reach PostgreSQL as
bound parameters (``payload ->> :f0``); the SQL text is assembled from constant fragments
chosen by name, never from what the caller typed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import text

from app.extensions import db
from app.models import Dataset

NUMERIC_TYPES = frozenset({"integer", "float"})
OPERATORS: dict[str, frozenset[str]] = {
    "integer": frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in"}),
    "float": frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in"}),
    "text": frozenset({"eq", "ne", "contains", "in"}),
    "timestamp": frozenset({"eq", "ne", "contains", "in"}),
    "boolean": frozenset({"eq", "ne"}),
}
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
BUCKETS = ("minute", "hour", "day")
AGGREGATES = {"count": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max"}
MAX_IN_VALUES = 100


class QueryError(ValueError):
    """A filter, field, cursor or aggregate the dataset cannot answer (a 400 for the API)."""


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class EventPage:
    events: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def parse_filter(spec: str) -> Filter:
    """Read ``field:op:value`` (the value may itself hold colons)."""
    name, _, rest = spec.partition(":")
    op, sep, value = rest.partition(":")
    if not name or not sep:
        raise QueryError(f"a filter reads field:op:value, not {spec!r}")
    if "\x00" in spec:
        raise QueryError("a filter may not hold a NUL character")  # PostgreSQL text cannot
    return Filter(name, op, value)


def column_types(dataset: Dataset) -> dict[str, str]:
    return {str(column["name"]): str(column["type"]) for column in dataset.columns}


def encode_cursor(ts: datetime, event_id: int) -> str:
    raw = orjson.dumps([ts.astimezone(UTC).isoformat(), event_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Return the (ts, id) after which the next page starts."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ts, event_id = orjson.loads(raw)
        if not isinstance(event_id, int) or isinstance(event_id, bool):
            raise TypeError(event_id)
        return datetime.fromisoformat(ts), event_id
    except (binascii.Error, orjson.JSONDecodeError, TypeError, ValueError) as exc:
        raise QueryError("the cursor is not one this API gave out") from exc


def find_events(
    dataset: Dataset,
    span: TimeRange,
    filters: Sequence[Filter] = (),
    limit: int = 100,
    cursor: str | None = None,
) -> EventPage:
    """Return up to ``limit`` events oldest first (by ts, then id), after ``cursor``."""
    where, params = _where(dataset, span, filters)
    if cursor is not None:
        params["after_ts"], params["after_id"] = decode_cursor(cursor)
        where.append("(ts, id) > (:after_ts, :after_id)")
    params["limit"] = limit + 1
    sql = (
        "SELECT id, ts, payload FROM events WHERE "  # noqa: S608 (constant fragments, see top)
        + " AND ".join(where)
        + " ORDER BY ts, id LIMIT :limit"
    )
    rows = db.session.execute(text(sql), params).all()
    page = EventPage(
        events=[
            {"id": row.id, "ts": _iso(row.ts), "values": dict(row.payload)} for row in rows[:limit]
        ]
    )
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = encode_cursor(last.ts, last.id)
    return page


def bucketed_series(
    dataset: Dataset,
    span: TimeRange,
    bucket: str,
    agg: str,
    field_name: str | None,
    filters: Sequence[Filter] = (),
) -> list[dict[str, Any]]:
    """Aggregate events per time bucket (UTC); empty buckets are absent.

    Without filters the answer comes from the rollups (``insightwave_series``, equal to a
    GROUP BY over the events); with filters, from a GROUP BY over the events.
    """
    if bucket not in BUCKETS:
        raise QueryError(f"bucket is one of {', '.join(BUCKETS)}")
    function = AGGREGATES.get(agg)
    if function is None:
        raise QueryError(f"agg is one of {', '.join(AGGREGATES)}")
    where, params = _where(dataset, span, filters)
    if field_name is None:
        if agg != "count":
            raise QueryError(f"{agg} needs a numeric field")
        measure = "count(*)"
    else:
        if column_types(dataset).get(field_name) not in NUMERIC_TYPES:
            raise QueryError(f"{field_name!r} is not a numeric field of {dataset.name}")
        params["measure"] = field_name
        measure = f"{function}({_number(':measure')})"
    if not filters and span.start is not None and span.end is not None:
        return _series_from_rollups(dataset, span.start, span.end, bucket, agg, field_name)
    params["bucket"] = bucket
    sql = (
        f"SELECT date_trunc(:bucket, ts, 'UTC') AS bucket, {measure} AS value "  # noqa: S608
        "FROM events WHERE " + " AND ".join(where) + " GROUP BY 1 ORDER BY 1"
    )
    rows = db.session.execute(text(sql), params).all()
    return [
        {"bucket": _iso(row.bucket), "value": None if row.value is None else float(row.value)}
        for row in rows
    ]


BUCKET_WIDTHS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
ROLLUP_VALUES: dict[str, Callable[[Any], Any]] = {
    "count": lambda row: row.n,
    "sum": lambda row: row.total,
    "avg": lambda row: row.total / row.n if row.n and row.total is not None else None,
    "min": lambda row: row.minimum,
    "max": lambda row: row.maximum,
}
SERIES_FROM_ROLLUPS = text(
    "SELECT bucket, n, total, minimum, maximum "
    "FROM insightwave_series(:dataset, :field, :bucket, :start, :end) ORDER BY bucket"
)


def _series_from_rollups(
    dataset: Dataset, start: datetime, end: datetime, bucket: str, agg: str, field: str | None
) -> list[dict[str, Any]]:
    points = rollup_series(dataset, field, BUCKET_WIDTHS[bucket], agg, start, end)
    return [
        {"bucket": _iso(bucket), "value": None if value is None else float(value)}
        for bucket, value in points
    ]


def rollup_series(
    dataset: Dataset, field: str | None, width: timedelta, agg: str, start: datetime, end: datetime
) -> list[tuple[datetime, Any]]:
    """Return (bucket start, value) of count/sum/avg/min/max per bucket, from the rollups.

    ``field`` None counts events. ``insightwave_series`` reads the rollups for the whole
    minutes or hours of the range and the events at its edges (equal to a GROUP BY).
    """
    params = {"dataset": dataset.id, "field": field or "", "bucket": width}
    rows = db.session.execute(SERIES_FROM_ROLLUPS, params | {"start": start, "end": end})
    value = ROLLUP_VALUES[agg]
    return [(row.bucket, value(row)) for row in rows]


def _where(
    dataset: Dataset, span: TimeRange, filters: Sequence[Filter]
) -> tuple[list[str], dict[str, Any]]:
    where = ["dataset_id = :dataset"]
    params: dict[str, Any] = {"dataset": dataset.id}
    if span.start is not None:
        where.append("ts >= :start")
        params["start"] = span.start
    if span.end is not None:
        where.append("ts < :end")
        params["end"] = span.end
    types = column_types(dataset)
    for number, condition in enumerate(filters):
        clause, values = _condition(condition, types, f"f{number}", f"v{number}")
        where.append(clause)
        params.update(values)
    return where, params


def _condition(
    condition: Filter, types: dict[str, str], name: str, value: str
) -> tuple[str, dict[str, Any]]:
    kind = types.get(condition.field)
    if kind is None:
        raise QueryError(f"no field {condition.field!r}; fields: {', '.join(types)}")
    if condition.op not in OPERATORS.get(kind, frozenset()):
        allowed = ", ".join(sorted(OPERATORS.get(kind, ())))
        raise QueryError(f"{condition.field!r} ({kind}) takes the operators {allowed}")
    params: dict[str, Any] = {name: condition.field}
    if kind in NUMERIC_TYPES:
        left = _number(f":{name}")
        params[value] = _parse_numbers(condition)
    elif kind == "boolean":
        left = f"(payload -> :{name})"
        params[value] = _parse_boolean(condition.value)
        test = "IS TRUE" if condition.op == "eq" else "IS NOT TRUE"
        return f"({left} = to_jsonb(CAST(:{value} AS boolean))) {test}", params
    else:
        left = f"(payload ->> :{name})"
        params[value] = _parse_texts(condition)
    if condition.op == "contains":
        return f"strpos(lower({left}), lower(:{value})) > 0", params
    if condition.op == "in":
        cast = "float8[]" if kind in NUMERIC_TYPES else "text[]"
        return f"{left} = ANY(CAST(:{value} AS {cast}))", params
    return f"{left} {COMPARISONS[condition.op]} :{value}", params


def _number(field_param: str) -> str:
    # Only JSON numbers are cast, so a stray string in the payload cannot fail the query.
    return (
        f"(CASE WHEN jsonb_typeof(payload -> {field_param}) = 'number' "
        f"THEN CAST(payload ->> {field_param} AS float8) END)"
    )


def _parse_numbers(condition: Filter) -> float | list[float]:
    parts = condition.value.split(",") if condition.op == "in" else [condition.value]
    if condition.op == "in" and len(parts) > MAX_IN_VALUES:
        raise QueryError(f"'in' takes at most {MAX_IN_VALUES} values")
    try:
        numbers = [float(part) for part in parts]
    except ValueError as exc:
        raise QueryError(f"{condition.field!r} is numeric: {condition.value!r}") from exc
    if any(number != number or number in (float("inf"), float("-inf")) for number in numbers):
        raise QueryError(f"{condition.field!r} takes finite numbers")
    return numbers if condition.op == "in" else numbers[0]


def _parse_texts(condition: Filter) -> str | list[str]:
    if condition.op != "in":
        return condition.value
    parts = condition.value.split(",")
    if len(parts) > MAX_IN_VALUES:
        raise QueryError(f"'in' takes at most {MAX_IN_VALUES} values")
    return parts


def _parse_boolean(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered not in {"true", "false"}:
        raise QueryError(f"a boolean filter takes true or false, not {raw!r}")
    return lowered == "true"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
