"""Typed read queries over a dataset's events: filtered pages and bucketed aggregates.

Field names come only from the dataset's schema and, like every value, reach PostgreSQL as
bound parameters (``payload ->> :f0``); the SQL text is assembled from constant fragments
chosen by name, never from what the caller typed.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from psycopg.rows import namedtuple_row
from sqlalchemy import TextClause, text

from app.database import run
from app.models import Dataset

NUMERIC_TYPES = frozenset({"integer", "float"})
OPERATORS: dict[str, frozenset[str]] = {
    "integer": frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "between"}),
    "float": frozenset({"eq", "ne", "lt", "lte", "gt", "gte", "in", "between"}),
    "text": frozenset({"eq", "ne", "contains", "in"}),
    "timestamp": frozenset({"eq", "ne", "contains", "in"}),
    "boolean": frozenset({"eq", "ne"}),
}
COMPARISONS = {"eq": "=", "ne": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
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


# A filtered page walks the events in (ts, id) order, a window at a time, growing the window
# each round: the planner cannot estimate how many events a JSON filter keeps, and guessing
# few, it reads and sorts the whole range even when the first few hundred events fill the page.
FIRST_WINDOW = 1_000
WINDOW_GROWTH = 4


def find_events(
    dataset: Dataset,
    span: TimeRange,
    filters: Sequence[Filter] = (),
    limit: int = 100,
    cursor: str | None = None,
) -> EventPage:
    """Return up to ``limit`` events oldest first (by ts, then id), after ``cursor``."""
    scope, params = _scope(dataset, span)
    tests, filter_params = _filters(dataset, filters)
    after = decode_cursor(cursor) if cursor is not None else None
    if tests:
        rows = _walk(scope, tests, params | filter_params, after, limit + 1)
    else:
        rows = _first_events(scope, params, after, limit + 1)
    # The payload goes out as PostgreSQL writes jsonb (valid JSON, keys in jsonb's order:
    # shorter first), not read into Python and written again.
    page = EventPage(
        events=[
            {"id": row.id, "ts": _iso(row.ts), "values": orjson.Fragment(row.payload)}
            for row in rows[:limit]
        ]
    )
    if len(rows) > limit:
        last = rows[limit - 1]
        page.next_cursor = encode_cursor(last.ts, last.id)
    return page


def _after(where: list[str], params: dict[str, Any], after: tuple[datetime, int] | None) -> None:
    if after is not None:
        params["after_ts"], params["after_id"] = after
        # ``ts >=`` lets the (dataset_id, ts) index bound the scan; the row test is exact.
        where.append("ts >= :after_ts AND (ts, id) > (:after_ts, :after_id)")


def _first_events(
    scope: list[str], params: dict[str, Any], after: tuple[datetime, int] | None, count: int
) -> list[Any]:
    where, params = list(scope), dict(params)
    _after(where, params, after)
    sql = (
        "SELECT id, ts, payload::text AS payload FROM events WHERE "  # noqa: S608 (see top)
        + " AND ".join(where)
        + " ORDER BY ts, id LIMIT :limit"
    )
    return _rows(sql, params | {"limit": count})


def _walk(
    scope: list[str],
    tests: list[str],
    params: dict[str, Any],
    after: tuple[datetime, int] | None,
    count: int,
) -> list[Any]:
    """The first ``count`` events passing ``tests``, window by window in (ts, id) order."""
    found: list[Any] = []
    window = FIRST_WINDOW
    while True:
        where, round_params = list(scope), dict(params)
        _after(where, round_params, after)
        round_params |= {"window": window, "wanted": count - len(found)}
        sql = (
            "WITH w AS MATERIALIZED (SELECT id, ts, payload FROM events WHERE "  # noqa: S608
            + " AND ".join(where)
            + " ORDER BY ts, id LIMIT :window), "
            "hits AS (SELECT id, ts, payload FROM w WHERE "
            + " AND ".join(tests)
            + " ORDER BY ts, id LIMIT :wanted) "
            "SELECT id, ts, payload::text AS payload, NULL::bigint AS seen FROM hits UNION ALL "
            "SELECT id, ts, NULL, (SELECT count(*) FROM w) FROM (SELECT id, ts FROM w "
            "ORDER BY ts DESC, id DESC LIMIT 1) AS last"
        )
        rows = _rows(sql, round_params)
        found += sorted((row for row in rows if row.seen is None), key=lambda row: (row.ts, row.id))
        last = next((row for row in rows if row.seen is not None), None)
        if len(found) >= count or last is None or last.seen < window:
            return found
        after = (last.ts, last.id)
        window *= WINDOW_GROWTH


BUCKET_WIDTHS = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}


def bucketed_series(
    dataset: Dataset,
    span: TimeRange,
    bucket: str,
    agg: str,
    field_name: str | None,
    filters: Sequence[Filter] = (),
    group_by: str | None = None,
    top: int = 5,
) -> orjson.Fragment:
    """The explore page's query (``chart_series``) with the API's bucket names (UTC), as the
    JSON array the API answers with (``_written_by_the_server``)."""
    if bucket not in BUCKET_WIDTHS:
        raise QueryError(f"bucket is one of {', '.join(BUCKET_WIDTHS)}")
    if field_name is not None and column_types(dataset).get(field_name) not in NUMERIC_TYPES:
        raise QueryError(f"{field_name!r} is not a numeric field of {dataset.name}")
    if field_name is not None and agg == "count":
        field_name = None
    width = BUCKET_WIDTHS[bucket]
    sql, params = _series_query(dataset, span, width, agg, field_name, filters, group_by, top)
    return _written_by_the_server(sql, params, grouped=group_by is not None)


# Count/sum/avg/min/max per bucket (``field`` '' counts events): ``insightwave_series`` reads
# the rollups for the whole minutes or hours of the range and the events at its edges (equal
# to a GROUP BY). Its rows take the shape of the events' (bucket, other, grp, value).
ROLLUP_VALUES = {
    "count": "n",
    "sum": "total",
    "avg": "CASE WHEN n <> 0 AND total IS NOT NULL THEN total / n END",
    "min": "minimum",
    "max": "maximum",
}
SERIES_FROM_ROLLUPS = (
    "SELECT bucket, false AS other, NULL::text AS grp, {value} AS value "
    "FROM insightwave_series(:dataset, :field, :bucket, :start, :end) ORDER BY bucket"
)


def _where(
    dataset: Dataset, span: TimeRange, filters: Sequence[Filter]
) -> tuple[list[str], dict[str, Any]]:
    where, params = _scope(dataset, span)
    tests, filter_params = _filters(dataset, filters)
    return where + tests, params | filter_params


def _scope(dataset: Dataset, span: TimeRange) -> tuple[list[str], dict[str, Any]]:
    """The conditions that pick a dataset's events in a time range (its ts index answers them)."""
    where = ["dataset_id = :dataset"]
    params: dict[str, Any] = {"dataset": dataset.id}
    if span.start is not None:
        where.append("ts >= :start")
        params["start"] = span.start
    if span.end is not None:
        where.append("ts < :end")
        params["end"] = span.end
    return where, params


