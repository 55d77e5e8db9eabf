"""Infer column types from a sample of records, and turn CSV text into typed values."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from etl.parse import MAX_NAME_LENGTH, Header

# Written for a missing value by R, pandas and spreadsheets. They are nulls only in typed
# columns: in a text column "NA" may be a value (Namibia's country code).
NULL_TOKENS = frozenset({"na", "n/a", "#n/a", "nan", "null", "none", "<na>"})
TRUE_WORDS = frozenset({"true", "yes", "t", "y"})
FALSE_WORDS = frozenset({"false", "no", "f", "n"})
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1  # PostgreSQL bigint

_IDENTIFIER = re.compile(rf"[a-z_][a-z0-9_]{{0,{MAX_NAME_LENGTH - 1}}}")
# US grouping ("1,234,567.5"), read in files that write decimals with a point.
_GROUPED_NUMBER = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
# In files that write decimals with a comma (Europe: "1.234,56", "99,5"), points group digits.
_COMMA_NUMBER = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?", re.ASCII)
_COMMA_GROUPED_INTEGER = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+", re.ASCII)
_COMMA_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+", re.ASCII)
_POINT_DECIMAL = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)\.\d+", re.ASCII)
_ONE_GROUP = re.compile(r"[+-]?\d{1,3}[.,]\d{3}", re.ASCII)  # "1,234" or "1.234": either way round
# Identifiers such as ZIP codes and phone numbers lose their leading zero as numbers.
_LEADING_ZERO = re.compile(r"[+-]?0\d")
# An amount as spreadsheets write money: a currency sign before or after the number, a minus
# on either side of a leading sign, or accounting's parentheses for a negative ("$1,234.50",
# "-$2", "$-2", "2 €", "(1,234.50)", "($12)"). The currency signs are Metabase's for CSV
# uploads. A percent sign is not read: 12% could mean 12 or 0.12, so it stays text.
CURRENCY_SIGNS = "$€£¥₹₪₩₿¢"
AMOUNT_PATTERN = (  # also read by polars (etl.columnar): the same syntax in both
    rf"(?P<open>\()?(?P<before>[+-])?(?P<lead>[{CURRENCY_SIGNS}])?\s?(?P<after>[+-])?"
    rf"(?P<number>[0-9][0-9.,]*)\s?(?P<trail>[{CURRENCY_SIGNS}])?(?P<close>\))?"
)
_AMOUNT = re.compile(AMOUNT_PATTERN)


class ColumnType(StrEnum):
    """The types a column's values are stored as."""

    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    TEXT = "text"


@dataclass(frozen=True)
class Column:
    """A dataset column: its identifier, its label in the file, and its type."""

    name: str
    label: str
    type: ColumnType
    nullable: bool = True

    def to_json(self) -> dict[str, object]:
        """Describe the column as JSON-ready data."""
        return {
            "name": self.name,
            "label": self.label,
            "type": str(self.type),
            "nullable": self.nullable,
        }

    @classmethod
    def from_json(cls, data: object) -> Column:
        """Build a column from JSON data sent by a user, checking every key.

        :raises ValueError: with a message that names the bad key.
        """
        if not isinstance(data, dict):
            raise ValueError("a column must be a JSON object")
        unknown = sorted(
            str(key) for key in data if key not in {"name", "label", "type", "nullable"}
        )
        if unknown:
            raise ValueError(f"unknown column keys: {', '.join(unknown)}")
        name, label, kind = data.get("name"), data.get("label"), data.get("type")
        nullable = data.get("nullable", True)
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ValueError(
                f'column "name" must be a lower-case identifier of at most {MAX_NAME_LENGTH} '
                "letters, digits and underscores, not starting with a digit"
            )
        if not isinstance(label, str):
            raise ValueError(f'column "label" of {name} must be a string')
        if not isinstance(kind, str) or kind not in set(ColumnType):
            allowed = ", ".join(ColumnType)
            raise ValueError(f'column "type" of {name} must be one of {allowed}')
        if not isinstance(nullable, bool):
            raise ValueError(f'column "nullable" of {name} must be true or false')
        return cls(name, label, ColumnType(kind), nullable)


