"""Loading: COPY into a staging table, insert new events once, update rollups, notify.

Every function runs inside the caller's transaction, so a load is all or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

from etl.datasets import DatasetSpec
from etl.validate import PreparedRow, Rejection

NOTIFY_CHANNEL = "insightwave_events"

_INSERT = """
WITH inserted AS (
    INSERT INTO events (dataset_id, ts, dedupe_key, payload, run_id)
    SELECT %(dataset)s, coalesce(ts, %(now)s), dedupe_key, payload, %(run)s
    FROM staging_events
    ORDER BY line
    ON CONFLICT (dataset_id, dedupe_key) DO NOTHING
    RETURNING id, ts, payload
), rolled AS (
    INSERT INTO rollups AS r (dataset_id, grain, bucket, field, n, total, minimum, maximum)
    SELECT %(dataset)s, g.grain, date_trunc(g.grain, i.ts, 'UTC'), f.field,
           count(*) FILTER (WHERE f.field = '' OR f.value IS NOT NULL),
           sum(f.value), min(f.value), max(f.value)
    FROM inserted AS i
    CROSS JOIN (VALUES ('minute'), ('hour')) AS g (grain)
    CROSS JOIN LATERAL (
        SELECT '' AS field, NULL::double precision AS value
        UNION ALL
        SELECT name, (i.payload ->> name)::double precision
        FROM unnest(%(numeric)s::text[]) AS name
    ) AS f
    GROUP BY 2, 3, 4
    ORDER BY 2, 3, 4
    ON CONFLICT (dataset_id, grain, bucket, field) DO UPDATE SET
        n = r.n + excluded.n,
        total = CASE WHEN r.total IS NULL THEN excluded.total
                     WHEN excluded.total IS NULL THEN r.total
                     ELSE r.total + excluded.total END,
        minimum = LEAST(r.minimum, excluded.minimum),
        maximum = GREATEST(r.maximum, excluded.maximum)
)
SELECT count(*), max(id) FROM inserted
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
    """
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS staging_events "
        "(line bigint, ts timestamptz, dedupe_key bytea, payload jsonb) ON COMMIT DELETE ROWS"
    )
    staged = 0
    with conn.cursor().copy(
        "COPY staging_events (line, ts, dedupe_key, payload) FROM STDIN"
    ) as copy:
        for staged, (time, key, payload) in enumerate(rows, start=1):
            copy.write_row((staged, time, key, payload.decode()))
    row = conn.execute(
        _INSERT,
        {"dataset": dataset.id, "now": now, "run": run_id, "numeric": dataset.numeric_columns},
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