def _filters(dataset: Dataset, filters: Sequence[Filter]) -> tuple[list[str], dict[str, Any]]:
    tests: list[str] = []
    params: dict[str, Any] = {}
    types = column_types(dataset)
    for number, condition in enumerate(filters):
        clause, values = _condition(condition, types, f"f{number}", f"v{number}")
        tests.append(clause)
        params.update(values)
    return tests, params


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
        numbers = _parse_numbers(condition)
        if isinstance(numbers, list) and condition.op == "between":
            params[f"{value}_low"], params[f"{value}_high"] = numbers
        else:
            params[value] = numbers
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
    if condition.op == "between":
        return f"{left} BETWEEN :{value}_low AND :{value}_high", params
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
    parts = condition.value.split(",") if condition.op in {"in", "between"} else [condition.value]
    if condition.op == "in" and len(parts) > MAX_IN_VALUES:
        raise QueryError(f"'in' takes at most {MAX_IN_VALUES} values")
    if condition.op == "between" and len(parts) != 2:
        raise QueryError(f"'between' takes two numbers, low,high: {condition.value!r}")
    try:
        numbers = [float(part) for part in parts]
    except ValueError as exc:
        raise QueryError(f"{condition.field!r} is numeric: {condition.value!r}") from exc
    if any(number != number or number in (float("inf"), float("-inf")) for number in numbers):
        raise QueryError(f"{condition.field!r} takes finite numbers")
    if condition.op == "between" and numbers[0] > numbers[1]:
        raise QueryError(f"'between' takes the lower number first: {condition.value!r}")
    return numbers if condition.op in {"in", "between"} else numbers[0]


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


def time_span(dataset: Dataset) -> tuple[datetime, datetime] | None:
    """The times of the dataset's first and last events (both ends of its index), if any."""
    (row,) = _rows(
        "SELECT min(ts) AS first, max(ts) AS last FROM events WHERE dataset_id = :dataset_id",
        {"dataset_id": dataset.id},
    )
    return (row.first, row.last) if row.first is not None else None


