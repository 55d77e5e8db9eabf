"""``insightwave_series`` (rollups plus raw edges) answers exactly as a GROUP BY over events."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from app.cli import main
from app.database import libpq_url
from etl.pipeline import IngestOptions, ingest_records
from tests.conftest import PLOTLY

SERIES = "SELECT * FROM {}(%s, %s, %s, %s, %s) ORDER BY bucket"


def series(conn, function: str, dataset: int, field: str, bucket: timedelta, start, end):
    rows = conn.execute(SERIES.format(function), (dataset, field, bucket, start, end)).fetchall()
    return [tuple(row) for row in rows]


def assert_same(fast, raw) -> None:
    assert [row[:2] for row in fast] == [row[:2] for row in raw]  # buckets and counts
    for got, want in zip(fast, raw, strict=True):
        for a, b in zip(got[2:], want[2:], strict=True):
            assert (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.fixture
def conn(database_url):
    with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
        yield connection


def dataset_id(conn, name: str) -> int:
    return conn.execute("SELECT id FROM datasets WHERE name = %s", (name,)).fetchone()[0]


START = datetime(2019, 1, 1, tzinfo=UTC)
RANGES = [
    (START, START + timedelta(days=90)),  # everything, aligned
    (START + timedelta(days=3, minutes=7, seconds=13), START + timedelta(days=40, hours=5)),
    (datetime(2019, 1, 5, 13, 8, 20, tzinfo=UTC), datetime(2019, 1, 5, 13, 8, 50, tzinfo=UTC)),
    (datetime(2019, 2, 1, 10, 29, tzinfo=UTC), datetime(2019, 2, 2, 18, 1, 1, tzinfo=UTC)),
    (START - timedelta(days=30), START),  # before any event
]
BUCKETS = [timedelta(minutes=1), timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)]


@pytest.mark.parametrize("field", ["", "total", "quantity", "unit_price"])
def test_series_from_rollups_equals_raw_on_supermarket_sales(runner, conn, field):
    result = runner.invoke(
        main, ["ingest", str(PLOTLY / "supermarket_Sales.csv"), "--dataset", "sales"]
    )
    assert result.exit_code == 0, result.output
    sales = dataset_id(conn, "sales")
    compared = 0
    for start, end in RANGES:
        for bucket in BUCKETS:
            fast = series(conn, "insightwave_series", sales, field, bucket, start, end)
            raw = series(conn, "insightwave_series_raw", sales, field, bucket, start, end)
            assert_same(fast, raw)
            compared += len(raw)
    assert compared > 1000  # the ranges above do hold events


def test_series_matches_hand_computed_answers(conn):
    times = [
        "2024-03-01T10:00:30Z",
        "2024-03-01T10:00:45Z",
        "2024-03-01T10:01:10Z",
        "2024-03-01T11:59:59Z",
        "2024-03-01T12:00:00Z",
    ]
    values = [2.0, 4.0, None, 10.0, 1.5]
    records = [{"time": t, "v": v, "tag": "x"} for t, v in zip(times, values, strict=True)]
    with conn.transaction():
        ingest_records(conn, records, IngestOptions(dataset="tiny", time_column="time"))
    tiny = dataset_id(conn, "tiny")
    day = datetime(2024, 3, 1, tzinfo=UTC)
    hourly = series(
        conn, "insightwave_series", tiny, "v", timedelta(hours=1), day, day + timedelta(days=1)
    )
    assert hourly == [
        (day.replace(hour=10), 2, 6.0, 2.0, 4.0),  # 10:01:10 has no value: not counted
        (day.replace(hour=11), 1, 10.0, 10.0, 10.0),
        (day.replace(hour=12), 1, 1.5, 1.5, 1.5),
    ]
    counts = series(
        conn,
        "insightwave_series",
        tiny,
        "",
        timedelta(minutes=1),
        day.replace(hour=10, second=40),
        day.replace(hour=12, second=1),
    )
    assert [(row[0].minute, row[0].hour, row[1]) for row in counts] == [
        (0, 10, 1),
        (1, 10, 1),
        (59, 11, 1),
        (0, 12, 1),
    ]


def test_loading_outside_a_transaction_is_refused_rather_than_miscounted(conn):
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        ingest_records(conn, [{"time": "2024-03-01T10:00:00Z", "v": 1}], IngestOptions("x"))


ROLLUPS_READ = (
    "SELECT seq_tup_read + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
    "WHERE relname = 'rollups'"
)


def rollup_rows_read(conn, dataset: int, bucket: timedelta, span) -> int:
    """Rollup rows one ``insightwave_series`` call reads (the transaction's own counters)."""
    with conn.transaction():
        before = conn.execute(ROLLUPS_READ).fetchone()[0]
        series(conn, "insightwave_series", dataset, "", bucket, *span)
        return int(conn.execute(ROLLUPS_READ).fetchone()[0] - before)


def test_a_range_reads_only_its_own_rollups(conn):
    # Ten days of events, one a minute; a day's hourly chart must read that day's 24 hourly
    # rollups, not the dataset's 14,640 of both grains (its whole history, as 0004's did).
    start = datetime(2024, 3, 1, tzinfo=UTC)
    records = [{"time": (start + timedelta(minutes=n)).isoformat(), "v": n} for n in range(14_400)]
    for first in range(0, len(records), 3600):  # pushed in batches: rollups upserted 4 times
        with conn.transaction():
            ingest_records(conn, records[first : first + 3600], IngestOptions(dataset="history"))
    history = dataset_id(conn, "history")
    day = (start + timedelta(days=5), start + timedelta(days=6))
    # With some statistics the planner joins the rollups to the range by a nested loop (the
    # range is then an index condition either way); with others it scans the rollups first
    # (seen in `python -m bench load`'s database). Nested loops off stands for the latter.
    # The rows read are counted by the server, whatever the plan and wherever it runs.
    conn.execute("SET enable_nestloop = off")
    read = rollup_rows_read(conn, history, timedelta(hours=1), day)
    conn.execute("RESET enable_nestloop")
    assert read == 24
    hours = series(conn, "insightwave_series", history, "", timedelta(hours=1), *day)
    assert [row[1] for row in hours] == [60] * 24
