"""Bucketed aggregates: ``insightwave_series`` (rollups plus raw edges) against a plain GROUP BY.

N events of one dataset (a float and an integer field, one every 30 days / N) are generated
in polars and loaded with COPY through the product's first-load path (``etl.load.load_frames``,
which also writes the rollups). Then the explore page's presets (last 15 min to last 30 days,
each with its automatic bucket; the range ends between two minutes, as "now" does) are asked
both ways, for the event count and for the float field, each several times; the figures are
the p50 and p95 of each way and ``ratio_vs_raw`` (raw p50 / ours p50, higher is better). The
two answers are compared on every query.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import psycopg

from app.database import libpq_url
from bench.ingest import scratch_database
from bench.options import add_output_and_server, print_result, progress_printer, server_url
from etl.columnar import TIME_TYPE
from etl.datasets import create_dataset
from etl.load import load_frames
from etl.rollups import value_column
from etl.types import Column, ColumnType

DESCRIPTION = "bucketed aggregates: rollups (insightwave_series) vs a plain GROUP BY"
BARS = {"ratio_vs_raw": 10.0, "ours_p95_ms": 150.0}  # DESIGN.md / issue 5, at 10,000,000 rows
END = datetime(2026, 1, 31, tzinfo=UTC)  # the newest event; fixed, so runs compare
SPAN = timedelta(days=30)
NOW = END - timedelta(seconds=17.3)  # "now" for the presets: between two minutes
BATCH = 1_000_000
PRESETS = (  # (name, range, automatic bucket), as the explore page picks them
    ("15m", timedelta(minutes=15), timedelta(minutes=1)),
    ("1h", timedelta(hours=1), timedelta(minutes=1)),
    ("24h", timedelta(hours=24), timedelta(minutes=15)),
    ("7d", timedelta(days=7), timedelta(hours=1)),
    ("30d", timedelta(days=30), timedelta(hours=6)),
)
FIELDS = ("", "value")  # '' counts events
OURS = "SELECT * FROM insightwave_series(%s, %s, %s, %s, %s) ORDER BY bucket"
RAW = """
SELECT date_bin(%(bucket)s, ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
       {count}, sum({value}), min({value}), max({value})
FROM events WHERE dataset_id = %(dataset)s AND ts >= %(start)s AND ts < %(end)s
GROUP BY 1 ORDER BY 1
"""
RAW_VALUE = "(payload ->> 'value')::double precision"

Progress = Callable[[str], None]


def frames(rows: int) -> Iterator[pl.DataFrame]:
    """Yield the generated events in batches, as ``etl.columnar`` prepares rows."""
    step = SPAN / rows
    step_us = step // timedelta(microseconds=1)
    start = END - timedelta(microseconds=step_us * (rows - 1))
    for first in range(0, rows, BATCH):
        index = pl.int_range(first, min(first + BATCH, rows), eager=True, dtype=pl.Int64)
        frame = pl.DataFrame({"line": index + 2}).with_columns(
            (pl.lit(start) + pl.duration(microseconds=pl.lit(index) * step_us))
            .cast(TIME_TYPE)
            .alias("ts"),
            ((index * 7919) % 10_000 / 100).alias("value"),
            ((index * 104_729) % 1000).alias("count"),
        )
        payload = frame.select(
            pl.struct(
                pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").alias("ts"),
                "value",
                "count",
            ).struct.json_encode()
        ).to_series()
        yield pl.DataFrame(
            {
                "line": frame["line"],
                "ts": frame["ts"],
                "key": index.map_elements(lambda i: i.to_bytes(16, "big"), return_dtype=pl.Binary),
                "payload": payload,
                value_column("value"): frame["value"].cast(pl.Float64),
                value_column("count"): frame["count"].cast(pl.Float64),
            }
        )


def generate(conn: psycopg.Connection[Any], rows: int) -> int:
    """Create the dataset and load ``rows`` events (and their rollups); return its id."""
    columns = [
        Column("ts", "ts", ColumnType.TIMESTAMP, nullable=False),
        Column("value", "value", ColumnType.FLOAT, nullable=False),
        Column("count", "count", ColumnType.INTEGER, nullable=False),
    ]
    with conn.transaction():
        dataset = create_dataset(conn, "bench_query", columns, time_column="ts")
        counts = load_frames(conn, dataset, frames(rows), run_id=None, now=END)
    if counts.loaded != rows:
        raise RuntimeError(f"loaded {counts.loaded} events, expected {rows}")
    conn.execute("VACUUM ANALYZE events")
    conn.execute("VACUUM ANALYZE rollups")
    return dataset.id


def timed(conn: psycopg.Connection[Any], query: str, params: Any) -> tuple[float, list[Any]]:
    began = time.perf_counter()
    rows = conn.execute(query, params).fetchall()
    return time.perf_counter() - began, rows


def same(ours: list[Any], raw: list[Any]) -> bool:
    if [row[:2] for row in ours] != [row[:2] for row in raw]:
        return False
    return all(
        (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)
        for got, want in zip(ours, raw, strict=True)
        for a, b in zip(got[2:], want[2:], strict=True)
    )


def measure(
    conn: psycopg.Connection[Any], dataset: int, repeat: int, progress: Progress
) -> dict[str, Any]:
    """Ask every preset both ways ``repeat`` times; return the timings and whether they agree."""
    ours_all: list[float] = []
    raw_all: list[float] = []
    queries = []
    exact = True
    for name, span, bucket in PRESETS:
        start = NOW - span
        for field in FIELDS:
            value = RAW_VALUE if field else "NULL::double precision"
            count = f"count({value})" if field else "count(*)"
            raw_sql = RAW.format(value=value, count=count)  # constant text, not input
            params = {"bucket": bucket, "dataset": dataset, "start": start, "end": NOW}
            ours_times, raw_times = [], []
            for _ in range(repeat):
                spent, ours_rows = timed(conn, OURS, (dataset, field, bucket, start, NOW))
                ours_times.append(spent)
                spent, raw_rows = timed(conn, raw_sql, params)
                raw_times.append(spent)
                exact = exact and same(ours_rows, raw_rows)
            ours_all += ours_times
            raw_all += raw_times
            ours_ms = statistics.median(ours_times) * 1000
            raw_ms = statistics.median(raw_times) * 1000
            queries.append(
                {
                    "preset": name,
                    "field": field or "(count)",
                    "buckets": len(ours_rows),
                    "ours_p50_ms": round(ours_ms, 2),
                    "raw_p50_ms": round(raw_ms, 2),
                    "ratio": round(raw_ms / ours_ms, 1),
                }
            )
            progress(f"{name} {field or 'count'}: ours {ours_ms:.1f} ms, raw {raw_ms:.1f} ms")
    ours_p50, raw_p50 = statistics.median(ours_all), statistics.median(raw_all)
    return {
        "queries": queries,
        "ours_p50_ms": round(ours_p50 * 1000, 2),
        "ours_p95_ms": round(_p95(ours_all) * 1000, 2),
        "raw_p50_ms": round(raw_p50 * 1000, 2),
        "raw_p95_ms": round(_p95(raw_all) * 1000, 2),
        "ratio_vs_raw": round(raw_p50 / ours_p50, 1),
        "exact": exact,
    }


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def run(rows: int, repeat: int, url: str | None, progress: Progress) -> dict[str, Any]:
    with (
        scratch_database(url) as database,
        psycopg.connect(libpq_url(database), autocommit=True) as conn,
    ):
        progress(f"generating {rows:,} events with COPY")
        began = time.perf_counter()
        dataset = generate(conn, rows)
        generated = time.perf_counter() - began
        progress(f"generated in {generated:.1f} s; querying")
        figures = measure(conn, dataset, repeat, progress)
        version = conn.execute("SHOW server_version").fetchone()
    result: dict[str, Any] = {
        "benchmark": "query",
        "rows": rows,
        "repeat": repeat,
        "generate_seconds": round(generated, 1),
        **figures,
        "bars": BARS,
        "bars_met": {
            "ratio_vs_raw": figures["ratio_vs_raw"] >= BARS["ratio_vs_raw"],
            "ours_p95_ms": figures["ours_p95_ms"] <= BARS["ours_p95_ms"],
        },
        "postgresql_version": version[0] if version else None,
        "database": "embedded" if url is None else "external",
    }
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'preset':<6} {'field':<8} {'buckets':>7} {'ours ms':>9} {'raw ms':>9} {'x':>7}"]
    for query in result["queries"]:
        lines.append(
            f"{query['preset']:<6} {query['field']:<8} {query['buckets']:>7} "
            f"{query['ours_p50_ms']:>9.1f} {query['raw_p50_ms']:>9.1f} {query['ratio']:>7.1f}"
        )
    lines.append(
        f"p50 ours {result['ours_p50_ms']} ms, raw {result['raw_p50_ms']} ms; "
        f"p95 ours {result['ours_p95_ms']} ms; ratio_vs_raw {result['ratio_vs_raw']}; "
        f"answers equal: {result['exact']}"
    )
    return "\n".join(lines)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=1_000_000, help="events to generate")
    parser.add_argument("--repeat", type=int, default=5, help="times each query is asked")
    add_output_and_server(parser)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 when the two ways disagree."""
    if args.rows < 1 or args.repeat < 2:
        print("--rows must be at least 1 and --repeat at least 2")
        return 2
    result = run(args.rows, args.repeat, server_url(args), progress_printer("query", args))
    print_result(result, args, format_table)
    return 0 if result["exact"] else 1
