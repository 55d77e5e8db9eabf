"""Validate a whole CSV file column by column, with the row validator's exact results.

The row path (``etl.parse`` + ``RowValidator``) costs about 20 us a row in Python. Here polars
parses and coerces whole columns, but only cells in plain formats whose vectorised reading is
known to equal the Python coercers (``etl.types``); every other row (odd quoting, a value
in another format, a rejected row, a row missing a required value) goes through the
``RowValidator`` one by one, so reasons, payload bytes and dedupe keys never depend on the
path. A file the columnar reader cannot line up with its lines (quoted newlines, lone CRs,
encodings other than UTF-8, quoting polars refuses) raises ColumnarRefused, and the caller
reads it through the row path instead; so do files whose time is a date and a time of day
in two columns.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import polars as pl

from etl.parse import CsvFormat, Record, _ends_inside_quotes
from etl.rollups import value_column
from etl.types import (
    AMOUNT_PATTERN,
    CURRENCY_SIGNS,
    FALSE_WORDS,
    NULL_TOKENS,
    TRUE_WORDS,
    ColumnType,
)
from etl.validate import PreparedRow, Rejection, RowValidator

# Rows prepared per polars batch: bounds memory (a few hundred bytes a row in flight).
BATCH_ROWS = 100_000
TIME_TYPE = pl.Datetime("us", "UTC")
FRAME_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),
    "ts": TIME_TYPE,
    "key": pl.Binary(),
    "payload": pl.String(),
}
_ASCII_BLANKS = " \t\x0b\x0c"  # what str.strip() removes from an ASCII cell without line ends
_INTEGER = r"^[+-]?[0-9]{1,18}$"  # 18 digits always fit in a bigint
_FLOAT = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# Thousands grouped with commas ("1,234", "1,234.5"), read as etl.types reads them: commas dropped.
_GROUPED_INTEGER = r"^[+-]?[0-9]{1,3}(?:,[0-9]{3}){1,5}$"
_GROUPED_FLOAT = r"^[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?$"
# A decimal-comma file's numbers ("1.234,5"), read as etl.types reads them: points dropped,
# the comma made a point.
_COMMA_FLOAT = r"^[+-]?(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)(?:,[0-9]+)?$"
_ISO = (
    r"^(?<date>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[T ](?<hm>[0-9]{2}:[0-9]{2})(?::(?<s>[0-9]{2})(?:\.(?<f>[0-9]{1,6}))?)?)?"
    r"(?:Z|\+00:00)?$"
)
_CONTROL = r"[\x00-\x1f]"  # JSON escapes these (orjson's way is left to orjson)
_NON_BLANK = r"\S"  # Unicode White_Space; Python's isspace() adds only \x1c-\x1f (controls)
_NULL_WORDS = sorted(NULL_TOKENS)


def frame_schema(validator: RowValidator) -> dict[str, pl.DataType]:
    """Columns of prepared rows: line, ts, key, payload, and each numeric field as a float."""
    numeric = validator.dataset.numeric_columns
    return FRAME_SCHEMA | {value_column(name): pl.Float64() for name in numeric}


@dataclass(frozen=True)
class PreparedBatch:
    """Prepared rows in file order (see ``frame_schema``) and the rejected rows of a batch."""

    frame: pl.DataFrame
    rejections: list[Rejection]
    rows_read: int


class ColumnarRefused(Exception):
    """The file does not line up as the columnar reader needs: read it row by row instead."""


def eligible(data: bytes, fmt: CsvFormat, validator: RowValidator) -> bool:
    """Say whether a file's records may be one line each in a form the columnar reader takes."""
    return (
        fmt.encoding in ("utf-8", "utf-8-sig")
        and data.count(b"\r") == data.count(b"\r\n")  # CR only in CRLF line ends
        and b"\x00" not in data
        and validator.time_of_day_index is None
    )


