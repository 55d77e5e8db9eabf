"""Loading: COPY into a staging table, insert new events once, update rollups, notify.

Every function runs inside the caller's transaction, so a load is all or nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
import polars as pl
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter
from psycopg.pq import TransactionStatus

from etl.datasets import DatasetSpec
from etl.partitions import (
    create_partition_table,
    ensure_partition,
    has_partition,
    index_and_attach,
    lock_dataset_loads,
)
from etl.rollups import ROLLUP_COLUMNS, minute_partials, rollup_rows
from etl.validate import PreparedRow, Rejection

NOTIFY_CHANNEL = "insightwave_events"
COPY_BATCH_ROWS = 100_000


def _insert_statement(numeric: list[str]) -> sql.Composed:
    """Build the insert: new events once, then rollups from a per-minute aggregate.

    Only the numeric fields come back from the insert (not whole payloads), the minute
    aggregate has one row per minute with a column group per field, and the hour rows are
    summed from the minute rows, so the rollup work is per bucket, not per event field.
    """

    def part(template: str, separator: str = "") -> sql.Composed:
        return sql.SQL(separator).join(
            sql.SQL(template).format(
                f=sql.Literal(name),
                **{key: sql.Identifier(f"v{i}{key.strip('v')}") for key in _KEYS},
            )
            for i, name in enumerate(numeric)
        )

    return sql.SQL(_INSERT).format(
        returned=part(", (payload ->> {f}) :: double precision AS {v}"),
        per_minute=part(
            ", count({v}) AS {v_n}, sum({v}) AS {v_s}, min({v}) AS {v_lo}, max({v}) AS {v_hi}"
        ),
        per_hour=part(
            ", sum({v_n}) AS {v_n}, sum({v_s}) AS {v_s},"
            " min({v_lo}) AS {v_lo}, max({v_hi}) AS {v_hi}"
        ),
        unpivot=part(", ({f}, b.{v_n}, b.{v_s}, b.{v_lo}, b.{v_hi})"),
        merge=sql.SQL(_MERGE_ROLLUPS),
    )


_KEYS = ("v", "v_n", "v_s", "v_lo", "v_hi")  # a field's value and its aggregate columns


_INSERT = """
WITH inserted AS (
    INSERT INTO events (dataset_id, ts, dedupe_key, payload, run_id)
    SELECT %(dataset)s, coalesce(ts, %(now)s), dedupe_key, payload, %(run)s
    FROM staging_events
    ON CONFLICT (dataset_id, dedupe_key) DO NOTHING
    RETURNING id, ts{returned}
), minute AS (
    SELECT 'minute' AS grain, date_trunc('minute', ts, 'UTC') AS bucket, count(*) AS n{per_minute}
    FROM inserted GROUP BY 2
), hour AS (
    SELECT 'hour' AS grain, date_trunc('hour', bucket, 'UTC') AS bucket, sum(n) AS n{per_hour}
    FROM minute GROUP BY 2
), rolled AS (
    INSERT INTO rollups AS r (dataset_id, grain, bucket, field, n, total, minimum, maximum)
    SELECT %(dataset)s, b.grain, b.bucket, f.field, f.n, f.total, f.lo, f.hi
    FROM (SELECT * FROM minute UNION ALL SELECT * FROM hour) AS b
    CROSS JOIN LATERAL (VALUES ('', b.n, NULL::double precision, NULL::double precision,
                                NULL::double precision){unpivot}) AS f (field, n, total, lo, hi)
    ORDER BY 2, 3, 4
    {merge}
)
SELECT count(*), max(id) FROM inserted
"""
_MERGE_ROLLUPS = """
    ON CONFLICT (dataset_id, grain, bucket, field) DO UPDATE SET
        n = r.n + excluded.n,
        total = CASE WHEN r.total IS NULL THEN excluded.total
                     WHEN excluded.total IS NULL THEN r.total
                     ELSE r.total + excluded.total END,
        minimum = LEAST(r.minimum, excluded.minimum),
        maximum = GREATEST(r.maximum, excluded.maximum)