def _rows(sql: str, params: dict[str, Any]) -> list[Any]:
    """Run ``sql`` (``:name`` parameters) on the session's connection; rows by column name.

    Not through the ORM: its work per statement cost more than an API read's query itself.
    """
    return run(_statement(sql), params, namedtuple_row)


@functools.lru_cache(maxsize=512)
def _statement(sql: str) -> TextClause:
    """``text(sql)``, once per distinct query shape (parsing it per request cost measurably)."""
    return text(sql)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


PERCENTILES = {"p50": 0.5, "p95": 0.95}
CHART_AGGREGATES = (*AGGREGATES, *PERCENTILES)
MAX_GROUPS = 20


@dataclass
class Series:
    """One line of a chart: (bucket start, value) points of one group, or of every event.

    ``group`` is the group's value as text (None for events without one, or when the chart
    is not grouped); ``other`` marks the line that gathers every group beyond the top N.
    """

    group: str | None = None
    other: bool = False
    points: list[tuple[datetime, float | None]] = field(default_factory=list)


def chart_series(
    dataset: Dataset,
    span: TimeRange,
    width: timedelta,
    agg: str,
    field_name: str | None,
    filters: Sequence[Filter] = (),
    group_by: str | None = None,
    top: int = 5,
) -> list[Series]:
    """Aggregate per ``width`` bucket (binned from 2000-01-01 UTC), optionally per group.

    Grouped, the ``top`` groups with the most events in the range get a line each and the
    rest one ``other`` line. Count, sum, avg, min and max without filters or groups come
    from the rollups; everything else from the events (the answers are equal).
    """
    sql, params = _series_query(dataset, span, width, agg, field_name, filters, group_by, top)
    lines: dict[tuple[bool, str | None], Series] = {}
    for bucket_start, other, group, value in _rows(sql, params):
        line = lines.get((other, group))
        if line is None:
            line = lines[other, group] = Series(group=group, other=other)
        line.points.append((bucket_start, _float(value)))
    return list(lines.values())


def _written_by_the_server(sql: str, params: dict[str, Any], grouped: bool) -> orjson.Fragment:
    """The answer of ``sql`` (a ``_series_query``) as the API writes it, written by
    PostgreSQL: the JSON array of points (``{"bucket", "value"}``) or, grouped, of lines
    (``{"group", "other", "points"}``).

    The same answer as ``chart_series`` reads; only the JSON comes from the server. Turning
    hundreds of rows into datetimes and floats and those back into text cost a grouped
    per-minute series more than the rest of its request did (BENCHMARKS.md, "Load").
    """
    points = _array(_POINT_JSON, "bucket")
    if not grouped:
        written = f"SELECT {points} FROM ({sql}) AS line"  # noqa: S608
    else:
        line = (
            """'{"group":' || coalesce(to_json(grp)::text, 'null') || ',"other":' """
            """|| CASE WHEN other THEN 'true' ELSE 'false' END || ',"points":' || points || '}'"""
        )
        written = (
            f"SELECT {_array(line, 'other, grp NULLS LAST')} FROM ("  # noqa: S608
            f"SELECT other, grp, {points} AS points FROM ({sql}) AS rows "
            "GROUP BY other, grp) AS lines"
        )
    ((text_form,),) = run(_statement(written), params)
    return orjson.Fragment(text_form)


# JSON written by PostgreSQL as the API's encoder writes it: keys sorted, buckets in ISO 8601
# UTC (whole seconds: minutes, hours and days from 2000-01-01), numbers as float8out writes
# them (the shortest form that reads back exactly) and a non-finite one as null.
_POINT_JSON = (
    """'{"bucket":"' || to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"')"""
    """ || '","value":' || CASE WHEN value IS NULL OR CAST(value AS float8) IN """
    """('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN 'null' """
    """ELSE to_json(value)::text END || '}'"""
)


def _array(element: str, order: str) -> str:
    return f"'[' || coalesce(string_agg({element}, ',' ORDER BY {order}), '') || ']'"