class CoercionError(ValueError):
    """A value that does not fit its column's type, e.g. '"seven" is not an integer'."""


@dataclass(frozen=True)
class NumberStyle:
    """How a file writes decimals: with a point (1,234.5) or a comma (1.234,5)."""

    decimal_comma: bool = False

    @property
    def mark(self) -> str:
        """The decimal mark by name: "comma" or "point"."""
        return "comma" if self.decimal_comma else "point"


@dataclass(frozen=True)
class TimestampStyle:
    """How to read ambiguous numeric dates such as 1/5/2019."""

    day_first: bool = False


def quoted(text: str, limit: int = 40) -> str:
    """Quote a value for a message, shortened so one bad cell cannot flood a report."""
    return f'"{text if len(text) <= limit else text[:limit] + "…"}"'


def plain_amount(text: str) -> str | None:
    """The number of an amount written with a currency sign or in parentheses ("-1,234.50"
    for "($1,234.50)"), or None when ``text`` is not written so."""
    match = _AMOUNT.fullmatch(text)
    if match is None or bool(match["open"]) != bool(match["close"]):
        return None
    if not (match["open"] or match["lead"] or match["trail"]) or (match["lead"] and match["trail"]):
        return None
    signs = [sign for sign in (match["before"], match["after"]) if sign]
    if len(signs) > 1 or (signs and match["open"]) or (match["after"] and not match["lead"]):
        return None
    negative = bool(match["open"]) or signs == ["-"]
    return f"-{match['number']}" if negative else match["number"]


def _amounts(read: Callable[[str], object]) -> Callable[[str], object]:
    """``read``, also taking amounts (``plain_amount``) whose number it reads; a bad one is
    refused with the reason ``read`` gives for the cell as written."""

    def read_amount(text: str) -> object:
        try:
            return read(text)
        except CoercionError as refusal:
            plain = plain_amount(text.strip())
            if plain is None:
                raise
            try:
                return read(plain)
            except CoercionError:
                raise refusal from None

    return read_amount


def _to_integer(text: str) -> int | None:
    stripped = text.strip()
    try:
        # int() also takes "1_000" and non-ASCII digits, which no CSV writer means as numbers.
        value = int(stripped) if stripped.isascii() and "_" not in stripped else None
    except ValueError:
        value = None
    if value is None:
        if not stripped or stripped.lower() in NULL_TOKENS:
            return None
        if not _GROUPED_NUMBER.fullmatch(stripped) or "." in stripped:
            raise CoercionError(f"{quoted(text)} is not an integer")
        value = int(stripped.replace(",", ""))
    if not BIGINT_MIN <= value <= BIGINT_MAX:
        raise CoercionError(f"{quoted(text)} is too large for an integer")
    return value


def _to_float(text: str) -> float | None:
    stripped = text.strip()
    try:
        value = float(stripped) if stripped.isascii() and "_" not in stripped else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        # "NaN" means missing, not a number to average; infinities have no place in a chart.
        if not stripped or stripped.lower() in NULL_TOKENS:
            return None
        if not _GROUPED_NUMBER.fullmatch(stripped):
            raise CoercionError(f"{quoted(text)} is not a number")
        value = float(stripped.replace(",", ""))
    return value


def _to_integer_comma(text: str) -> int | None:
    """Read an integer of a decimal-comma file, where "1.234" is a thousand and more."""
    stripped = text.strip()
    if _COMMA_GROUPED_INTEGER.fullmatch(stripped):
        value = int(stripped.replace(".", ""))
        if not BIGINT_MIN <= value <= BIGINT_MAX:
            raise CoercionError(f"{quoted(text)} is too large for an integer")
        return value
    if "," in stripped:
        raise CoercionError(f"{quoted(text)} is not an integer")
    return _to_integer(text)


def _to_float_comma(text: str) -> float | None:
    """Read a number of a decimal-comma file: "1.234,5", "99,5", or "1.234" (1234)."""
    stripped = text.strip()
    if _COMMA_NUMBER.fullmatch(stripped):
        value = float(stripped.replace(".", "").replace(",", "."))
        if math.isfinite(value):
            return value
    elif not stripped or stripped.lower() in NULL_TOKENS:
        return None
    raise CoercionError(f"{quoted(text)} is not a number (the file writes decimals with a comma)")


