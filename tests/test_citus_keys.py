"""The schema stays distributable on Citus: every key of a distributed table holds dataset_id.

Citus enforces a unique key, a primary key or an exclusion constraint only when it includes
the distribution column, and a foreign key between two distributed tables only when both
sides include it. deploy/README.md ("Citus") names these lists; a new table must join one.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
import pytest

from app.database import libpq_url

DISTRIBUTION_COLUMN = "dataset_id"
# Sharded by dataset_id; events' per-dataset partitions are checked with it.
DISTRIBUTED = {"events", "rollups", "idempotency_keys", "dataset_grants"}
# Small or control tables, copied to every node (reference) or kept on the coordinator.
REFERENCE = {
    "alembic_version",
    "api_tokens",
    "apscheduler_jobs",
    "audit_log",
    "dashboards",
    "datasets",
    "group_members",
    "groups",
    "ingest_jobs",
    "ingest_runs",
    "ingested_files",
    "rejected_rows",
    "user_sessions",
    "users",
}

KEYS = """
SELECT c.relname, i.indexrelid::regclass::text,
       array(SELECT a.attname FROM unnest(i.indkey) AS k(attnum)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = c.oid
WHERE c.relnamespace = 'public'::regnamespace
  AND (i.indisunique OR i.indisprimary OR con.contype = 'x')
"""
FOREIGN_KEYS = """
SELECT con.conname, c.relname, f.relname,
       array(SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = ANY(con.conkey)),
       array(SELECT attname FROM pg_attribute WHERE attrelid = f.oid AND attnum = ANY(con.confkey))
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_class f ON f.oid = con.confrelid
WHERE con.contype = 'f' AND c.relnamespace = 'public'::regnamespace
"""


@pytest.fixture
def catalogue(database_url: str, client: Any, auth: Any) -> Any:
    """The migrated test database, with one dataset loaded so events has a partition."""
    token = auth.api_token("loader@example.com", "analyst")
    response = client.post(
        "/api/v1/datasets/meters/events",
        data=orjson.dumps([{"time": "2024-05-01T10:00:00Z", "n": 1}]),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.get_json()
    with psycopg.connect(libpq_url(database_url)) as conn:
        yield conn


def _partitions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events'::regclass"
    ).fetchall()
    return {name for (name,) in rows}


def test_every_table_is_either_distributed_or_a_reference_table(catalogue):
    tables = {
        name
        for (name,) in catalogue.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'p') AND NOT relispartition"
        )
    }
    assert tables == DISTRIBUTED | REFERENCE
    assert not DISTRIBUTED & REFERENCE


def test_distributed_tables_have_a_not_null_dataset_id(catalogue):
    partitions = _partitions(catalogue)
    assert partitions, "no partition of events to check"
    for table in DISTRIBUTED | partitions:
        row = catalogue.execute(
            "SELECT attnotnull FROM pg_attribute WHERE attrelid = %s::regclass AND attname = %s",
            (table, DISTRIBUTION_COLUMN),
        ).fetchone()
        assert row == (True,), f"{table}.{DISTRIBUTION_COLUMN} is missing or nullable"


def test_every_unique_key_of_a_distributed_table_holds_dataset_id(catalogue):
    checked = DISTRIBUTED | _partitions(catalogue)
    keys = [row for row in catalogue.execute(KEYS) if row[0] in checked]
    assert {table for table, _, _ in keys} >= DISTRIBUTED  # each has at least its primary key
    missing = [(index, columns) for _, index, columns in keys if DISTRIBUTION_COLUMN not in columns]
    assert missing == []


def test_foreign_keys_between_distributed_tables_pair_dataset_id(catalogue):
    checked = DISTRIBUTED | _partitions(catalogue)
    for name, table, target, columns, target_columns in catalogue.execute(FOREIGN_KEYS):
        if table in checked and target in checked:
            assert DISTRIBUTION_COLUMN in columns and DISTRIBUTION_COLUMN in target_columns, name
        if table in REFERENCE:
            assert target not in checked, f"{name}: a reference table cannot point into shards"
