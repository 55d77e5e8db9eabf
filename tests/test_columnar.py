"""The columnar reader and the row-by-row reader load exactly the same events, keys and reasons."""

from __future__ import annotations

import csv
import math
import random
import struct
from pathlib import Path

import orjson
import polars as pl
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.database import libpq_url
from bench.ingest import write_csv
from etl import columnar, pipeline
from etl.columnar import ColumnarRefused, prepare_batches
from etl.pipeline import IngestError, IngestOptions, ingest_csv
from etl.runs import create_run
from etl.types import plain_amount
from tests.conftest import DATASETS

FILES = sorted((DATASETS / "plotly").glob("*.csv")) + sorted(
    (DATASETS / "csv-spectrum" / "csvs").glob("*.csv")
)
EVENTS = (
    # Without a time column an event's time is the load's start, which differs between loads.
    "SELECT CASE WHEN d.time_column IS NOT NULL THEN e.ts END, e.dedupe_key, e.payload::text "
    "FROM events e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = %s ORDER BY e.id"
)
ROLLUPS = (  # without a time column, buckets too are the load's start
    "SELECT grain, CASE WHEN d.time_column IS NOT NULL THEN bucket END, field, n, total, "
    "minimum, maximum FROM rollups r JOIN datasets d ON d.id = r.dataset_id WHERE d.name = %s "
    "ORDER BY 1, 2, 3"
)
REJECTED = "SELECT line, raw, reason FROM rejected_rows WHERE run_id = %s ORDER BY line"
COUNTS = ("rows_read", "rows_loaded", "rows_rejected", "rows_duplicate")


def load_both_ways(database_url: str, path: Path, **options: object) -> list[dict[str, object]]:
    """Load ``path`` into two new datasets, by columns and by rows; return what each stored."""
    stored = []
    with psycopg.connect(libpq_url(database_url)) as conn:
        for columnar in (True, False):
            name = f"{'columns' if columnar else 'rows'}_{abs(hash(path.name)) % 10**6}"
            chosen = IngestOptions(dataset=name, **options)  # type: ignore[arg-type]
            run_id = create_run(conn, chosen, "file", {"path": str(path)})
            try:
                with conn.transaction(), path.open("rb") as stream:
                    summary = ingest_csv(conn, stream, chosen, run_id=run_id, columnar=columnar)
            except IngestError as error:
                stored.append({"error": str(error)})
                continue
            stored.append(
                {
                    "counts": [getattr(summary, count) for count in COUNTS],
                    "columns": summary.columns,
                    "events": conn.execute(EVENTS, (name,)).fetchall(),
                    "rollups": conn.execute(ROLLUPS, (name,)).fetchall(),
                    "rejected": conn.execute(REJECTED, (run_id,)).fetchall(),
                }
            )
        conn.rollback()
    return stored


def assert_same(by_columns: dict[str, object], by_rows: dict[str, object]) -> None:
    assert by_columns["counts"] == by_rows["counts"]
    assert by_columns["columns"] == by_rows["columns"]
    assert by_columns["events"] == by_rows["events"]
    assert by_columns["rejected"] == by_rows["rejected"]
    # Float totals are sums in the server's (hash) order, the same for both paths up to rounding.
    assert (
        [row[:4] + row[5:] for row in by_columns["rollups"]]
        == [  # type: ignore[attr-defined]
            row[:4] + row[5:]
            for row in by_rows["rollups"]  # type: ignore[attr-defined]
        ]
    )
    for left, right in zip(by_columns["rollups"], by_rows["rollups"], strict=True):  # type: ignore[call-overload]
        assert left[4] == right[4] or left[4] == pytest.approx(right[4], rel=1e-12)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_test_file_loads_the_same_by_columns_and_by_rows(database_url, path):
    by_columns, by_rows = load_both_ways(database_url, path)
    if "error" in by_columns or "error" in by_rows:  # a file refused is refused the same way
        assert by_columns == by_rows
        return
    assert_same(by_columns, by_rows)


def test_a_generated_bench_file_loads_the_same_by_columns_and_by_rows(database_url, tmp_path):
    path = tmp_path / "bench.csv"
    write_csv(path, 20_000, seed=7)
    by_columns, by_rows = load_both_ways(database_url, path)
    assert_same(by_columns, by_rows)
    assert by_columns["counts"] == [20_000, 20_000, 0, 0]