# Integers and numbers as a file writes them (decimal comma or not), amounts included.
_NUMBER_READERS = {
    (ColumnType.INTEGER, False): _amounts(_to_integer),
    (ColumnType.FLOAT, False): _amounts(_to_float),
    (ColumnType.INTEGER, True): _amounts(_to_integer_comma),
    (ColumnType.FLOAT, True): _amounts(_to_float_comma),
}


def _to_boolean(text: str) -> bool | None:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    if not word or word in NULL_TOKENS:
        return None
    raise CoercionError(f"{quoted(text)} is not a boolean")


def _to_text(text: str) -> str | None:
    return text if text and not text.isspace() else None


_TIME = (
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"(?:\s*(?P<meridiem>[AaPp])\.?[Mm]\.?)?"
)
_TIME_OF_DAY = re.compile(_TIME)
_NUMERIC_DATE = re.compile(
    r"(?P<first>\d{1,4})(?P<sep>[/.-])(?P<second_part>\d{1,2})(?P=sep)(?P<third>\d{1,4})"
    rf"(?:(?:T|,?\s+){_TIME})?"
)
_NAMED_DATE = re.compile(
    r"(?:(?P<month>[a-z]{3,9})\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+(?P<year>\d{4})"
    r"|(?P<day2>\d{1,2})(?:st|nd|rd|th)?[\s-](?P<month2>[a-z]{3,9})\.?,?[\s-](?P<year2>\d{4}))"
    rf"(?:,?\s+{_TIME})?",
    re.IGNORECASE,
)
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
)
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES.split(), start=1)}
_MONTHS |= {name[:3]: number for name, number in _MONTHS.items()} | {"sept": 9}


def _time_parts(match: re.Match[str]) -> tuple[int, int, int, int]:
    if match["hour"] is None:
        return 0, 0, 0, 0
    hour = int(match["hour"])
    if match["meridiem"]:
        if not 1 <= hour <= 12:
            raise ValueError("a 12-hour clock hour must be 1 to 12")
        hour = hour % 12 + (12 if match["meridiem"] in "Pp" else 0)
    microsecond = int((match["fraction"] or "")[:6].ljust(6, "0"))
    return hour, int(match["minute"]), int(match["second"] or 0), microsecond


def _from_iso(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text) if text.isascii() else None
    except ValueError:
        return None
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _from_numeric(text: str, day_first: bool | None) -> datetime | None:
    match = _NUMERIC_DATE.fullmatch(text)
    if match is None:
        return None
    first, second, third = match["first"], match["second_part"], match["third"]
    if len(first) == 4 and len(third) <= 2:
        year, month, day = int(first), int(second), int(third)
    elif len(first) <= 2 and (len(third) == 4 or (len(third) == 2 and match["sep"] == "/")):
        # Two-digit years only with "/": "1.2.10" is more likely a version than a date.
        if day_first is None:
            day_first = match["sep"] == "."
        day, month = (int(first), int(second)) if day_first else (int(second), int(first))
        year = (
            int(third) if len(third) == 4 else 2000 + int(third) - (100 if int(third) > 68 else 0)
        )
    else:
        return None
    try:
        return datetime(year, month, day, *_time_parts(match), tzinfo=UTC)
    except ValueError:
        return None


def _from_named(text: str) -> datetime | None:
    match = _NAMED_DATE.fullmatch(text)
    if match is None:
        return None
    month = _MONTHS.get((match["month"] or match["month2"]).lower())
    if month is None:
        return None
    day, year = int(match["day"] or match["day2"]), int(match["year"] or match["year2"])
    try:
        return datetime(year, month, day, *_time_parts(match), tzinfo=UTC)
    except ValueError:
        return None


