"""Read CSV uploads: detect encoding and delimiter, normalise the header, stream the records."""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

SAMPLE_SIZE = 64 * 1024
MAX_NAME_LENGTH = 63  # PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1)
# The push path's rollup insert selects 4 columns per numeric field (3 + 4n <= 1664, the most
# PostgreSQL allows in a target list, so at most 415); this leaves room, and keeps a wide file
# from costing minutes of per-column work before it is refused.
MAX_COLUMNS = 250

ENCODINGS = {
    "utf-8": "UTF-8",
    "utf-8-sig": "UTF-8 with BOM",
    "utf-16": "UTF-16",
    # BOM-less UTF-16 is only recognised by its NUL bytes, so it needs an explicit byte order.
    "utf-16-le": "UTF-16 (little-endian, no BOM)",
    "utf-16-be": "UTF-16 (big-endian, no BOM)",
    "latin-1": "Latin-1",
}
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

# Undecodable bytes become U+DC00 + byte (like "surrogateescape", which fails on UTF-16's
# low bytes) so one bad record is flagged instead of the whole file raising.
_ESCAPE_ERRORS = "insightwave-escape"
_SURROGATES = re.compile("[\ud800-\udfff]")
_SAMPLE_RECORDS = 50
_BATCH_CHARS = 64 * 1024


def _escape_undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start : error.end]
    return "".join(chr(0xDC00 + byte) for byte in bad), error.end


codecs.register_error(_ESCAPE_ERRORS, _escape_undecodable)


class CsvError(ValueError):
    """A file that cannot be read as CSV at all (message for the user)."""


class HeaderError(CsvError):
    """The header row is missing, empty, or broken."""


@dataclass(frozen=True)
class CsvFormat:
    """How a file's bytes become rows: its text encoding and field delimiter."""

    encoding: str
    delimiter: str

    def __post_init__(self) -> None:
        if self.encoding not in ENCODINGS:
            raise ValueError(
                f"unsupported encoding {self.encoding!r}: use one of {list(ENCODINGS)}"
            )
        if self.delimiter not in DELIMITERS:
            raise ValueError(f"unsupported delimiter {self.delimiter!r}: use , ; tab or |")

    def describe(self) -> str:
        """Say in words how the file is read, e.g. 'UTF-8 with BOM, comma-separated'."""
        return f"{ENCODINGS[self.encoding]}, {DELIMITERS[self.delimiter]}-separated"


@dataclass(frozen=True)
class Header:
    """Column names safe for SQL and JSON, and the labels the file gave them."""

    names: list[str]
    labels: list[str]


@dataclass(frozen=True)
class Record:
    """One CSV record: where it starts, its fields, and its text for the rejected-rows report.

    ``error`` says why the parser could not read the record faithfully (NUL bytes, bytes
    invalid in the file's encoding, an over-long field); such records are still yielded, with
    the offending characters shown as U+FFFD, so validation can reject them one by one.
    """

    line: int
    fields: list[str]
    raw: str
    error: str | None = None


def detect_format(sample: bytes) -> CsvFormat:
    """Guess the encoding and delimiter of a file from its first bytes.

    :raises CsvError: the sample is mostly NUL bytes but not UTF-16, so not text at all.
    """
    encoding = _detect_encoding(sample)
    if not encoding.startswith("utf-16") and sample.count(0) * 10 > len(sample):
        raise CsvError("This is a binary file, not CSV text: upload a .csv export instead.")
    text = sample.decode(encoding, errors="replace")
    return CsvFormat(encoding, _detect_delimiter(text, complete=len(sample) < SAMPLE_SIZE))


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    head = sample[:4096]
    if head.count(0) > len(head) // 4:
        # ASCII text in UTF-16 has a NUL in every other byte: after each character in
        # little-endian, before it in big-endian.
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if odd > 4 * even:
            return "utf-16-le"
        if even > 4 * odd:
            return "utf-16-be"
    try:
        # Not final: the sample may end in the middle of a multibyte character.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "latin-1"
    return "utf-8"


def _detect_delimiter(text: str, complete: bool) -> str:
    if not complete:
        text = text[: max(text.rfind("\n"), text.rfind("\r")) + 1] or text  # cut off mid-line
    best, best_key = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        # No csv.Error possible: a 64 KiB sample is below the csv module's field size limit.
        lines = io.StringIO(text, newline="")
        rows = itertools.islice(csv.reader(lines, delimiter=delimiter), _SAMPLE_RECORDS)
        counts = [len(row) for row in rows if row]
        if not counts or counts[0] < 2:
            continue
        consistency = round(counts.count(counts[0]) / len(counts), 1)
        if (consistency, counts[0]) > best_key:
            best, best_key = delimiter, (consistency, counts[0])
    return best