NASTY = [
    "ts,n,x,ok,label",
    "2024-01-01T00:00:00Z, 7 ,1.5,yes,plain",
    "2024-01-01 00:00,+5,-0,NO,NA",
    "2024-01-01T00:00:00.5,-0,1e16,t,  padded  ",
    '2024-01-01T00:00:00.000+00:00,123,1E-7,f,"quoted, comma"',
    "2024-01-01T00:00:60,1,1,y,leap second",
    "2024-01-01T24:00:00,1,1,y,midnight as 24",
    "0000-01-01,1,1,y,year zero",
    "2024-02-30,1,1,y,no such day",
    "2024-01-01T00:00:00+02:00,1,1,y,an offset",
    "1/5/2019,1,1,y,us date",
    "2024-01-01,1_000,1,y,underscore",
    '2024-01-01,"1,234","1,234.5",y,grouped',
    "2024-01-01,99999999999999999999,1,y,too big",
    "2024-01-01,1,inf,y,infinite",
    "2024-01-01,1,1e400,y,overflow",
    "2024-01-01,1,nan,n,nan is null",
    "2024-01-01,,,,",
    "2024-01-01,1,1,maybe,not a boolean",
    '2024-01-01,1,1,y,"unneeded quotes"',
    "2024-01-01,1,1,y,tab\there",
    '2024-01-01,1,1,y,back\\slash and ""',
    "2024-01-01,1,1,y,\u00a0",
    "2024-01-01,1,1,y,\u65e5\u672c",
    "2024-01-01,\u00a07,1,y,nbsp number",
    "2024-01-01,1,1,y",
    "   ",
    "",
    "2024-01-01T00:00:00.1234567,1,1,y,seven digits",
    "2024-01-01,1,.5,y,dot five",
    "2024-01-01,1,5.,y,five dot",
    "2024-01-01,1,-1.5e-300,y,tiny",
    "2024-01-01,1,123456789012345678,y,long float",
    "2024-01-01,0007,0.1,y,leading zeros",
    '2024-01-01,"$1,200",($3.50),y,amounts',
    "2024-01-01,$-2,2 €,y,amounts with the sign inside or the currency after",
    "2024-01-01,12%,$$1,y,a percent and two signs",
    '2024-01-01,"1,234,567","1,234,567.25",y,grouped more',
    '2024-01-01,"12,34","1,2345.5",y,bad groups',
    '2024-01-01,"-1,234","+1,234.",y,signed groups',
    '2024-01-01,"1,234,567,890,123,456,789","1,234,567,890,123,456,789",y,long groups',
]


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("unreadable", [False, True])
def test_awkward_values_load_the_same_by_columns_and_by_rows(
    database_url, tmp_path, monkeypatch, ending, unreadable
):
    # Types are inferred from the first 1,000 records: plain ones, so the awkward ones follow.
    lines = [NASTY[0], *["2024-01-01,1,1.5,n,x"] * 1100, *NASTY[1:]]
    if unreadable:  # by polars: then the whole file goes row by row
        lines += ["2024-01-01,1,1,y,too,many", '2024-01-01,1,1,y,stray"quote']
    path = tmp_path / "awkward.csv"
    path.write_text(ending.join(lines) + ending, encoding="utf-8")
    refused = []

    def prepare(*args):
        try:
            yield from prepare_batches(*args)
        except ColumnarRefused:
            refused.append(True)
            raise

    monkeypatch.setattr(pipeline, "prepare_batches", prepare)
    by_columns, by_rows = load_both_ways(database_url, path, key_columns=())
    assert bool(refused) == unreadable
    assert_same(by_columns, by_rows)
    assert by_columns["counts"][2] > 10  # the rejections are there, with their reasons


def test_floats_print_as_orjson_prints_them():
    rng = random.Random(3)
    values = [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(200_000)
    ]
    values += [rng.uniform(-1000, 1000) for _ in range(100_000)]
    values += [round(rng.uniform(-1e6, 1e6), rng.randrange(6)) for _ in range(100_000)]
    values += [10.0**exponent for exponent in range(-30, 30)] + [
        0.0,
        -0.0,
        5e-324,
        1.7976931348623157e308,
    ]
    finite = [value for value in values if math.isfinite(value)]
    printed = pl.Series(finite, dtype=pl.Float64).cast(pl.String).to_list()
    assert printed == [orjson.dumps(value).decode() for value in finite]