def _timestamp_coercer(style: TimestampStyle | None) -> Callable[[str], datetime | None]:
    day_first = None if style is None else style.day_first
    parsers: list[Callable[[str], datetime | None]] = [
        _from_iso,
        lambda text: _from_numeric(text, day_first),
        _from_named,
    ]

    def to_timestamp(text: str) -> datetime | None:
        stripped = text.strip()
        if not stripped:
            return None
        for parser in parsers:
            value = parser(stripped)
            if value is not None:
                if parser is not parsers[0]:  # a column keeps one format: try it first next time
                    parsers.remove(parser)
                    parsers.insert(0, parser)
                return value
        if stripped.lower() in NULL_TOKENS:
            return None
        raise CoercionError(f"{quoted(text)} is not a date or time")

    return to_timestamp


def coercer(
    column_type: ColumnType,
    style: TimestampStyle | None = None,
    numbers: NumberStyle | None = None,
) -> Callable[[str], object]:
    """Return a function that turns a cell into its typed value, or None for a blank one.

    The function raises CoercionError for a value that does not fit. Timestamps come back
    timezone-aware (a time without an offset is taken as UTC); without a style, numeric dates
    are read month first with "/" or "-" and day first with "."; without a number style,
    decimals are written with a point.
    """
    if column_type is ColumnType.TIMESTAMP:
        return _timestamp_coercer(style)
    comma = numbers is not None and numbers.decimal_comma
    converters: dict[ColumnType, Callable[[str], object]] = {
        ColumnType.INTEGER: _NUMBER_READERS[ColumnType.INTEGER, comma],
        ColumnType.FLOAT: _NUMBER_READERS[ColumnType.FLOAT, comma],
        ColumnType.BOOLEAN: _to_boolean,
        ColumnType.TEXT: _to_text,
    }
    return converters[column_type]


def infer_timestamp_style(values: Sequence[str]) -> TimestampStyle:
    """Decide whether numeric dates in a sample put the day or the month first."""
    day_first_seen = month_first_seen = False
    dotted = other = 0
    for value in values:
        match = _NUMERIC_DATE.fullmatch(value.strip())
        if match is None or len(match["first"]) == 4:
            continue
        first, second = int(match["first"]), int(match["second_part"])
        day_first_seen |= first > 12 >= second
        month_first_seen |= second > 12 >= first
        dotted, other = (dotted + 1, other) if match["sep"] == "." else (dotted, other + 1)
    if day_first_seen != month_first_seen:
        return TimestampStyle(day_first=day_first_seen)
    # Undecided: "5.1.2019" is European (day first), "1/5/2019" American (month first).
    return TimestampStyle(day_first=dotted > other)


def number_style(
    mark: object, sample: Sequence[Sequence[str]], delimiter: str | None
) -> NumberStyle:
    """The style of a decimal mark chosen by name ("point" or "comma"), or, for None, the
    one the file's sample shows.

    :raises ValueError: for any other mark.
    """
    if mark is None:
        return infer_number_style(sample, delimiter)
    if mark not in ("point", "comma"):
        raise ValueError(f"the decimal mark is 'comma' or 'point', not {mark!r}")
    return NumberStyle(decimal_comma=mark == "comma")


def infer_number_style(sample: Sequence[Sequence[str]], delimiter: str | None) -> NumberStyle:
    """Decide whether a file writes decimals with a comma, from the numbers in a sample.

    Cells such as "99,5" or "1.234,56" vote for a comma, "0.75" or "1,234.5" for a point;
    "1,234" and "1.234" read either way and do not vote. The larger vote wins; on a tie
    (no vote at all, say), a semicolon-separated file is taken to be written in a decimal-comma
    locale, as spreadsheets there write CSV, and any other file with a point.
    """
    comma = point = 0
    for row in sample:
        for cell in row:
            value = cell.strip()
            if len(value) > 40:
                continue
            value = plain_amount(value) or value
            if _ONE_GROUP.fullmatch(value):
                continue
            if _COMMA_DECIMAL.fullmatch(value) and not _GROUPED_NUMBER.fullmatch(value):
                comma += 1
            elif _POINT_DECIMAL.fullmatch(value):
                point += 1
    if comma != point:
        return NumberStyle(decimal_comma=comma > point)
    return NumberStyle(decimal_comma=delimiter == ";")


def _fits(convert: Callable[[str], object], values: Sequence[str]) -> bool:
    try:
        for value in values:
            convert(value)
    except CoercionError:
        return False
    return True


