"""The ingest pipeline: parse, infer (for a new dataset), validate and load, in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, BinaryIO

import orjson
import polars as pl
import psycopg

from etl.columnar import ColumnarRefused, PreparedBatch, prepare_batches
from etl.datasets import DatasetError, DatasetExists, DatasetSpec, create_dataset, get_dataset
from etl.load import load_events, load_frames, store_rejections
from etl.parse import SAMPLE_SIZE as PEEK_SIZE
from etl.parse import CsvError, CsvFormat, CsvReader, Header, Record, detect_format, make_header
from etl.types import (
    Column,
    ColumnType,
    NumberStyle,
    combine_date_and_time,
    infer_columns,
    infer_timestamp_style,
    number_style,
    suggest_time_column,
)
from etl.validate import PreparedRow, Rejection, RowValidator

SAMPLE_SIZE = 1000
# The columnar reader holds a file and its columns at once: about 10x the file at the peak
# (880 MB for the 87 MB bench file). Larger files stream through the row path.
COLUMNAR_MAX_BYTES = 256 << 20
NULLABLE_SHARE = 0.05  # a column with more empty values than this share may be empty
Progress = Callable[[int], None]


class IngestError(ValueError):
    """The whole input was refused (nothing was loaded); the message says why."""


@dataclass(frozen=True)
class IngestOptions:
    """What the user chose: target dataset, and for a new one its time column, key and types."""

    dataset: str
    time_column: str | None = None
    key_columns: tuple[str, ...] = ()
    column_types: dict[str, str] = field(default_factory=dict)
    create: bool = True
    owner_id: int | None = None
    decimal_mark: str | None = None  # "point" or "comma"; None: each file's own, detected

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IngestOptions:
        return cls(**{**data, "key_columns": tuple(data.get("key_columns", ()))})


@dataclass
class IngestSummary:
    dataset: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    run_id: int | None = None
    format: str | None = None
    created: bool = False
    columns: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ingest_csv(
    conn: psycopg.Connection[Any],
    stream: BinaryIO,
    options: IngestOptions,
    *,
    run_id: int | None = None,
    progress: Progress | None = None,
    columnar: bool = True,
) -> IngestSummary:
    """Load a CSV stream into a dataset (creating it from the data when new).

    ``columnar=False`` validates row by row even where the columnar reader could (it gives
    the same result; tests compare the two).

    :raises IngestError: when the file cannot be read or does not fit the dataset.
    """
    # A file that fits in memory can be validated column by column (etl.columnar); the
    # reader still detects its format, reads its header and samples it for inference.
    data = _read_up_to(stream, COLUMNAR_MAX_BYTES + 1)
    whole = columnar and len(data) <= COLUMNAR_MAX_BYTES
    try:
        reader = CsvReader(stream, detect_format(data[:PEEK_SIZE]), peeked=data)
        records = iter(reader)
        sample = list(islice(records, SAMPLE_SIZE))
    except CsvError as exc:
        raise IngestError(str(exc)) from exc
    try:
        numbers = number_style(
            options.decimal_mark, [record.fields for record in sample], reader.format.delimiter
        )
    except ValueError as exc:
        raise IngestError(str(exc)) from exc

    def by_columns(validator: RowValidator) -> Iterator[PreparedBatch] | None:
        return prepare_batches(data, reader.format, validator) if whole else None

    def reported(items: Iterable[Record]) -> Iterator[Record]:
        for count, record in enumerate(items, start=1):
            if progress is not None and count % 10_000 == 0:
                progress(reader.bytes_read)
            yield record

    summary = _ingest(
        conn,
        reader.header,
        sample,
        reported(chain(sample, records)),
        options,
        run_id,
        by_columns,
        numbers,
    )
    summary.format = describe_format(reader.format, numbers)
    if progress is not None:
        progress(len(data) if whole else reader.bytes_read)
    return summary


def describe_format(fmt: CsvFormat, numbers: NumberStyle) -> str:
    """A file's format in words, with its decimal comma where it uses one."""
    described = fmt.describe()
    return f"{described}, decimal comma" if numbers.decimal_comma else described


