"""A chart as the explore page, its links and saved dashboards describe it, and its answer.

A chart names a dataset, a time range (a preset ending now, or a custom start and end), an
aggregate of a field per time bucket, optionally per group (top N and "other") and under
filters (``field:op:value``, as in the query API). Read leniently from a URL or a saved
spec (values the page does not offer fall back to defaults); checked strictly when answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from app.event_queries import (
    CHART_AGGREGATES,
    MAX_GROUPS,
    QueryError,
    Series,
    TimeRange,
    chart_series,
    column_types,
    parse_filter,
)
from app.models import Dataset

PRESETS = {  # range name -> length, ending now
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
    "1y": timedelta(days=365),
}
CUSTOM = "custom"
BUCKETS = {  # bucket name -> width
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
}
VIEWS = ("line", "bar", "area", "scatter", "table")
TARGET_POINTS = 120  # the automatic bucket aims at about this many points per line
MAX_POINTS = 5000  # a chosen bucket may not make a line longer than this
MAX_FILTERS = 10  # filters of one chart in Explore, or of one API query
MAX_SPAN = timedelta(days=3660)
MOMENT_FORMAT = "%Y-%m-%d %H:%M:%S"  # a custom range's ends, as the page's pickers show them
DEFAULT_TOP = 5


@dataclass(frozen=True)
class Chart:
    dataset: str | None = None
    range: str = "24h"
    start: str | None = None  # ISO 8601, UTC when no offset is given; only for "custom"
    end: str | None = None
    agg: str = "count"
    field: str | None = None
    bucket: str = "auto"
    view: str = "line"
    group: str | None = None
    top: int = DEFAULT_TOP
    filters: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Chart:
        """Keep what is well formed; fall back to the default for anything else.

        A URL query may give any key as a list of one value (``parse_qs``); filters repeat.
        """
        raw = {
            key: value[0]
            if isinstance(value, list) and len(value) == 1 and key not in ("filter", "filters")
            else value
            for key, value in raw.items()
        }

        def pick(key: str, allowed: Any, default: Any) -> Any:
            value = raw.get(key)
            return value if isinstance(value, str) and value in allowed else default

        def text(key: str) -> str | None:
            value = raw.get(key)
            return value if isinstance(value, str) and value and len(value) <= 200 else None

        filters = raw.get("filters", raw.get("filter", ()))
        if isinstance(filters, str):
            filters = (filters,)
        top = str(raw.get("top"))
        return cls(
            dataset=text("dataset"),
            range=pick("range", (*PRESETS, CUSTOM), "24h"),
            start=text("start"),
            end=text("end"),
            agg=pick("agg", CHART_AGGREGATES, "count"),
            field=text("field"),
            bucket=pick("bucket", BUCKETS, "auto"),
            view=pick("view", VIEWS, "line"),
            group=text("group"),
            top=int(top) if top.isdigit() and 1 <= int(top) <= MAX_GROUPS else DEFAULT_TOP,
            filters=tuple(
                item
                for item in (filters if isinstance(filters, list | tuple) else ())
                if isinstance(item, str) and item and len(item) <= 500
            )[:MAX_FILTERS],
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "filters": list(self.filters)}

    def query_string(self) -> str:
        """The URL query that reproduces this chart (only what differs from an empty one)."""
        pairs: list[tuple[str, Any]] = []
        for key, value in asdict(self).items():
            if key == "filters":
                pairs.extend(("filter", item) for item in value)
            elif (key == "top" and not self.group) or (
                key in ("start", "end") and self.range != CUSTOM
            ):
                continue
            elif value not in (None, ""):
                pairs.append((key, value))
        return urlencode(pairs)

    def over(self, span: str) -> Chart:
        """The same chart over a preset range (a dashboard's range applies to all its charts)."""
        return replace(self, range=span, start=None, end=None)


CHART_KEYS = tuple(item.name for item in fields(Chart))  # the explore page's controls, in order


@dataclass
class Answer:
    lines: list[Series]
    bucket: str
    width: timedelta
    start: datetime
    end: datetime
    title: str
    groups: list[str | None] = field(default_factory=list)  # per line: the value to drill into


def auto_bucket(span: timedelta) -> str:
    """The smallest bucket that keeps the chart at or under about ``TARGET_POINTS`` points."""
    for name, width in BUCKETS.items():
        if span / width <= TARGET_POINTS:
            return name
    return "7d"


def parse_moment(raw: str | None, what: str) -> datetime:
    if not raw:
        raise QueryError(f"choose the {what} of the range")
    try:
        moment = datetime.fromisoformat(raw.strip().replace(" ", "T", 1))
    except ValueError as exc:
        raise QueryError(f"the {what} {raw!r} is not a date and time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def range_over(first: datetime, last: datetime) -> tuple[str, str]:
    """A custom range of whole days around events from ``first`` to ``last``: the last ten
    years of them at most (the longest range a chart takes)."""
    end = last.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end += timedelta(days=1)
    start = max(first.astimezone(UTC), end - MAX_SPAN)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if start < end - MAX_SPAN:
        start += timedelta(days=1)
    return start.strftime(MOMENT_FORMAT), end.strftime(MOMENT_FORMAT)


def window(chart: Chart, now: datetime) -> tuple[datetime, datetime]:
    if chart.range != CUSTOM:
        return now - PRESETS[chart.range], now
    start, end = parse_moment(chart.start, "start"), parse_moment(chart.end, "end")
    if start >= end:
        raise QueryError("the range must start before it ends")
    if end - start > MAX_SPAN:
        raise QueryError("a range may span at most ten years")
    return start, end


def answer(chart: Chart, dataset: Dataset, now: datetime | None = None) -> Answer:
    """Compute the chart for ``dataset`` (already checked visible); QueryError says what's wrong."""
    start, end = window(chart, now or datetime.now(UTC))
    label = chart.bucket if chart.bucket in BUCKETS else auto_bucket(end - start)
    width = BUCKETS[label]
    if (end - start) / width > MAX_POINTS:
        raise QueryError(f"a {label} bucket makes too many points for this range: choose wider")
    types = column_types(dataset)
    if chart.group is not None and chart.group not in types:
        raise QueryError(f"no field {chart.group!r} to group by")
    filters = [parse_filter(item) for item in chart.filters]
    measured = None if chart.agg == "count" else chart.field
    lines = chart_series(
        dataset,
        TimeRange(start, end),
        width,
        chart.agg,
        measured,
        filters,
        chart.group,
        chart.top,
    )
    title = "count of events" if measured is None else f"{chart.agg}({measured})"
    return Answer(lines, label, width, start, end, title, [line_group(line) for line in lines])


def line_name(line: Series, title: str, grouped: bool) -> str:
    if not grouped:
        return title
    if line.other:
        return "other"
    return "(none)" if line.group is None else line.group


def line_group(line: Series) -> str | None:
    """The value a click on this line drills into (None: the line is not one group)."""
    return None if line.other else line.group