_TRANSLITERATIONS = str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "ø": "o", "Ø": "O", "đ": "d"}
    | {"Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "%": " pct ", "#": " num "}
)
_CAMEL_HUMPS = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_IDENTIFIER = re.compile(r"[^a-z0-9]+")


def normalise_name(label: str) -> str:
    """Turn a header label into a lower snake_case ASCII identifier, or '' if nothing is left."""
    text = unicodedata.normalize("NFKD", label.translate(_TRANSLITERATIONS))
    text = _CAMEL_HUMPS.sub("_", text.encode("ascii", "ignore").decode("ascii")).lower()
    name = _NOT_IDENTIFIER.sub("_", text).strip("_")
    if name[:1].isdigit():
        name = "_" + name
    return name[:MAX_NAME_LENGTH].rstrip("_")


def make_header(cells: list[str]) -> Header:
    """Normalise header cells into unique names, numbering blanks and repeats.

    :raises HeaderError: the header is empty, holds a NUL byte or has too many columns.
    """
    check_column_count(len(cells), "The header")
    labels = [cell.strip().lstrip("\ufeff").strip() for cell in cells]
    if not any(labels):
        raise HeaderError("The header row is empty: the first line must name the columns.")
    if any("\x00" in label for label in labels):
        raise HeaderError("A column name contains a NUL byte.")
    names: list[str] = []
    taken: set[str] = set()
    numbered: dict[str, int] = {}  # per base name, the number its last repeat got
    for position, label in enumerate(labels, start=1):
        base = normalise_name(label) or f"column_{position}"
        # Numbers below the last one given were taken then, and still are: start after it.
        name, count = base, numbered.get(base, 1)
        while name in taken:
            count += 1
            suffix = f"_{count}"
            name = base[: MAX_NAME_LENGTH - len(suffix)] + suffix
        numbered[base] = count
        taken.add(name)
        names.append(name)
    return Header(names, labels)


def check_column_count(count: int, what: str) -> None:
    """Refuse more columns than a dataset may have; ``what`` names what has them.

    :raises HeaderError: ``count`` is over ``MAX_COLUMNS``.
    """
    if count > MAX_COLUMNS:
        raise HeaderError(
            f"{what} has {count} columns; a dataset may have at most {MAX_COLUMNS} columns."
        )


class _CountingSource(io.RawIOBase):
    """Serve the bytes peeked for detection, then the stream, counting what is consumed."""

    def __init__(self, stream: BinaryIO, prefix: bytes) -> None:
        self._stream = stream
        # A view, not slices of the bytes: the prefix may be a whole file held in memory.
        self._prefix = memoryview(prefix)
        self._offset = 0
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        data: bytes | memoryview
        if self._offset < len(self._prefix):
            data = self._prefix[self._offset : self._offset + len(target)]
            self._offset += len(data)
        else:
            data = self._stream.read(len(target))
        target[: len(data)] = data
        self.consumed += len(data)
        return len(data)


