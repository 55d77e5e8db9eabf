"""Datasets as the ingest path sees them: a name, typed columns, a time column and a dedupe key."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from etl.parse import MAX_COLUMNS
from etl.partitions import has_partition, lock_dataset_loads, lock_partitioning, partition_name
from etl.types import Column, ColumnType, TimestampStyle

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class DatasetError(ValueError):
    """A dataset definition or name was refused; the message is for the user."""


class DatasetExists(DatasetError):
    """A dataset of that name already exists (perhaps created since the caller looked)."""


@dataclass(frozen=True)
class DatasetSpec:
    """What loading needs to know about a dataset."""

    id: int
    name: str
    columns: list[Column]
    time_column: str | None = None
    time_of_day_column: str | None = None
    key_columns: list[str] = field(default_factory=list)
    day_first: bool = False

    @property
    def timestamp_style(self) -> TimestampStyle:
        return TimestampStyle(day_first=self.day_first)

    def column(self, name: str) -> Column | None:
        return next((column for column in self.columns if column.name == name), None)

    @property
    def numeric_columns(self) -> list[str]:
        numeric = {ColumnType.INTEGER, ColumnType.FLOAT}
        return [column.name for column in self.columns if column.type in numeric]


def check_dataset_name(raw: str) -> str:
    """Return ``raw`` if it is a valid dataset name, else raise DatasetError saying what is."""
    if not _NAME.match(raw):
        raise DatasetError(
            f"dataset name {raw!r} is not valid: use 1 to 63 lower-case letters, digits and "
            "underscores, starting with a letter (for example sales_2024)"
        )
    return raw


def check_definition(
    columns: Sequence[Column],
    time_column: str | None,
    key_columns: Sequence[str],
    time_of_day_column: str | None = None,
) -> None:
    """Raise DatasetError unless the columns fit a dataset and the time and key columns do."""
    if not columns:
        raise DatasetError("a dataset needs at least one column")
    if len(columns) > MAX_COLUMNS:
        raise DatasetError(f"a dataset may have at most {MAX_COLUMNS} columns")
    by_name = {column.name: column for column in columns}
    if len(by_name) != len(columns):
        raise DatasetError("column names must be unique")
    if time_column is not None:
        column = by_name.get(time_column)
        if column is None:
            raise DatasetError(f"time column {time_column!r} is not a column of the data")
        if column.type != ColumnType.TIMESTAMP:
            raise DatasetError(
                f"time column {time_column!r} holds {column.type.value} values, not timestamps"
            )
    if time_of_day_column is not None and time_of_day_column not in by_name:
        raise DatasetError(f"time-of-day column {time_of_day_column!r} is not a column")
    missing = [name for name in key_columns if name not in by_name]
    if missing:
        raise DatasetError(f"key column {missing[0]!r} is not a column of the data")


def get_dataset(conn: psycopg.Connection[Any], name: str) -> DatasetSpec | None:
    """Return the dataset called ``name``, or None."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            "SELECT id, name, columns, time_column, time_of_day_column, key_columns, options "
            "FROM datasets WHERE name = %s",
            (name,),
        ).fetchone()
    if row is None:
        return None
    return DatasetSpec(
        id=row["id"],
        name=row["name"],
        columns=[Column.from_json(item) for item in row["columns"]],
        time_column=row["time_column"],
        time_of_day_column=row["time_of_day_column"],
        key_columns=list(row["key_columns"]),
        day_first=bool(row["options"].get("day_first", False)),
    )


def create_dataset(
    conn: psycopg.Connection[Any],
    name: str,
    columns: Sequence[Column],
    *,
    time_column: str | None = None,
    time_of_day_column: str | None = None,
    key_columns: Sequence[str] = (),
    day_first: bool = False,
    owner_id: int | None = None,
    label: str | None = None,
) -> DatasetSpec:
    """Create a dataset in the caller's transaction.

    :raises DatasetExists: for a name already taken.
    :raises DatasetError: for a bad definition.
    """
    check_dataset_name(name)
    check_definition(columns, time_column, key_columns, time_of_day_column)
    lock_partitioning(conn)
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO datasets (name, label, columns, time_column, time_of_day_column, "
                "key_columns, options, owner_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id",
                (
                    name,
                    label or name,
                    Jsonb([column.to_json() for column in columns]),
                    time_column,
                    time_of_day_column,
                    list(key_columns),
                    Jsonb({"day_first": day_first}),
                    owner_id,
                ),
            ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise DatasetExists(f"a dataset called {name!r} already exists") from exc
    assert row is not None
    return DatasetSpec(
        id=row[0],
        name=name,
        columns=list(columns),
        time_column=time_column,
        time_of_day_column=time_of_day_column,
        key_columns=list(key_columns),
        day_first=day_first,
    )


def delete_dataset(conn: psycopg.Connection[Any], name: str) -> int | None:
    """Delete the dataset called ``name`` in the caller's transaction, with its events (its
    partition is dropped, not emptied row by row), rollups, grants, jobs, runs and keys.

    Waits for loads into it to end. Returns how many events it held, or None if there is no
    such dataset.
    """
    lock_partitioning(conn)  # dropping a partition queues with attaching one
    row = conn.execute("SELECT id FROM datasets WHERE name = %s FOR UPDATE", (name,)).fetchone()
    if row is None:
        return None
    dataset_id = int(row[0])
    lock_dataset_loads(conn, dataset_id)
    held = 0
    if has_partition(conn, dataset_id):
        table = sql.Identifier(partition_name(dataset_id))
        counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
        held = int(counted[0]) if counted else 0
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    conn.execute("DELETE FROM datasets WHERE id = %s", (dataset_id,))  # the rest cascades
    return held