"""
_INSERT_ROLLUPS = """
INSERT INTO rollups AS r (dataset_id, grain, bucket, field, n, total, minimum, maximum)
SELECT %(dataset)s, grain, bucket, field, n, total, minimum, maximum
FROM staging_rollups ORDER BY 1, 2, 3
{merge}
"""


@dataclass(frozen=True)
class LoadCounts:
    staged: int
    loaded: int
    last_id: int | None

    @property
    def duplicate(self) -> int:
        return self.staged - self.loaded


def load_events(
    conn: psycopg.Connection[Any],
    dataset: DatasetSpec,
    rows: Iterable[PreparedRow],
    *,
    run_id: int | None,
    now: datetime,
) -> LoadCounts:
    """Load ``rows`` into ``events``; rows whose dedupe key is already there are skipped.

    Rows without a time get ``now``. Rollups are updated and one notification is queued
    (sent by PostgreSQL at commit) when anything was loaded.

    :raises RuntimeError: outside a transaction, where the staged rows (``ON COMMIT DELETE
        ROWS``) would vanish before the insert and every row would count as a duplicate.
    """
    if conn.info.transaction_status == TransactionStatus.IDLE:
        raise RuntimeError("load_events runs inside the caller's transaction")
    lock_dataset_loads(conn, dataset.id)
    ensure_partition(conn, dataset.id)
    _create_staging(conn)
    staged = 0
    with conn.cursor().copy("COPY staging_events (ts, dedupe_key, payload) FROM STDIN") as copy:
        for time, key, payload in rows:
            copy.write_row((time, key, payload.decode()))
            staged += 1
    return _insert_staged(conn, dataset, staged, run_id=run_id, now=now)


def load_frames(
    conn: psycopg.Connection[Any],
    dataset: DatasetSpec,
    frames: Iterable[pl.DataFrame],
    *,
    run_id: int | None,
    now: datetime,
) -> LoadCounts:
    """Load prepared rows in columns (``etl.columnar.frame_schema``) as ``load_events`` does.

    A dataset's first load fills its new partition directly (see ``etl.partitions``): rows
    repeated within the file are dropped first (and counted as duplicates), and the rollups
    come from the frames. Later loads go through staging and ``ON CONFLICT``. Each frame is
    sent while the next is made.
    """
    lock_dataset_loads(conn, dataset.id)
    if has_partition(conn, dataset.id):
        _create_staging(conn)
        staged = _copy_frames(conn, sql.Identifier("staging_events"), frames)
        return _insert_staged(conn, dataset, staged, run_id=run_id, now=now)
    rows = _FirstOfEachKey(frames, dataset.numeric_columns, now)
    table = create_partition_table(conn, dataset.id)
    loaded = _copy_frames(conn, table, rows, run_id=run_id)
    index_and_attach(conn, dataset.id)
    _store_rollups(conn, dataset.id, rollup_rows(rows.partials, dataset.numeric_columns))
    found = conn.execute(sql.SQL("SELECT max(id) FROM {}").format(table)).fetchone()
    last_id = found[0] if found else None
    if last_id is not None:
        notify(conn, dataset.name, int(last_id), loaded)
    return LoadCounts(staged=rows.staged, loaded=loaded, last_id=last_id)


class _FirstOfEachKey:
    """Frames without rows whose key came before; counts what came and aggregates what goes."""

    def __init__(self, frames: Iterable[pl.DataFrame], fields: list[str], now: datetime) -> None:
        self.frames = frames
        self.fields = fields
        self.now = now
        self.staged = 0
        self.partials: list[pl.DataFrame] = []

    def __iter__(self) -> Iterator[pl.DataFrame]:
        seen: set[bytes] = set()
        for frame in self.frames:
            self.staged += frame.height
            # The first row of a key in file order stays, as on the staging path. A set
            # costs a quarter of polars' is_in against all the keys seen before.
            first = pl.Series(_first_seen(frame["key"].to_list(), seen), dtype=pl.Boolean)
            rows = frame.filter(first)  # typed: a batch may keep no row
            rows = rows.with_columns(pl.col("ts").fill_null(self.now))
            self.partials.append(minute_partials(rows, self.fields, self.now))
            yield rows


def _first_seen(keys: list[bytes], seen: set[bytes]) -> list[bool]:
    """Mark the keys not in ``seen`` (adding them), each only at its first occurrence."""
    first = []
    for key in keys:
        new = key not in seen
        if new:
            seen.add(key)
        first.append(new)
    return first


def _copy_frames(
    conn: psycopg.Connection[Any],
    table: sql.Identifier,
    frames: Iterable[pl.DataFrame],
    *,
    run_id: int | None | Literal[False] = False,
) -> int:
    """COPY (ts, key, payload) rows, and ``run_id`` unless it is False, into ``table``."""
    columns = "ts, dedupe_key, payload" + (", run_id" if run_id is not False else "")
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, sql.SQL(columns))
    rows = 0
    cursor = conn.cursor()
    # The queued writer sends from its own thread: the server parses one frame while the
    # next is made here (polars releases the GIL).
    with cursor, cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for frame in frames:
            for start in range(0, frame.height, COPY_BATCH_ROWS):
                copy.write(copy_text(frame.slice(start, COPY_BATCH_ROWS), run_id))
            rows += frame.height
    return rows


def copy_text(frame: pl.DataFrame, run_id: int | None | Literal[False] = False) -> bytes:
    """Format (ts, key, payload[, run_id]) rows as COPY text: tab-separated, \\ escaped."""
    buffer = io.BytesIO()
    run = [] if run_id is False else [pl.lit(run_id, dtype=pl.Int64).alias("run_id")]
    frame.select(
        pl.col("ts").dt.strftime("%Y-%m-%d %H:%M:%S.%6f+00"),
        pl.lit("\\\\x") + pl.col("key").bin.encode("hex"),
        pl.col("payload").str.replace_all("\\", "\\\\", literal=True),
        *run,
    ).write_csv(buffer, include_header=False, separator="\t", quote_style="never", null_value="\\N")
    return buffer.getvalue()


def _store_rollups(conn: psycopg.Connection[Any], dataset_id: int, rows: pl.DataFrame) -> None:
    """Add rollup rows (``etl.rollups.ROLLUP_COLUMNS``) to the dataset's rollups."""
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_rollups (grain text, bucket timestamptz, "
        "field text, n bigint, total float8, minimum float8, maximum float8) "
        "ON COMMIT DELETE ROWS"
    )
    buffer = io.BytesIO()
    rows.select(ROLLUP_COLUMNS).write_csv(buffer, include_header=False)
    copy_rollups = "COPY staging_rollups ({}) FROM STDIN (FORMAT csv)".format(
        ", ".join(ROLLUP_COLUMNS)
    )
    with conn.cursor().copy(copy_rollups) as copy:
        copy.write(buffer.getvalue())
    statement = sql.SQL(_INSERT_ROLLUPS).format(merge=sql.SQL(_MERGE_ROLLUPS))
    conn.execute(statement, {"dataset": dataset_id})
    conn.execute("TRUNCATE staging_rollups")


