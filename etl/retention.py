"""Retention: drop each dataset's events older than its ``retention_days``."""

from __future__ import annotations

from typing import Any

import psycopg


def purge_expired(conn: psycopg.Connection[Any]) -> int:
    """Delete expired events and the rollup buckets wholly before the cut; return events deleted.

    ``conn`` must be in autocommit mode. Rollups go by whole hours, so the hour holding the
    cut may still count a few expired events until the next hour passes.
    """
    with conn.transaction():
        deleted = conn.execute(
            "DELETE FROM events e USING datasets d "
            "WHERE e.dataset_id = d.id AND d.retention_days IS NOT NULL "
            "AND e.ts < now() - make_interval(days => d.retention_days)"
        ).rowcount
        conn.execute(
            "DELETE FROM rollups r USING datasets d "
            "WHERE r.dataset_id = d.id AND d.retention_days IS NOT NULL "
            "AND r.bucket < date_trunc('hour', now() - make_interval(days => d.retention_days), "
            "'UTC')"
        )
    return int(deleted)


def set_retention(conn: psycopg.Connection[Any], dataset: str, days: int | None) -> bool:
    """Keep ``dataset``'s events for ``days`` (None: forever); False if there is no such dataset."""
    if days is not None and days < 1:
        raise ValueError("retention must be at least 1 day")
    row = conn.execute(
        "UPDATE datasets SET retention_days = %s, updated_at = now() WHERE name = %s RETURNING id",
        (days, dataset),
    ).fetchone()
    return row is not None
