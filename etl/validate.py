"""Validation: each record becomes a row ready to load, or a rejection with its reason."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from etl.datasets import DatasetError, DatasetSpec
from etl.parse import Record
from etl.types import CoercionError, NumberStyle, coercer, join_date_time

# (time, dedupe key, payload as JSON): the shape COPY takes.
PreparedRow = tuple[datetime | None, bytes, bytes]


@dataclass(frozen=True)
class Rejection:
    line: int
    raw: str
    reason: str


def column_positions(dataset: DatasetSpec, header: Sequence[str]) -> list[int | None]:
    """Map each dataset column to its position in ``header`` (None: absent, values are null).

    :raises DatasetError: when the header has a column the dataset lacks, or lacks one it needs.
    """
    known = {column.name for column in dataset.columns}
    unknown = [name for name in header if name not in known]
    if unknown:
        raise DatasetError(
            f"the data has a column {unknown[0]!r} that dataset {dataset.name!r} does not have"
        )
    optional_names = (dataset.time_column, dataset.time_of_day_column)
    required = {name for name in optional_names if name is not None} | set(dataset.key_columns)
    required |= {column.name for column in dataset.columns if not column.nullable}
    missing = sorted(name for name in required if name not in header)
    if missing:
        raise DatasetError(f"the data lacks column {missing[0]!r} that the dataset needs")
    index = {name: position for position, name in enumerate(header)}
    return [index.get(column.name) for column in dataset.columns]


class RowValidator:
    """Turn the records of one input into prepared rows or rejections."""

    def __init__(
        self,
        dataset: DatasetSpec,
        header: Sequence[str],
        labels: Sequence[str],
        numbers: NumberStyle | None = None,
    ) -> None:
        self.dataset = dataset
        self.width = len(header)
        self.positions = column_positions(dataset, header)
        self.numbers = numbers or NumberStyle()  # the input's, not the dataset's: files differ
        style = dataset.timestamp_style
        self.coercers: list[Callable[[str], Any]] = [
            coercer(column.type, style, self.numbers) for column in dataset.columns
        ]
        label_of = dict(zip(header, labels, strict=True))
        self.labels = [label_of.get(column.name, column.name) for column in dataset.columns]
        self.names = [column.name for column in dataset.columns]
        self.nullable = [column.nullable for column in dataset.columns]
        self.time_index = self._index(dataset.time_column)
        self.time_of_day_index = self._index(dataset.time_of_day_column)
        self.key_indexes = [self.names.index(name) for name in dataset.key_columns]
        self.conversions = list(zip(self.positions, self.coercers, strict=True))
        self.required = [index for index, nullable in enumerate(self.nullable) if not nullable]

    def _index(self, name: str | None) -> int | None:
        return self.names.index(name) if name is not None else None

    def __call__(self, record: Record) -> PreparedRow | Rejection:
        fields = record.fields
        if record.error is not None:
            return Rejection(record.line, record.raw, record.error)
        if len(fields) != self.width:
            return Rejection(
                record.line, record.raw, f"expected {self.width} fields, found {len(fields)}"
            )
        # Fast path: convert every cell in one comprehension; only when that fails (or a
        # required value is missing) walk the cells again to say which one and why.
        try:
            values = [
                convert(fields[position]) if position is not None else None
                for position, convert in self.conversions
            ]
        except CoercionError:
            return self._explain(record)
        for index in self.required:
            if values[index] is None:
                return self._explain(record)
        return self._prepare(record, values)

    def _explain(self, record: Record) -> Rejection:
        """Find the first cell that fails and return the rejection naming it."""
        for position, convert, label, nullable in zip(
            self.positions, self.coercers, self.labels, self.nullable, strict=True
        ):
            text = record.fields[position] if position is not None else ""
            try:
                value = convert(text)
            except CoercionError as exc:
                return Rejection(record.line, record.raw, f"column {label!r}: {exc}")
            if value is None and not nullable:
                given = text.strip()  # empty, or a word for no value such as "NA"
                missing = f"{given!r} means no value" if given else "is empty"
                return Rejection(record.line, record.raw, f"column {label!r}: {missing}")
        raise AssertionError("_explain called for a valid record")

    def _prepare(self, record: Record, values: list[Any]) -> PreparedRow | Rejection:
        time: datetime | None = None
        if self.time_index is not None:
            time = values[self.time_index]
            if time is None:
                label = self.labels[self.time_index]
                return Rejection(record.line, record.raw, f"column {label!r}: the time is empty")
            if self.time_of_day_index is not None:
                clock = values[self.time_of_day_index]
                try:
                    time = join_date_time(time, str(clock or ""))
                except CoercionError as exc:
                    label = self.labels[self.time_of_day_index]
                    return Rejection(record.line, record.raw, f"column {label!r}: {exc}")
        payload = orjson.dumps(dict(zip(self.names, values, strict=True)))
        if self.key_indexes:
            key_source = orjson.dumps([values[index] for index in self.key_indexes])
        else:
            key_source = payload
        return time, hashlib.md5(key_source, usedforsecurity=False).digest(), payload