def prepare_batches(
    data: bytes, fmt: CsvFormat, validator: RowValidator
) -> Iterator[PreparedBatch]:
    """Validate the records of ``data`` (a whole CSV file) batch by batch, lazily.

    A batch is prepared only when asked for, so the caller can send one to the server while
    the next is prepared.

    :raises ColumnarRefused: at any batch; what was yielded before must then be discarded.
    """
    if not eligible(data, fmt, validator):
        raise ColumnarRefused
    header_end = data.find(b"\n")
    if header_end < 0 or b'"' in data[:header_end]:
        raise ColumnarRefused  # no records, or a header that might span lines
    frame = _cells_and_lines(data[header_end + 1 :], fmt, validator.width)
    for start in range(0, frame.height, BATCH_ROWS):
        batch = _prepare_batch(frame.slice(start, BATCH_ROWS), fmt, validator)
        if batch is None:
            raise ColumnarRefused
        yield batch


def _cells_and_lines(body: bytes, fmt: CsvFormat, width: int) -> pl.DataFrame:
    """Parse the records (cell0, cell1, ...) beside their lines (raw) and line numbers (line).

    :raises ColumnarRefused: when the records are not one a line.
    """
    try:
        body.decode(fmt.encoding)
    except UnicodeDecodeError:
        raise ColumnarRefused from None
    if not body.strip(b"\r\n"):
        return pl.DataFrame()
    try:
        # Each line as one field (there is no NUL in the data), read in parallel.
        lines = pl.read_csv(
            body,
            has_header=False,
            separator="\x00",
            quote_char=None,
            new_columns=["raw"],
            infer_schema=False,
        )["raw"].fill_null("")
        cells = pl.read_csv(
            body,
            has_header=False,
            new_columns=[f"cell{index}" for index in range(width)],
            separator=fmt.delimiter,
            infer_schema=False,
            quote_char='"',
        ).fill_null("")
    except pl.exceptions.PolarsError:
        raise ColumnarRefused from None  # ragged or oddly quoted beyond what polars reads
    if b"\r" in body:
        lines = lines.str.strip_suffix("\r")
    if cells.height != lines.len():
        raise ColumnarRefused  # a quoted newline or blank lines moved records off their lines
    return cells.with_columns(lines, pl.int_range(2, lines.len() + 2).alias("line"))


def _prepare_batch(
    frame: pl.DataFrame, fmt: CsvFormat, validator: RowValidator
) -> PreparedBatch | None:
    amounts = _amount_cells(frame, validator)
    plans = [_column_stages(validator, index, amounts) for index in range(len(validator.names))]
    for step in range(max(len(plan) for plan in plans)):
        frame = frame.with_columns(
            expr for plan in plans if step < len(plan) for expr in plan[step]
        )
    simple = pl.all_horizontal(
        _read_as_python(frame, fmt.delimiter, validator.width),
        *(pl.col(f"s{i}") for i in range(len(plans))),
    )
    for index in validator.required:
        simple = simple & pl.col(f"v{index}").is_not_null()
    if validator.time_index is not None:
        simple = simple & pl.col(f"v{validator.time_index}").is_not_null()
    frame = frame.with_columns(simple.fill_null(False).alias("simple"))
    fast = frame.filter(pl.col("simple"))
    prepared = _payloads(fast, validator)
    slow = frame.filter(~pl.col("simple")).select("line", "raw")
    try:
        explained, rejections, skipped = _row_by_row(slow.rows(), fmt, validator)
    except _Unaligned:
        return None
    result = pl.concat([prepared, explained]).sort("line") if explained.height else prepared
    return PreparedBatch(result, rejections, frame.height - skipped)