def _read_up_to(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes, or all there is; uploads may return short reads before the end."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0 and (chunk := stream.read(min(remaining, 1 << 24))):
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def ingest_records(
    conn: psycopg.Connection[Any],
    items: Sequence[Any],
    options: IngestOptions,
    *,
    run_id: int | None = None,
) -> IngestSummary:
    """Load JSON objects (as pushed to the API) through the same validation as CSV."""
    labels: dict[str, None] = {}
    for item in items:
        if isinstance(item, dict):
            labels.update(dict.fromkeys(item))
    if not labels:
        raise IngestError("the batch holds no JSON objects with fields")
    try:
        header = make_header(list(labels))
    except CsvError as exc:
        raise IngestError(str(exc)) from exc
    records = [_record(line, item, list(labels)) for line, item in enumerate(items, start=1)]
    return _ingest(
        conn, header, [r.fields for r in records][:SAMPLE_SIZE], records, options, run_id
    )


def _record(line: int, item: Any, labels: list[str]) -> Record:
    raw = orjson.dumps(item).decode()
    if not isinstance(item, dict):
        return Record(line=line, fields=[], raw=raw, error="the item is not a JSON object")
    fields = []
    for label in labels:
        value = item.get(label)
        if isinstance(value, dict | list):
            error = f"field {label!r} holds an object or a list, not a single value"
            return Record(line=line, fields=[], raw=raw, error=error)
        fields.append(_text(value))
    if any("\x00" in field for field in fields):
        return Record(line=line, fields=[], raw=raw, error="a value contains a NUL byte")
    return Record(line=line, fields=fields, raw=raw)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _ingest(
    conn: psycopg.Connection[Any],
    header: Header,
    sample: Sequence[Any],
    records: Iterable[Record],
    options: IngestOptions,
    run_id: int | None,
    columnar: Callable[[RowValidator], Iterator[PreparedBatch] | None] | None = None,
    numbers: NumberStyle | None = None,
) -> IngestSummary:
    sample_fields = [item.fields if isinstance(item, Record) else item for item in sample]
    try:
        dataset, created = _dataset_for(conn, options, header, sample_fields, numbers)
        validator = RowValidator(dataset, header.names, header.labels, numbers)
    except DatasetError as exc:
        raise IngestError(str(exc)) from exc
    summary = IngestSummary(dataset=dataset.name, run_id=run_id, created=created)
    now = datetime.now(UTC)
    batches = columnar(validator) if columnar is not None else None
    rejections: list[Rejection] = []
    counts = None
    if batches is not None:
        try:
            with conn.transaction():  # a savepoint: a refusal midway leaves nothing behind
                frames = _batch_frames(batches, summary, rejections)
                counts = load_frames(conn, dataset, frames, run_id=run_id, now=now)
        except ColumnarRefused:
            summary.rows_read = 0
            rejections.clear()
    if counts is None:
        counts = load_events(
            conn,
            dataset,
            _valid_rows(records, validator, summary, rejections),
            run_id=run_id,
            now=now,
        )
    if created and counts.loaded == 0 and rejections:
        # Nothing half-made: a new dataset with none of its rows is not kept (the caller's
        # transaction takes it back); the reason of the first rejected row says why.
        first = rejections[0]
        others = len(rejections) - 1
        more = {0: "", 1: " (1 more row rejected)"}.get(others, f" ({others} more rows rejected)")
        raise IngestError(
            f"no row could be loaded, so dataset {dataset.name!r} was not created: "
            f"line {first.line}: {first.reason}{more}"
        )
    if run_id is not None and rejections:
        store_rejections(conn, run_id, rejections)
    summary.rows_loaded = counts.loaded
    summary.rows_duplicate = counts.duplicate
    summary.rows_rejected = len(rejections)
    summary.columns = [column.to_json() for column in dataset.columns]
    return summary


def _batch_frames(
    batches: Iterable[PreparedBatch], summary: IngestSummary, rejections: list[Rejection]
) -> Iterator[pl.DataFrame]:
    """Yield the frames of prepared batches, counting their rows and keeping the rejections."""
    for batch in batches:
        summary.rows_read += batch.rows_read
        rejections += batch.rejections
        yield batch.frame


def _valid_rows(
    records: Iterable[Record],
    validator: RowValidator,
    summary: IngestSummary,
    rejections: list[Rejection],
) -> Iterator[PreparedRow]:
    """Validate records one by one, counting them and keeping the rejections."""
    for record in records:
        summary.rows_read += 1
        outcome = validator(record)
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            yield outcome


def _dataset_for(
    conn: psycopg.Connection[Any],
    options: IngestOptions,
    header: Header,
    sample: Sequence[Sequence[str]],
    numbers: NumberStyle | None,
) -> tuple[DatasetSpec, bool]:
    existing = get_dataset(conn, options.dataset)
    if existing is not None:
        return existing, False
    if not options.create:
        raise DatasetError(f"there is no dataset called {options.dataset!r}")
    if not sample:
        raise DatasetError(
            f"there are no rows to create dataset {options.dataset!r} from: the data holds "
            "a header only"
        )
    columns = _override_types(
        _rare_empties_required(infer_columns(header, sample, numbers), sample),
        options.column_types,
    )
    time_column = options.time_column or suggest_time_column(columns)
    if options.time_column is not None:
        time_column = _column_name(header, options.time_column)
    pair = combine_date_and_time(columns, sample)
    time_of_day = pair[1] if pair is not None and pair[0] == time_column else None
    stamps = [
        row[header.names.index(time_column)]
        for row in sample
        if time_column is not None and len(row) == len(header.names)
    ]
    try:
        dataset = create_dataset(
            conn,
            options.dataset,
            columns,
            time_column=time_column,
            time_of_day_column=time_of_day,
            key_columns=[_column_name(header, key) for key in options.key_columns],
            day_first=infer_timestamp_style(stamps).day_first if stamps else False,
            owner_id=options.owner_id,
        )
    except DatasetExists:
        # Another load created it since we looked (concurrent first pushes) and has committed
        # (the insert waited for it): its definition stands, and this data is appended to it,
        # unless this load chose a definition of its own, which would be silently ignored.
        chose = options.time_column or options.key_columns or options.column_types
        existing = None if chose else get_dataset(conn, options.dataset)
        if existing is None:
            raise
        return existing, False
    return dataset, True


def _rare_empties_required(columns: list[Column], sample: Sequence[Sequence[str]]) -> list[Column]:
    """Make a column required when (almost) every sampled row has a value in it.

    A value missing from under 5% of rows is more likely a defect than a feature of the
    data, so those rows are rejected with a reason instead of loading silently incomplete.
    """
    rows = [row for row in sample if len(row) == len(columns)]
    if not rows:
        return columns
    result = []
    for index, column in enumerate(columns):
        empties = sum(1 for row in rows if not row[index].strip())
        nullable = empties / len(rows) > NULLABLE_SHARE
        result.append(Column(column.name, column.label, column.type, nullable))
    return result


def _column_name(header: Header, given: str) -> str:
    """Accept a column by its normalised name or by its original label."""
    if given in header.names:
        return given
    for name, label in zip(header.names, header.labels, strict=True):
        if label == given:
            return name
    raise DatasetError(f"there is no column {given!r} in the data")


def _override_types(columns: list[Column], overrides: dict[str, str]) -> list[Column]:
    names = {column.name for column in columns}
    for name in overrides:
        if name not in names:
            raise DatasetError(f"cannot set the type of {name!r}: there is no such column")
    result = []
    for column in columns:
        if column.name in overrides:
            try:
                chosen = ColumnType(overrides[column.name])
            except ValueError:
                raise DatasetError(f"unknown type {overrides[column.name]!r}") from None
            column = Column(column.name, column.label, chosen, column.nullable)
        result.append(column)
    return result