def test_blank_lines_of_a_one_column_file_are_skipped_by_columns_too(database_url, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("value\n1\n\n2\n   \n3\n")
    by_columns, by_rows = load_both_ways(database_url, path)
    assert_same(by_columns, by_rows)
    assert by_columns["counts"][:2] == by_rows["counts"][:2]


def test_the_first_row_of_a_key_wins_by_columns_as_by_rows(database_url, tmp_path):
    path = tmp_path / "readings.csv"
    rows = [f"2024-01-01T00:0{n % 3}:00Z,s{n % 2},{n}" for n in range(12)]
    path.write_text("time,sensor,value\n" + "\n".join(rows) + "\n")
    by_columns, by_rows = load_both_ways(database_url, path, key_columns=("time", "sensor"))
    assert_same(by_columns, by_rows)
    assert by_columns["counts"] == [12, 6, 0, 6]


def test_a_file_larger_than_the_columnar_limit_streams_row_by_row(
    database_url, tmp_path, monkeypatch
):
    path = tmp_path / "bench.csv"
    write_csv(path, 500, seed=11)
    monkeypatch.setattr(pipeline, "COLUMNAR_MAX_BYTES", 1000)
    monkeypatch.setattr(pipeline, "prepare_batches", None)  # must not be called
    by_columns, by_rows = load_both_ways(database_url, path)
    assert_same(by_columns, by_rows)
    assert by_columns["counts"] == [500, 500, 0, 0]


COMMA_NASTY = [
    "1.234,5",
    "-0,75",
    "+3,0",
    "1.234.567,891",
    "1.234",
    "12",
    " 7,5 ",
    "1.5",
    "1,2,3",
    "12.34,5",
    "1e5",
    "1.234.56",
    ",5",
    "NA",
    "",
    "9" * 400 + ",5",
    "0,1000000000000000055511151231257827",
]


def test_decimal_comma_numbers_load_the_same_by_columns_and_by_rows(database_url, tmp_path):
    lines = ["when;amount;count", *[f"2024-01-01;{n},5;2" for n in range(1100)]]
    lines += [f"2024-01-02;{value};1.234" for value in COMMA_NASTY]
    lines += ["2024-01-03;1,5;1,234", "2024-01-03;€1,5;(2)"]  # a comma in an integer is refused
    path = tmp_path / "komma.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    by_columns, by_rows = load_both_ways(database_url, path, key_columns=())
    assert_same(by_columns, by_rows)
    assert by_columns["columns"][1]["type"] == "float"
    # Rejected: seven forms that are not numbers here, NA and "" in a required column, and
    # "1,234" as an integer.
    assert by_columns["counts"] == [1100 + len(COMMA_NASTY) + 2, 1100 + 8 + 1, 10, 0]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.text(alphabet="$€£()+-.,0123456789 %\u00a0x", max_size=12), max_size=50))
def test_amounts_are_read_by_polars_as_by_python(cells):
    read = pl.DataFrame({"cell": cells}, schema={"cell": pl.String})
    by_polars = read.select(columnar._plain_amount(pl.col("cell")).alias("plain"))["plain"]
    assert by_polars.to_list() == [plain_amount(cell) or cell for cell in cells]


def test_a_file_of_amounts_loads_by_columns_without_the_row_path(
    database_url, tmp_path, monkeypatch
):
    path = tmp_path / "sales.csv"
    # Grouped thousands too, and a column with blanks (nullable: its values are not required).
    with path.open("w", newline="") as out:  # quoted only where a comma needs it
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", "price", "refund", "fee", "units"])
        for n in range(3000):
            when = f"2024-01-01T00:{n // 60 % 60:02}:{n % 60:02}Z"
            units = "" if n % 10 == 0 else f"{n * 1000:,}"
            writer.writerow([when, f"${n:,}.25", f"(€{n})", f"{n} £", units])
    by_rows_alone = []
    original = columnar._row_by_row

    def row_by_row(rows, *args):
        by_rows_alone.extend(rows)
        return original(rows, *args)

    monkeypatch.setattr(columnar, "_row_by_row", row_by_row)
    by_columns, by_rows = load_both_ways(database_url, path)
    assert_same(by_columns, by_rows)
    assert by_columns["counts"] == [3000, 3000, 0, 0]
    assert [column["type"] for column in by_columns["columns"]][1:] == [
        "float",
        "integer",
        "integer",
        "integer",
    ]
    assert by_rows_alone == []