def _read_as_python(frame: pl.DataFrame, delimiter: str, width: int) -> pl.Expr:
    """True where the csv module reads the line into the same fields as polars did.

    Without quotes, a line is its fields joined by the delimiter: the count of delimiters
    says whether the line has them all. With quotes, the fields written back (quoted where
    the csv module would) must give the line itself.
    """
    raw = pl.col("raw")
    quoted = raw.str.contains('"', literal=True)
    names = [f"cell{index}" for index in range(width)]
    encoded = [
        pl.when(pl.col(name).str.contains(f'[{delimiter}"]'))
        .then(pl.lit('"') + pl.col(name).str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(pl.col(name))
        for name in names
    ]
    written_back = frame.filter(quoted).filter(pl.concat_str(encoded, separator=delimiter) == raw)
    plain = (raw != "") & (raw.str.count_matches(delimiter, literal=True) == width - 1)
    return (
        pl.when(quoted).then(pl.col("line").is_in(written_back["line"].implode())).otherwise(plain)
    )


Stages = list[list[pl.Expr]]  # expressions by step; a step reads the columns of the steps before


def _amount_cells(frame: pl.DataFrame, validator: RowValidator) -> set[int]:
    """The positions of numeric columns with a cell that may be an amount in this batch.

    Reading amounts costs a regex a cell (about 1.3 s a million), so only those read them.
    """
    numeric = (ColumnType.INTEGER, ColumnType.FLOAT)
    positions = [
        position
        for position, column in zip(validator.positions, validator.dataset.columns, strict=True)
        if position is not None and column.type in numeric
    ]
    if not positions:
        return set()
    marked = frame.select(
        pl.col(f"cell{position}").str.contains(_AMOUNT_MARK).any().alias(str(position))
        for position in positions
    )
    return {int(name) for name, seen in marked.row(0, named=True).items() if seen}


def _column_stages(validator: RowValidator, index: int, amounts: set[int]) -> Stages:
    """Plan columns v{index} (typed value), s{index} (read exactly here) and j{index} (JSON);
    numbers may be amounts (``etl.types.plain_amount``) in the cells of positions ``amounts``.

    Intermediate results are materialised as columns, step by step, so that polars computes
    each once (an expression used twice is otherwise evaluated twice).
    """
    position = validator.positions[index]
    kind = validator.dataset.columns[index].type
    v, s, j = (f"{prefix}{index}" for prefix in "vsj")
    if position is None:
        return [[pl.lit(None).alias(v), pl.lit(True).alias(s), pl.lit("null").alias(j)]]
    cell = pl.col(f"cell{position}")
    if kind is ColumnType.TEXT:
        escaped = cell.str.replace_all("\\", "\\\\", literal=True)
        escaped = escaped.str.replace_all('"', '\\"', literal=True)
        return [
            [
                pl.when(cell.str.contains(_NON_BLANK)).then(cell).alias(v),
                (
                    ~cell.str.contains(_CONTROL) & (cell.str.contains(_NON_BLANK) | (cell == ""))
                ).alias(s),
            ],
            [_quoted_json(pl.col(v), escaped).alias(j)],
        ]
    t, b = f"t{index}", f"b{index}"
    stripped = pl.col(t)
    first = [
        cell.str.strip_chars(_ASCII_BLANKS).alias(t),
    ]
    blank = ((stripped == "") | stripped.str.to_lowercase().is_in(_NULL_WORDS)).alias(b)
    plain_json = pl.col(v).cast(pl.String).fill_null("null").alias(j)
    if kind in (ColumnType.INTEGER, ColumnType.FLOAT):
        comma = validator.numbers.decimal_comma
        numbers = _number_stages(index, kind, comma, position in amounts, blank, plain_json)
        return [first, *numbers]
    if kind is ColumnType.BOOLEAN:
        word = stripped.str.to_lowercase()
        value = (
            pl.when(word.is_in(sorted(TRUE_WORDS)))
            .then(True)
            .when(word.is_in(sorted(FALSE_WORDS)))
            .then(False)
        )
        return [
            first,
            [blank, value.alias(v)],
            [
                (pl.col(b) | pl.col(v).is_not_null()).alias(s),
                pl.when(pl.col(v))
                .then(pl.lit("true"))
                .when(~pl.col(v))
                .then(pl.lit("false"))
                .otherwise(pl.lit("null"))
                .alias(j),
            ],
        ]
    return [first, *_timestamp_stages(index, blank)]


def _number_stages(
    index: int,
    kind: ColumnType,
    comma: bool,
    read_amounts: bool,
    blank: pl.Expr,
    plain_json: pl.Expr,
) -> Stages:
    """The stages after the stripped cell of an integer or float column (``_column_stages``):
    amounts read where ``read_amounts``, numbers in the file's decimal mark (``comma``)."""
    stripped, m, v, s = (pl.col(f"t{index}"), f"m{index}", f"v{index}", f"s{index}")
    a, b = f"a{index}", pl.col(f"b{index}")
    amount = pl.col(a)  # the cell, or the number of an amount written with a currency sign
    read = [blank, (_plain_amount(stripped) if read_amounts else stripped).alias(a)]
    ungrouped = amount.str.replace_all(",", "", literal=True)
    if kind is ColumnType.INTEGER:
        # A decimal-comma file's integers have no comma (its grouped ones go row by row).
        form = _INTEGER if comma else f"{_INTEGER}|{_GROUPED_INTEGER}"
        return [
            read,
            [amount.str.contains(form).alias(m)],
            [
                pl.when(pl.col(m)).then(ungrouped.cast(pl.Int64, strict=False)).alias(v),
                (b | pl.col(m)).alias(s),
            ],
            [plain_json],
        ]
    n = f"n{index}"
    number, form = ungrouped, f"{_FLOAT}|{_GROUPED_FLOAT}"
    if comma:
        number = amount.str.replace_all(".", "", literal=True)
        number, form = number.str.replace(",", ".", literal=True), _COMMA_FLOAT
    return [
        read,
        [number.cast(pl.Float64, strict=False).alias(n)],
        [(amount.str.contains(form) & pl.col(n).is_finite()).fill_null(False).alias(m)],
        [pl.when(pl.col(m)).then(pl.col(n)).alias(v), (b | pl.col(m)).alias(s)],
        # polars and orjson both print the shortest repr that reads back (tested).
        [plain_json],
    ]


def _plain_amount(text: pl.Expr) -> pl.Expr:
    """``text``, or the number of the amount it writes, as ``etl.types.plain_amount`` reads it
    ("-1234.50" for "($1234.50)")."""
    parts = text.str.extract_groups(f"^(?:{AMOUNT_PATTERN})$").struct
    given = {name: parts.field(name).is_not_null() for name in _AMOUNT_PARTS}
    amount = (
        given["number"]
        & (given["open"] == given["close"])
        & (given["open"] | given["lead"] | given["trail"])
        & ~(given["lead"] & given["trail"])
        & ~(given["before"] & given["after"])
        & ~((given["before"] | given["after"]) & given["open"])
        & ~(given["after"] & ~given["lead"])
    )
    negative = given["open"] | (parts.field("before") == "-") | (parts.field("after") == "-")
    signed = pl.when(negative.fill_null(False)).then("-" + parts.field("number"))
    return pl.when(amount).then(signed.otherwise(parts.field("number"))).otherwise(text)


_AMOUNT_PARTS = ("open", "before", "lead", "after", "number", "trail", "close")
_AMOUNT_MARK = f"[{CURRENCY_SIGNS}(]"  # a cell without one is no amount


def _timestamp_stages(index: int, blank: pl.Expr) -> Stages:
    """Read ISO 8601 times in UTC (or without offset, taken as UTC), as datetime.fromisoformat."""
    t, b, g, c, p, i, e, v, s, j = (f"{prefix}{index}" for prefix in "tbgcpievsj")
    parts = pl.col(g)
    canonical = pl.concat_str(
        parts.struct["date"],
        pl.lit("T"),
        parts.struct["hm"].fill_null("00:00"),
        pl.lit(":"),
        parts.struct["s"].fill_null("00"),
        pl.lit("."),
        parts.struct["f"].fill_null("").str.pad_end(6, "0"),
    )
    parsed = pl.col(p)
    micro = parsed.dt.microsecond()
    digits = micro.cast(pl.String).str.zfill(6)
    # A reading that does not print back the same (a leap second, 24:00, year 0) is left to
    # Python, which refuses those.
    exact = (pl.col(i) + "." + digits == pl.col(c)) & (parsed.dt.year() >= 1)
    # orjson leaves out a zero fraction.
    fraction = pl.when(micro != 0).then("." + digits).otherwise(pl.lit(""))
    return [
        [blank, pl.col(t).str.extract_groups(_ISO).alias(g)],
        [canonical.alias(c)],
        [pl.col(c).str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", time_unit="us", strict=False).alias(p)],
        [parsed.dt.strftime("%Y-%m-%dT%H:%M:%S").alias(i)],
        [
            exact.fill_null(False).alias(e),
            pl.concat_str(pl.col(i), fraction, pl.lit("+00:00")).alias(j),
        ],
        [
            pl.when(pl.col(e)).then(parsed.dt.replace_time_zone("UTC")).alias(v),
            (pl.col(b) | pl.col(e)).alias(s),
            pl.when(pl.col(e))
            .then(pl.lit('"') + pl.col(j) + pl.lit('"'))
            .otherwise(pl.lit("null"))
            .alias(j),
        ],
    ]


def _quoted_json(value: pl.Expr, text: pl.Expr) -> pl.Expr:
    return (
        pl.when(value.is_not_null())
        .then(pl.lit('"') + text + pl.lit('"'))
        .otherwise(pl.lit("null"))
    )


def _payloads(frame: pl.DataFrame, validator: RowValidator) -> pl.DataFrame:
    """Build each row's payload JSON and dedupe key exactly as ``RowValidator._prepare`` does."""
    parts: list[pl.Expr] = []
    for index, name in enumerate(validator.names):
        parts += [pl.lit(("{" if index == 0 else ",") + f'"{name}":'), pl.col(f"j{index}")]
    parts.append(pl.lit("}"))
    exprs = [pl.col("line"), pl.concat_str(parts).alias("payload")]
    if validator.time_index is not None:
        exprs.append(pl.col(f"v{validator.time_index}").alias("ts"))
    else:
        exprs.append(pl.lit(None, dtype=TIME_TYPE).alias("ts"))
    numeric = set(validator.dataset.numeric_columns)
    exprs += [
        pl.col(f"v{index}").cast(pl.Float64).alias(value_column(name))
        for index, name in enumerate(validator.names)
        if name in numeric
    ]
    if validator.key_indexes:
        key_parts: list[pl.Expr] = [pl.lit("[")]
        for number, index in enumerate(validator.key_indexes):
            key_parts += [pl.lit("," if number else ""), pl.col(f"j{index}")]
        exprs.append(pl.concat_str([*key_parts, pl.lit("]")]).alias("key_source"))
    prepared = frame.select(exprs)
    source = prepared["key_source" if validator.key_indexes else "payload"]
    md5 = hashlib.md5
    keys = [md5(item, usedforsecurity=False).digest() for item in source.cast(pl.Binary).to_list()]
    key = pl.Series("key", keys, dtype=pl.Binary)
    return prepared.with_columns(key).select(*frame_schema(validator))


def _row_by_row(
    rows: list[tuple[int, str]], fmt: CsvFormat, validator: RowValidator
) -> tuple[pl.DataFrame, list[Rejection], int]:
    """Run the rows the columnar reading left out through the row validator."""
    prepared: list[tuple[int, PreparedRow]] = []
    rejections: list[Rejection] = []
    skipped = 0
    for line, raw in rows:
        if _ends_inside_quotes(raw, fmt.delimiter):
            raise _Unaligned
        fields = next(csv.reader([raw], delimiter=fmt.delimiter), [])
        if not fields or (len(fields) == 1 and validator.width != 1 and raw.isspace()):
            skipped += 1  # a blank line, as the row reader skips it
            continue
        outcome = validator(Record(line, fields, raw))
        if isinstance(outcome, Rejection):
            rejections.append(outcome)
        else:
            prepared.append((line, outcome))
    numeric = validator.dataset.numeric_columns
    values = [orjson.loads(row[2]) for _, row in prepared] if numeric else []
    frame = pl.DataFrame(
        {
            "line": [line for line, _ in prepared],
            "ts": [row[0] for _, row in prepared],
            "key": [row[1] for _, row in prepared],
            "payload": [row[2].decode() for _, row in prepared],
            **{
                value_column(name): [_float(value.get(name)) for value in values]
                for name in numeric
            },
        },
        schema=frame_schema(validator),
    )
    return frame, rejections, skipped


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


class _Unaligned(Exception):
    """A record does not end on its line after all."""
