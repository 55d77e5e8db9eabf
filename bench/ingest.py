"""Ingest throughput: our pipeline against a bare COPY and pandas ``to_sql``, side by side.

The three load the same generated CSV into the same PostgreSQL server from one process, one
after the other (ours, COPY, to_sql) after a small warm-up, each timed with
``time.perf_counter``; the figures are rows per second and their ratios (higher is better).
Ours is a dataset's first load; as many other rows appended into it right after are timed
too and reported apart ("append"), as later loads take a slower path.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import random
import secrets
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from app import migrate
from app.database import libpq_url
from bench.options import (
    add_output_and_server,
    machine,
    pandas_missing,
    print_result,
    progress_printer,
    server_url,
)
from etl.pipeline import IngestOptions, ingest_csv

DESCRIPTION = "CSV ingest rows/s: our pipeline vs a bare COPY and pandas.to_sql"
BARS = {"ratio_vs_copy": 0.5, "ratio_vs_to_sql": 10.0}  # DESIGN.md's bars, set at 1,000,000 rows
METHODS = ("ours", "baseline_copy", "baseline_to_sql")
APPEND = "ours_append"  # as many new rows again, into the dataset "ours" created
TO_SQL_ROWS = 100_000
WARM_UP_ROWS = 2_000
CHUNK_BYTES = 1 << 20

HEADER = ("ts", "id", "category", "reading", "price", "quantity", "ok", "note")
COPY_COLUMNS = (
    "ts timestamptz, id bigint, category text, reading double precision, "
    "price double precision, quantity integer, ok boolean, note text"
)
AUTOVACUUM_OFF = "ALTER TABLE {} SET (autovacuum_enabled = false)"
CATEGORIES = tuple(
    f"{region}-{product}"
    for region in ("north", "south", "east", "west")
    for product in ("alpha", "bravo", "delta", "echo", "kilo", "lima", "oscar", "tango", "zulu")
)
WORDS = (
    *("sensor", "ok", "late", "retried", "manual", "entry", "reset", "calibrated", "door"),
    *("open", "closed", "low", "battery", "restocked", "returned", "priority", "weekend"),
    *("backlog", "audit"),
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Settings:
    rows: int
    to_sql_rows: int
    repeat: int = 1
    seed: int = 20250101
    server_url: str | None = None  # None: start the embedded server


def write_csv(path: Path, rows: int, seed: int) -> None:
    """Write ``rows`` deterministic rows of the 8 benchmark columns (the same seed, same file)."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for index in range(rows):
            note = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
            if rng.random() < 0.1:
                note += ", " + rng.choice(WORDS)  # the writer quotes it
            at = start + timedelta(seconds=index, milliseconds=rng.randrange(1000))
            writer.writerow(
                (
                    at.isoformat(timespec="milliseconds"),
                    index + 1,
                    rng.choice(CATEGORIES),
                    round(rng.gauss(100.0, 15.0), 3),
                    round(rng.uniform(0.5, 500.0), 2),
                    rng.randrange(1000),
                    "true" if rng.random() < 0.5 else "false",
                    note,
                )
            )


@contextmanager
def scratch_database(server_url: str | None) -> Iterator[str]:
    """Yield the URL of a new migrated database, dropped (and its embedded server stopped) after.

    Without ``server_url`` the embedded PostgreSQL starts in a temporary directory; it is not
    under /root or pytest's tmp dirs because its system user must enter every parent as root.
    """
    with ExitStack() as stack:
        if server_url is None:
            from app.embedded_db import start_embedded

            directory = Path(tempfile.mkdtemp(prefix="iw-bench-pg-"))
            stack.callback(shutil.rmtree, directory, ignore_errors=True)
            embedded = start_embedded(directory)
            stack.callback(embedded.release)
            server_url = embedded.url
        server = make_url(server_url).set(drivername="postgresql+psycopg")
        admin = libpq_url(server.render_as_string(hide_password=False))
        name = f"iw_bench_{secrets.token_hex(4)}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        stack.callback(_drop_database, admin, name)
        url = server.set(database=name).render_as_string(hide_password=False)
        migrate.upgrade(url)
        yield url


def _drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


def load_ours(conn: psycopg.Connection[Any], path: Path, dataset: str) -> tuple[float, int]:
    """Run the whole pipeline on ``path`` into a new dataset, in one transaction."""
    started = time.perf_counter()
    with path.open("rb") as stream, conn.transaction():
        summary = ingest_csv(conn, stream, IngestOptions(dataset=dataset))
    return time.perf_counter() - started, summary.rows_loaded


