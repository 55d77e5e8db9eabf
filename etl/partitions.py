"""Per-dataset partitions of ``events``: created, indexed and attached on a dataset's first load.

A new partition is filled while it is still a table of its own, invisible to readers (it is
created in the loading transaction), and gets its indexes by one sort each afterwards; only
then is it attached. Attaching takes a SHARE UPDATE EXCLUSIVE lock on ``events``: readers and
writers of other datasets go on, other first loads wait for the commit.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

LOAD_LOCK_CLASS = 7303  # advisory lock namespace: (LOAD_LOCK_CLASS, dataset id), one load at a time
PARTITIONING_LOCK = (7304, 0)  # held by transactions that add datasets or partitions
INDEX_MEMORY = "256MB"  # sorts for the new partition's indexes stay in memory up to ~1M rows


def partition_name(dataset_id: int) -> str:
    """Name the partition of ``events`` holding one dataset's rows."""
    return f"events_{dataset_id}"


def lock_dataset_loads(conn: psycopg.Connection[Any], dataset_id: int) -> None:
    """Wait until no other transaction loads into the dataset; held until commit.

    Ids then appear in commit order within a dataset, so the live hub's ``id > cursor``
    never skips a row committed late.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOAD_LOCK_CLASS, dataset_id))


def lock_partitioning(conn: psycopg.Connection[Any]) -> None:
    """Wait until no other transaction adds a dataset or a partition; held until commit.

    Attaching a partition clones the foreign key to ``datasets``, which waits for every
    transaction that inserted a dataset; one of those waiting in turn to attach its own
    partition would deadlock. Taking this lock first, in both cases, queues them instead.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", PARTITIONING_LOCK)


def has_partition(conn: psycopg.Connection[Any], dataset_id: int) -> bool:
    """Say whether the dataset's partition exists (it may be empty)."""
    row = conn.execute(
        "SELECT to_regclass(format('public.%%I', %s::text)) IS NOT NULL",
        (partition_name(dataset_id),),
    ).fetchone()
    return bool(row and row[0])


def create_partition_table(conn: psycopg.Connection[Any], dataset_id: int) -> sql.Identifier:
    """Create the dataset's partition as a plain unindexed table, not yet attached."""
    lock_partitioning(conn)
    name = partition_name(dataset_id)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {table} (LIKE events INCLUDING DEFAULTS, "
            "CONSTRAINT {check} CHECK (dataset_id = {dataset}))"
        ).format(
            table=sql.Identifier(name),
            check=sql.Identifier(f"ck_{name}_dataset_id"),
            dataset=sql.Literal(dataset_id),
        )
    )
    # Rows COPYed straight into the partition need no dataset_id of their own.
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN dataset_id SET DEFAULT {}").format(
            sql.Identifier(name), sql.Literal(dataset_id)
        )
    )
    return sql.Identifier(name)


def index_and_attach(conn: psycopg.Connection[Any], dataset_id: int) -> None:
    """Build the partition's indexes (one sort each) and attach it to ``events``.

    The CHECK constraint made with the table spares the attach its scan of the rows.
    """
    name = partition_name(dataset_id)
    names = {
        "table": sql.Identifier(name),
        "pk": sql.Identifier(f"pk_{name}"),
        "uq": sql.Identifier(f"uq_{name}_dataset_id_dedupe_key"),
        "ix": sql.Identifier(f"ix_{name}_dataset_id_ts"),
        "dataset": sql.Literal(dataset_id),
    }
    conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(INDEX_MEMORY)))
    for statement in (
        "ALTER TABLE {table} ADD CONSTRAINT {pk} PRIMARY KEY (dataset_id, id)",
        "ALTER TABLE {table} ADD CONSTRAINT {uq} UNIQUE (dataset_id, dedupe_key)",
        "CREATE INDEX {ix} ON {table} (dataset_id, ts)",
        "ALTER TABLE events ATTACH PARTITION {table} FOR VALUES IN ({dataset})",
    ):
        conn.execute(sql.SQL(statement).format(**names))


def ensure_partition(conn: psycopg.Connection[Any], dataset_id: int) -> bool:
    """Create and attach the dataset's (empty) partition unless it exists; True if created."""
    if has_partition(conn, dataset_id):
        return False
    create_partition_table(conn, dataset_id)
    index_and_attach(conn, dataset_id)
    return True