class CsvReader:
    """Iterate the Records of a binary stream, after its header (once: the stream is consumed)."""

    def __init__(self, stream: BinaryIO, fmt: CsvFormat, peeked: bytes = b"") -> None:
        self.format = fmt
        self._source = _CountingSource(stream, peeked)
        text = io.TextIOWrapper(
            io.BufferedReader(self._source, SAMPLE_SIZE),
            encoding=fmt.encoding,
            errors=_ESCAPE_ERRORS,
            newline="",  # keep line ends: the csv module handles CRLF and quoted newlines
        )
        self._width = 0
        self._records = self._parse(text)
        self.header = self._read_header()
        self._width = len(self.header.names)

    @property
    def bytes_read(self) -> int:
        """Bytes of the underlying stream consumed so far, for a progress bar."""
        return self._source.consumed

    def __iter__(self) -> Iterator[Record]:
        return self._records

    def _read_header(self) -> Header:
        first = next(self._records, None)
        if first is None:
            raise HeaderError("The file is empty: it has no header row.")
        if first.error or _ends_inside_quotes(first.raw, self.format.delimiter):
            reason = first.error or "opens a quote that is never closed"
            raise HeaderError(f"The header row {reason}: is this a CSV file?")
        return make_header(first.fields)

    def _parse(self, text: io.TextIOWrapper) -> Iterator[Record]:
        # The csv module pulls exactly one record's lines per row, so a record's raw text is
        # the lines read since the previous row. Lines come in batches (no Python code per
        # line); a record that spans batches keeps its earlier lines in carry. The state is
        # in closure variables, not attributes, because this loop runs once per record.
        batch: list[str] = []
        batch_start = 0  # lines before batch
        record_start = 0  # lines before the record being parsed
        carry: list[str] = []

        def line_batches() -> Iterator[list[str]]:
            nonlocal batch, batch_start, carry
            while new_batch := text.readlines(_BATCH_CHARS):
                unfinished = record_start - batch_start
                if unfinished < len(batch):
                    carry += batch[max(unfinished, 0) :]
                batch_start += len(batch)
                batch = new_batch
                yield new_batch

        def take_raw() -> str:
            nonlocal record_start, carry
            end, offset = rows.line_num - batch_start, record_start - batch_start
            record_start = rows.line_num
            if offset >= 0:
                return "".join(batch[offset:end])
            raw, carry = "".join(carry) + "".join(batch[:end]), []
            return raw

        lines = itertools.chain.from_iterable(line_batches())
        rows = csv.reader(lines, delimiter=self.format.delimiter)
        while True:
            try:
                for fields in rows:
                    line = record_start + 1
                    if rows.line_num == line and record_start >= batch_start:  # one line
                        raw = batch[record_start - batch_start]
                        record_start = line
                    else:
                        raw = take_raw()
                    if not fields or (len(fields) == 1 and self._width != 1 and raw.isspace()):
                        continue  # a blank line
                    raw = raw.rstrip("\r\n")
                    if raw.isascii() and "\x00" not in raw:
                        yield _new_record(line, fields, raw)
                    else:
                        yield _checked_record(line, fields, raw, self.format)
                return
            except csv.Error as error:
                line = record_start + 1
                raw = take_raw()
                if not raw:
                    raise CsvError(f"The file cannot be read as CSV: {error}.") from error
                yield Record(line, [], _storable(raw.rstrip("\r\n")), f"cannot be parsed: {error}")


def _new_record(line: int, fields: list[str], raw: str) -> Record:
    # The frozen dataclass __init__ (one object.__setattr__ per field) costs a third of the
    # parse time; writing the instance dict directly keeps >= 500k records/s.
    record = object.__new__(Record)
    attributes = record.__dict__
    attributes["line"] = line
    attributes["fields"] = fields
    attributes["raw"] = raw
    attributes["error"] = None
    return record


def _checked_record(line: int, fields: list[str], raw: str, fmt: CsvFormat) -> Record:
    if _SURROGATES.search(raw):
        error = f"contains bytes that are not valid {ENCODINGS[fmt.encoding]}"
    elif "\x00" in raw:
        error = "contains a NUL byte"
    else:
        return Record(line, fields, raw)
    return Record(line, [_storable(field) for field in fields], _storable(raw), error)


def _storable(text: str) -> str:
    # PostgreSQL stores neither NULs nor lone surrogates: show them as U+FFFD instead.
    return _SURROGATES.sub("\ufffd", text).replace("\x00", "\ufffd")


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    # Mirrors the csv module's non-strict rule: a quote opens only at the start of a field.
    quoted, at_field_start, position = False, True, 0
    while position < len(text):
        char = text[position]
        if quoted:
            if char == '"':
                if text[position + 1 : position + 2] == '"':
                    position += 1
                else:
                    quoted = False
        elif char == '"' and at_field_start:
            quoted = True
        at_field_start = not quoted and char in (delimiter, "\r", "\n")
        position += 1
    return quoted


def read_csv(stream: BinaryIO, fmt: CsvFormat | None = None) -> CsvReader:
    """Open a CSV stream for reading, detecting its format from the first 64 KiB if not given.

    :raises HeaderError: the file is empty or its header row is empty or broken.
    """
    peeked = b""
    if fmt is None:
        # Buffer the peeked bytes rather than seeking back: uploads may be non-seekable.
        chunks: list[bytes] = []
        size = 0
        while size < SAMPLE_SIZE and (chunk := stream.read(SAMPLE_SIZE - size)):
            chunks.append(chunk)
            size += len(chunk)
        peeked = b"".join(chunks)
        fmt = detect_format(peeked)
    return CsvReader(stream, fmt, peeked)