def infer_type(values: Sequence[str], numbers: NumberStyle | None = None) -> ColumnType:
    """Pick the narrowest type that every value (none blank or a null token) fits."""
    if not values:
        return ColumnType.TEXT
    # Leading zeros and integers too long for bigint mark identifiers, not quantities.
    numeric = not any(
        _LEADING_ZERO.match(value) or (len(value) > 18 and value.isdigit()) for value in values
    )
    if numeric and _fits(coercer(ColumnType.INTEGER, numbers=numbers), values):
        return ColumnType.INTEGER
    if numeric and _fits(coercer(ColumnType.FLOAT, numbers=numbers), values):
        return ColumnType.FLOAT
    if _fits(_to_boolean, values):
        return ColumnType.BOOLEAN
    if _fits(_timestamp_coercer(infer_timestamp_style(values)), values):
        return ColumnType.TIMESTAMP
    return ColumnType.TEXT


def infer_columns(
    header: Header, sample: Sequence[Sequence[str]], numbers: NumberStyle | None = None
) -> list[Column]:
    """Infer each column's type and nullability from a sample of records' fields."""
    columns = []
    for index, (name, label) in enumerate(zip(header.names, header.labels, strict=True)):
        cells = [row[index].strip() for row in sample if index < len(row)]
        present = [cell for cell in cells if cell]
        voters = [cell for cell in present if cell.lower() not in NULL_TOKENS]
        column_type = infer_type(voters, numbers)
        # Null tokens are values in a text column; any cell left unseen may be blank.
        nulls_seen = len(present) < len(cells) or (
            column_type is not ColumnType.TEXT and len(voters) < len(present)
        )
        columns.append(Column(name, label, column_type, nullable=nulls_seen or not cells))
    return columns


def _time_of_day(text: str) -> tuple[int, int, int, int] | None:
    match = _TIME_OF_DAY.fullmatch(text.strip())
    try:
        parts = _time_parts(match) if match else None
    except ValueError:
        return None
    if parts is None or parts[0] > 23 or parts[1] > 59 or parts[2] > 59:
        return None
    return parts


def combine_date_and_time(
    columns: Sequence[Column], sample: Sequence[Sequence[str]]
) -> tuple[str, str] | None:
    """Find a date column and a time-of-day column to join into one timestamp, if any."""

    def cells(index: int) -> list[str]:
        return [row[index].strip() for row in sample if index < len(row)]

    dates, times = [], []
    for index, column in enumerate(columns):
        values = cells(index)
        if not values or not all(values):
            continue
        if column.type is ColumnType.TIMESTAMP and not any(":" in value for value in values):
            dates.append(column.name)
        elif column.type is ColumnType.TEXT and all(_time_of_day(value) for value in values):
            times.append(column.name)
    if not dates or not times:
        return None
    # max() keeps the first of equals: prefer the names that say what they hold.
    return max(dates, key=lambda name: "date" in name), max(times, key=lambda name: "time" in name)


def join_date_time(date_value: datetime, time_text: str) -> datetime:
    """Set a date's time of day from text such as "13:08" or "1:08 PM"."""
    parts = _time_of_day(time_text)
    if parts is None:
        raise CoercionError(f"{quoted(time_text)} is not a time of day")
    hour, minute, second, microsecond = parts
    return date_value.replace(hour=hour, minute=minute, second=second, microsecond=microsecond)


_TIME_NAMES = ("timestamp", "datetime", "date_time", "time", "ts", "date")
_TIME_WORDS = frozenset({"timestamp", "datetime", "time", "ts", "date", "at", "on", "day"})


def suggest_time_column(columns: Sequence[Column]) -> str | None:
    """Name the timestamp column best suited as a dataset's time axis, or None."""

    def score(column: Column) -> int:
        if column.name in _TIME_NAMES:
            return 2 * len(_TIME_NAMES) - _TIME_NAMES.index(column.name)
        return 1 if _TIME_WORDS & set(column.name.split("_")) else 0

    candidates = [column for column in columns if column.type is ColumnType.TIMESTAMP]
    return max(candidates, key=score).name if candidates else None