def load_copy(conn: psycopg.Connection[Any], path: Path, table: str) -> tuple[float, int]:
    """COPY the file's bytes, as they are, into an unindexed table of the 8 typed columns."""
    name = sql.Identifier(table)
    conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, sql.SQL(COPY_COLUMNS)))
    conn.execute(sql.SQL(AUTOVACUUM_OFF).format(name))
    statement = sql.SQL("COPY {} FROM STDIN (FORMAT csv, HEADER true)").format(name)
    started = time.perf_counter()
    with conn.cursor() as cursor:
        rows = copy_file(cursor, statement, path)
    return time.perf_counter() - started, rows


def copy_file(cursor: psycopg.Cursor[Any], statement: sql.Composed, path: Path) -> int:
    """Stream ``path``'s bytes, as they are, into a ``COPY ... FROM STDIN``; give its rows."""
    with path.open("rb") as stream, cursor.copy(statement) as copy:
        while chunk := stream.read(CHUNK_BYTES):
            copy.write(chunk)
    return cursor.rowcount


def load_to_sql(engine: Engine, path: Path, rows: int, table: str) -> tuple[float, int]:
    """``pandas.read_csv`` then ``DataFrame.to_sql`` with its defaults, on the first ``rows``."""
    import pandas

    started = time.perf_counter()
    frame = pandas.read_csv(path, nrows=rows)
    frame.to_sql(table, engine)
    return time.perf_counter() - started, len(frame)


def _start_step(conn: psycopg.Connection[Any]) -> None:
    """Flush earlier steps' dirty pages first, so no step pays for the one before it."""
    # On an external server we may lack the right; the steps still run in the same order.
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute("CHECKPOINT")


def _reset(conn: psycopg.Connection[Any]) -> None:
    conn.execute("TRUNCATE datasets CASCADE")  # events, rollups and runs go with it
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'baseline%'"
    ).fetchall()
    for (table,) in tables:
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table)))


def _autovacuum_off_for_partitions(conn: psycopg.Connection[Any]) -> None:
    """Keep autovacuum off the partitions of events (a partitioned table takes no setting)."""
    partitions = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass"
    ).fetchall()
    for (partition,) in partitions:
        conn.execute(sql.SQL(AUTOVACUUM_OFF).format(sql.Identifier(partition)))


def _trial(
    conn: psycopg.Connection[Any],
    engine: Engine,
    paths: tuple[Path, Path],
    to_sql_rows: int,
    tag: str,
) -> dict[str, tuple[float, int]]:
    path, more = paths
    _reset(conn)
    results = {}
    _start_step(conn)
    results["ours"] = load_ours(conn, path, f"bench_{tag}")
    _autovacuum_off_for_partitions(conn)
    _start_step(conn)
    # A dataset's first load fills a partition of its own; later loads insert into indexes.
    results[APPEND] = load_ours(conn, more, f"bench_{tag}")
    _start_step(conn)
    results["baseline_copy"] = load_copy(conn, path, f"baseline_copy_{tag}")
    _start_step(conn)
    results["baseline_to_sql"] = load_to_sql(engine, path, to_sql_rows, f"baseline_to_sql_{tag}")
    return results


def run(settings: Settings, progress: Progress) -> dict[str, Any]:
    """Generate the CSV, warm up, time the three loads ``repeat`` times; return the figures."""
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    with ExitStack() as stack:
        directory = Path(tempfile.mkdtemp(prefix="iw-bench-csv-"))
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        path, more = directory / "bench.csv", directory / "more.csv"
        warm_up = (directory / "warm_up.csv", directory / "warm_up_more.csv")
        progress(f"writing {settings.rows:,} rows of CSV, twice")
        write_csv(path, settings.rows, settings.seed)
        write_csv(more, settings.rows, settings.seed + 1)  # other rows: all new to the dataset
        for number, warm_up_path in enumerate(warm_up):
            write_csv(warm_up_path, min(settings.rows, WARM_UP_ROWS), settings.seed + number)
        size = path.stat().st_size
        progress("starting PostgreSQL" if settings.server_url is None else "creating a database")
        url = stack.enter_context(scratch_database(settings.server_url))
        conn = stack.enter_context(psycopg.connect(libpq_url(url), autocommit=True))
        engine = create_engine(url)
        stack.callback(engine.dispose)
        # Autovacuum of one step's million rows would otherwise run during the next step.
        conn.execute(sql.SQL(AUTOVACUUM_OFF).format(sql.Identifier("rollups")))
        progress("warming up")
        _trial(conn, engine, warm_up, WARM_UP_ROWS, "warm_up")
        trials = []
        for number in range(1, settings.repeat + 1):
            trials.append(_trial(conn, engine, (path, more), settings.to_sql_rows, str(number)))
            progress(f"trial {number}/{settings.repeat}: " + _describe(trials[-1]))
        version = conn.execute("SHOW server_version").fetchone()
        figures = _figures(settings, trials, str(version[0] if version else "?"))
    return {**figures, "csv_bytes": size, "load_average_before": round(load_before, 2)}


def _describe(trial: dict[str, tuple[float, int]]) -> str:
    return ", ".join(f"{method} {seconds:.2f} s" for method, (seconds, _) in trial.items())


