"""Retention drops a dataset's old events and rollup buckets, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from etl.connection import connect
from etl.pipeline import IngestOptions, ingest_records
from etl.retention import purge_expired, set_retention


def load(conn, dataset, ages_in_days):
    now = datetime.now(UTC)
    rows = [
        {"time": (now - timedelta(days=age)).isoformat(), "value": index}
        for index, age in enumerate(ages_in_days)
    ]
    with conn.transaction():
        ingest_records(conn, rows, IngestOptions(dataset=dataset, time_column="time"))


def test_events_past_retention_are_deleted_and_others_kept(database_url):
    with connect(database_url) as conn:
        load(conn, "short", [0, 1, 10, 40])
        load(conn, "forever", [0, 400])
        assert set_retention(conn, "short", 7)
        assert purge_expired(conn) == 2
        counts = dict(
            conn.execute(
                "SELECT d.name, count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id "
                "GROUP BY 1"
            ).fetchall()
        )
        assert counts == {"short": 2, "forever": 2}
        oldest_bucket = conn.execute(
            "SELECT min(bucket) FROM rollups r JOIN datasets d ON d.id = r.dataset_id "
            "WHERE d.name = 'short'"
        ).fetchone()[0]
        assert oldest_bucket > datetime.now(UTC) - timedelta(days=8)


def test_retention_must_be_positive_and_the_dataset_must_exist(database_url):
    with connect(database_url) as conn:
        with pytest.raises(ValueError, match="at least 1 day"):
            set_retention(conn, "short", 0)
        assert set_retention(conn, "missing", 3) is False