def _create_staging(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_events "
        "(ts timestamptz, dedupe_key bytea, payload jsonb) ON COMMIT DELETE ROWS"
    )


def _insert_staged(
    conn: psycopg.Connection[Any],
    dataset: DatasetSpec,
    staged: int,
    *,
    run_id: int | None,
    now: datetime,
) -> LoadCounts:
    # The staged rows are sorted and hashed into the unique index in memory, not on disk.
    conn.execute("SET LOCAL work_mem = '256MB'")
    row = conn.execute(
        _insert_statement(dataset.numeric_columns),
        {"dataset": dataset.id, "now": now, "run": run_id},
    ).fetchone()
    assert row is not None
    loaded, last_id = int(row[0]), row[1]
    conn.execute("TRUNCATE staging_events")
    if loaded:
        notify(conn, dataset.name, int(last_id), loaded)
    return LoadCounts(staged=staged, loaded=loaded, last_id=last_id)


def notify(conn: psycopg.Connection[Any], dataset: str, last_id: int, count: int) -> None:
    """Queue the live notification: a tiny payload, never the rows (always < 8000 bytes)."""
    payload = orjson.dumps({"dataset": dataset, "last_id": last_id, "count": count}).decode()
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, payload))


def store_rejections(
    conn: psycopg.Connection[Any], run_id: int, rejections: Iterable[Rejection]
) -> int:
    """Keep the rejected rows of a run, with their line numbers and reasons."""
    stored = 0
    with conn.cursor().copy("COPY rejected_rows (run_id, line, raw, reason) FROM STDIN") as copy:
        for rejection in rejections:
            # PostgreSQL text cannot hold NUL; show it the way Python would.
            raw = rejection.raw.replace("\x00", "\\x00")
            copy.write_row((run_id, rejection.line, raw, rejection.reason))
            stored += 1
    return stored