def _figures(
    settings: Settings, trials: list[dict[str, tuple[float, int]]], version: str
) -> dict[str, Any]:
    rows = {"ours": settings.rows, "baseline_copy": settings.rows}
    rows["baseline_to_sql"] = settings.to_sql_rows
    seconds = {method: statistics.median(t[method][0] for t in trials) for method in METHODS}
    rate = {method: rows[method] / max(seconds[method], 1e-9) for method in METHODS}
    loaded = {method: [t[method][1] for t in trials] for method in METHODS}
    ratios = {
        "ratio_vs_copy": rate["ours"] / rate["baseline_copy"],
        "ratio_vs_to_sql": rate["ours"] / rate["baseline_to_sql"],
    }
    append_seconds = statistics.median(t[APPEND][0] for t in trials)
    append_rate = settings.rows / max(append_seconds, 1e-9)
    append = {
        "rows": settings.rows,
        "seconds": round(append_seconds, 4),
        "rows_per_s": round(append_rate, 1),
        "ratio_vs_copy": round(append_rate / rate["baseline_copy"], 4),
        "ratio_vs_to_sql": round(append_rate / rate["baseline_to_sql"], 4),
        "exact_counts": all(t[APPEND][1] == settings.rows for t in trials),
    }
    return {
        "benchmark": "ingest",
        "rows": settings.rows,
        "to_sql_rows": settings.to_sql_rows,
        "repeat": settings.repeat,
        "seed": settings.seed,
        "rows_per_s": {method: round(value, 1) for method, value in rate.items()},
        "seconds": {method: round(value, 4) for method, value in seconds.items()},
        **{name: round(value, 4) for name, value in ratios.items()},
        "bars": BARS,
        "bars_met": {name: ratios[name] >= bar for name, bar in BARS.items()},
        "append": append,
        "rows_loaded": min(loaded["ours"]),
        "exact_counts": all(loaded[method] == [rows[method]] * len(trials) for method in METHODS),
        "postgresql_version": version,
        "database": "embedded" if settings.server_url is None else "external",
        **machine(),
    }


def format_table(result: dict[str, Any]) -> str:
    """Render the figures as a short table for a person."""
    rows = {"ours": result["rows"], "baseline_copy": result["rows"]}
    rows["baseline_to_sql"] = result["to_sql_rows"]
    lines = [
        f"ingest: {result['rows']:,} rows ({result['csv_bytes'] / 1e6:.1f} MB of CSV), "
        f"PostgreSQL {result['postgresql_version']} ({result['database']}), "
        f"Python {result['python_version']}, {result['cpu_count']} CPUs, "
        f"median of {result['repeat']}",
        f"{'':<16}{'rows':>12}{'seconds':>10}{'rows/s':>12}",
    ]
    for method in METHODS:
        lines.append(
            f"{method:<16}{rows[method]:>12,}{result['seconds'][method]:>10.2f}"
            f"{result['rows_per_s'][method]:>12,.0f}"
        )
    for name, bar in result["bars"].items():
        verdict = "met" if result["bars_met"][name] else "NOT met"
        lines.append(f"{name:<16}{result[name]:>12.2f}   bar >= {bar:g} (at 1M rows): {verdict}")
    append = result["append"]
    lines.append(
        f"{'ours (append)':<16}{append['rows']:>12,}{append['seconds']:>10.2f}"
        f"{append['rows_per_s']:>12,.0f}   into the dataset above: "
        f"{append['ratio_vs_copy']:.2f}x COPY, {append['ratio_vs_to_sql']:.2f}x to_sql"
    )
    exact = "yes" if result["exact_counts"] and append["exact_counts"] else "NO"
    lines.append(f"exact counts: {exact} (ours loaded {result['rows_loaded']:,})")
    return "\n".join(lines)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the ``ingest`` subcommand's options."""
    parser.add_argument("--rows", type=_positive, required=True, help="rows in the CSV")
    parser.add_argument(
        "--to-sql-rows",
        type=_positive,
        help=f"rows for the slow to_sql baseline (default: min(rows, {TO_SQL_ROWS:,}))",
    )
    parser.add_argument("--repeat", type=_positive, default=1, help="trials; report the median")
    parser.add_argument("--seed", type=int, default=Settings.seed, help="seed of the CSV data")
    add_output_and_server(parser)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; exit 1 when a load did not count exactly the rows it was given."""
    if pandas_missing():
        return 2
    rows: int = args.rows
    settings = Settings(
        rows=rows,
        to_sql_rows=min(rows, args.to_sql_rows or TO_SQL_ROWS),
        repeat=args.repeat,
        seed=args.seed,
        server_url=server_url(args),
    )
    result = run(settings, progress_printer("ingest", args))
    print_result(result, args, format_table)
    return 0 if result["exact_counts"] and result["append"]["exact_counts"] else 1