def _series_query(
    dataset: Dataset,
    span: TimeRange,
    width: timedelta,
    agg: str,
    field_name: str | None,
    filters: Sequence[Filter],
    group_by: str | None,
    top: int,
) -> tuple[str, dict[str, Any]]:
    """A chart's statement, (bucket, other, grp, value) rows ordered by line, then bucket,
    and its parameters."""
    if agg not in CHART_AGGREGATES:
        raise QueryError(f"agg is one of {', '.join(CHART_AGGREGATES)}")
    if span.start is None or span.end is None:
        raise QueryError("a chart needs a start and an end")
    types = column_types(dataset)
    if agg != "count" and types.get(field_name or "") not in NUMERIC_TYPES:
        raise QueryError(f"{agg} needs a numeric field of {dataset.name}")
    measured = field_name if agg != "count" else None
    if group_by is None and not filters and agg in AGGREGATES:
        params = {"dataset": dataset.id, "field": measured or "", "bucket": width}
        params |= {"start": span.start, "end": span.end}
        return SERIES_FROM_ROLLUPS.format(value=ROLLUP_VALUES[agg]), params
    where, params = _where(dataset, span, filters)
    params |= {"width": width, "measure": measured or ""}
    if agg in PERCENTILES:
        params["fraction"] = PERCENTILES[agg]
    bucket = "date_bin(:width, ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')"
    if group_by is None:
        if agg == "count":
            measure = "count(*)"
        elif agg in PERCENTILES:
            measure = f"percentile_cont(:fraction) WITHIN GROUP (ORDER BY {_number(':measure')})"
        else:
            measure = f"{AGGREGATES[agg]}({_number(':measure')})"
        scoped = "SELECT ts, payload FROM events WHERE " + " AND ".join(where)  # noqa: S608
        sql = f"SELECT {bucket} AS bucket, false AS other, NULL AS grp, {measure} AS value "
        sql += f"FROM ({scoped}) AS scoped GROUP BY 1 ORDER BY 1"
        return sql, params
    if group_by not in types:
        raise QueryError(f"no field {group_by!r}; fields: {', '.join(types)}")
    if not 1 <= top <= MAX_GROUPS:
        raise QueryError(f"top is 1 to {MAX_GROUPS}")
    params |= {"group": group_by, "top": top}
    value = "NULL::float8" if agg == "count" else _number(":measure")
    # OFFSET 0 keeps ``scoped`` a subquery of its own: pulled up into the aggregation, its
    # ``v`` was read from each payload once per aggregate (count, sum, min and max: four
    # times), which took more than half of a grouped chart's time in PostgreSQL.
    sql = _grouped_sql(
        f"SELECT {bucket} AS bucket, payload ->> :group AS grp, {value} AS v "  # noqa: S608
        "FROM events WHERE " + " AND ".join(where) + " OFFSET 0",
        agg,
    )
    return sql, params


# Grouped, each event's bucket, group and value are read from its payload once. Count, sum,
# avg, min and max are aggregated per bucket and group first, and the groups beyond the top N
# merged from those partial answers; percentiles need the values themselves.
MERGED = {
    "count": "sum(n)",
    "sum": "sum(total)",
    "avg": "sum(total) / nullif(sum(n_v), 0)",
    "min": "min(low)",
    "max": "max(high)",
}
TOP_GROUPS = "SELECT grp FROM {source} GROUP BY 1 ORDER BY {size} DESC, 1 NULLS LAST LIMIT :top"
LABELLED = (
    "SELECT {source}.*, NOT EXISTS (SELECT 1 FROM top "
    "WHERE top.grp IS NOT DISTINCT FROM {source}.grp) AS other FROM {source}"
)


def _grouped_sql(scoped: str, agg: str) -> str:
    """One line per top group and one ``other`` line, from ``scoped`` (bucket, grp, v) rows."""
    if agg in PERCENTILES:
        source, size = "scoped", "count(*)"
        parts = f"scoped AS MATERIALIZED ({scoped})"
        measure = "percentile_cont(:fraction) WITHIN GROUP (ORDER BY v)"
    else:
        source, size = "per", "sum(n)"
        parts = (
            "per AS MATERIALIZED (SELECT bucket, grp, count(*) AS n, count(v) AS n_v, "  # noqa: S608
            f"sum(v) AS total, min(v) AS low, max(v) AS high FROM ({scoped}) AS scoped "
            "GROUP BY 1, 2)"
        )
        measure = MERGED[agg]
    top = TOP_GROUPS.format(source=source, size=size)
    return (
        f"WITH {parts}, top AS MATERIALIZED ({top}), "  # noqa: S608 (constant fragments)
        f"labelled AS ({LABELLED.format(source=source)}) "
        "SELECT bucket, other, CASE WHEN other THEN NULL ELSE grp END AS grp, "
        f"{measure} AS value FROM labelled GROUP BY 1, 2, 3 ORDER BY 2, 3 NULLS LAST, 1"
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)
