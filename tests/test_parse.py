"""Reading CSV: the csv-spectrum suite, real files, encodings, headers, and arbitrary input."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl.parse import (
    MAX_COLUMNS,
    SAMPLE_SIZE,
    CsvError,
    CsvFormat,
    HeaderError,
    Record,
    detect_format,
    make_header,
    read_csv,
)
from tests.conftest import DATASETS, PLOTLY

SPECTRUM = DATASETS / "csv-spectrum"
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
FAST = settings(max_examples=200, deadline=None, database=None)


def read_all(data: bytes, fmt: CsvFormat | None = None) -> tuple[list[str], list[Record]]:
    reader = read_csv(io.BytesIO(data), fmt)
    return reader.header.labels, list(reader)


def spectrum_case(name: str) -> tuple[bytes, list[dict[str, str]]]:
    data = (SPECTRUM / "csvs" / f"{name}.csv").read_bytes()
    expected = json.loads((SPECTRUM / "json" / f"{name}.json").read_text(encoding="utf-8"))
    if name.endswith("_crlf") and b"\r\n" not in data:
        # The stored copies of the *_crlf cases lost their CRs; the JSON still expects them.
        data = data.replace(b"\n", b"\r\n")
    if name == "location_coordinates":
        # Upstream's JSON has a different phone number than its CSV (csv-spectrum's own bug).
        expected = [dict(expected, **{"Contact Phone Number": "2095257564"})]
    return data, expected


@pytest.mark.parametrize("name", sorted(path.stem for path in (SPECTRUM / "csvs").glob("*.csv")))
def test_csv_spectrum_case_parses_to_its_expected_records(name: str) -> None:
    data, expected = spectrum_case(name)
    labels, records = read_all(data)
    assert [dict(zip(labels, record.fields, strict=True)) for record in records] == expected
    assert all(record.error is None for record in records)


def test_there_are_twelve_spectrum_cases() -> None:
    assert len(list((SPECTRUM / "csvs").glob("*.csv"))) == 12


@pytest.mark.parametrize("data", [b"", b"\n\n\r\n", b"   \n"])
def test_empty_file_raises_header_error(data: bytes) -> None:
    with pytest.raises(HeaderError, match="empty"):
        read_csv(io.BytesIO(data))


@pytest.mark.parametrize("data", [b",,\n1,2,3\n", b' , ,"" \n1,2,3\n'])
def test_header_without_names_raises_header_error(data: bytes) -> None:
    with pytest.raises(HeaderError, match="header row is empty"):
        read_csv(io.BytesIO(data))


def test_header_with_unbalanced_quote_raises_header_error() -> None:
    with pytest.raises(HeaderError, match="quote that is never closed"):
        read_csv(io.BytesIO(b'a,"b,c\n1,2,3\n4,5,6\n'))


def test_binary_file_raises_csv_error() -> None:
    with pytest.raises(CsvError, match="binary file"):
        read_csv(io.BytesIO(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"))
    with pytest.raises(HeaderError, match="NUL byte"):
        read_csv(io.BytesIO(b"PK\x03\x04\x14\x00\x06\x00" + b"[Content_Types].xml" * 20))


def test_records_carry_physical_start_line_and_raw_text() -> None:
    data = b'a,b\r\n\r\n1,"x\r\ny"\r\n2,3\n\n\n4,"5"'
    _, records = read_all(data)
    assert [(record.line, record.fields, record.raw) for record in records] == [
        (3, ["1", "x\r\ny"], '1,"x\r\ny"'),
        (5, ["2", "3"], "2,3"),
        (8, ["4", "5"], '4,"5"'),
    ]


def test_ragged_records_are_yielded_for_validation() -> None:
    _, records = read_all(b"a,b,c\n1,2\n1,2,3,4\n")
    assert [record.fields for record in records] == [["1", "2"], ["1", "2", "3", "4"]]


def test_whitespace_only_line_is_blank_unless_the_file_has_one_column() -> None:
    assert read_all(b"a,b\n1,2\n   \n3,4\n")[1][1].fields == ["3", "4"]
    assert [record.fields for record in read_all(b"a\n1\n \n")[1]] == [["1"], [" "]]


def test_header_only_file_has_no_records() -> None:
    assert read_all(b"a,b\n") == (["a", "b"], [])


def test_nul_byte_flags_one_record_and_reading_goes_on() -> None:
    _, records = read_all(b"a,b\n1,x\x00y\n2,3\n")
    assert records[0].error == "contains a NUL byte"
    assert records[0].fields == ["1", "x\ufffdy"]
    assert (records[1].fields, records[1].error) == (["2", "3"], None)


def test_bytes_invalid_after_the_sample_flag_only_their_record() -> None:
    data = b"name,n\n" + b"plain,1\n" * 10_000 + b"caf\xe9,2\nend,3\n"
    reader = read_csv(io.BytesIO(data))
    assert reader.format.encoding == "utf-8"
    *_, bad, last = reader
    assert (bad.line, bad.fields, bad.error) == (10_002, ["caf\ufffd", "2"], bad.error)
    assert bad.error == "contains bytes that are not valid UTF-8"
    assert (last.fields, last.error) == (["end", "3"], None)


def test_overlong_field_is_reported_and_reading_recovers() -> None:
    data = b'a,b\n1,"' + b"x" * 200_000 + b"\n2,3\n"
    _, records = read_all(data)
    assert records[0].line == 2
    assert records[0].fields == []
    assert records[0].error is not None and "field larger than field limit" in records[0].error
    assert records[-1].fields == ["2", "3"]


def test_records_spanning_read_batches_keep_their_text_and_lines() -> None:
    rows = [["id", "text"]]
    for number in range(400):
        rows.append([str(number), "line\n" * (number % 7) + "x" * (number * 13 % 900)])
    rows.append(["long", "y\r\n" * 40_000])  # one field over several 64 KiB batches
    rows.append(["last", "z"])
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    _, records = read_all(text.getvalue().encode())
    assert [record.fields for record in records] == rows[1:]
    line = 2
    for record, row in zip(records, rows[1:], strict=True):
        written = io.StringIO()
        csv.writer(written).writerow(row)
        assert (record.line, record.raw) == (line, written.getvalue().removesuffix("\r\n"))
        line += written.getvalue().count("\n")


def test_overlong_multiline_field_is_reported_with_its_lines() -> None:
    data = b'a,b\n1,"' + b"x\n" * 70_000 + b"2,3\n"  # the quote is never closed
    _, records = read_all(data)
    assert (records[0].line, len(records[0].raw.splitlines())) == (2, 65_537)
    assert records[0].error is not None and "field larger" in records[0].error
    assert records[-1].fields == ["2", "3"]


class TrickleStream(io.RawIOBase):
    """A non-seekable stream that hands out at most 1000 bytes per read."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_non_seekable_stream_reads_like_a_file() -> None:
    data = (PLOTLY / "tips.csv").read_bytes()
    reader = read_csv(TrickleStream(data))  # type: ignore[arg-type]
    assert [record.fields for record in reader] == [record.fields for record in read_all(data)[1]]
    assert reader.bytes_read == len(data)


def test_large_file_is_streamed_not_read_whole() -> None:
    data = b"id,value\n" + b"".join(b"%d,%d\n" % (n, n * 7) for n in range(300_000))
    reader = read_csv(io.BytesIO(data))
    assert reader.bytes_read <= 3 * SAMPLE_SIZE
    progress = []
    for number, _ in enumerate(reader):
        if number % 50_000 == 0:
            progress.append(reader.bytes_read)
    assert progress == sorted(progress) and progress[-1] < len(data)
    assert reader.bytes_read == len(data)


def test_explicit_format_skips_detection() -> None:
    labels, records = read_all(b"a;b\n1;2\n", CsvFormat("utf-8", ","))
    assert (labels, records[0].fields) == (["a;b"], ["1;2"])


def test_unknown_format_values_are_refused() -> None:
    with pytest.raises(ValueError, match="encoding"):
        CsvFormat("ebcdic", ",")
    with pytest.raises(ValueError, match="delimiter"):
        CsvFormat("utf-8", ":")


PLOTLY_RECORDS = {
    "2016-weather-data-seattle.csv": 24_381,
    "MTA_Daily_Ridership.csv": 1_706,
    "finance-charts-apple.csv": 506,
    "gapminder-unclean.csv": 1_704,
    "supermarket_Sales.csv": 1_000,
    "tips.csv": 244,
}


@pytest.mark.parametrize("name", sorted(PLOTLY_RECORDS))
def test_plotly_file_reads_every_record(name: str) -> None:
    path = PLOTLY / name
    with path.open(newline="", encoding="utf-8") as handle:
        stdlib_rows = [row for row in csv.reader(handle) if row]
    with path.open("rb") as stream:
        reader = read_csv(stream)
        records = list(reader)
    assert reader.format == CsvFormat("utf-8", ",")
    assert len(records) == len(stdlib_rows) - 1 == PLOTLY_RECORDS[name]
    assert reader.header.labels == stdlib_rows[0]
    assert [record.fields for record in records] == stdlib_rows[1:]
    assert [record.line for record in records] == list(range(2, len(records) + 2))
    assert all(record.error is None for record in records)


TABLE = [
    ["City", "Note", "Amount"],
    ["Zürich", "café, crème", "1.5"],
    ["Köln", 'a "quoted"; word', "2"],
    ["Paris", "", "-3"],
]


def encoded(text: str, encoding: str) -> bytes:
    boms = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
    return boms.get(encoding, b"") + text.encode(encoding)


@pytest.mark.parametrize(
    ("encoding", "detected", "described"),
    [
        ("utf-8", "utf-8", "UTF-8"),
        ("utf-8-sig", "utf-8-sig", "UTF-8 with BOM"),
        ("utf-16", "utf-16", "UTF-16"),
        ("utf-16-le", "utf-16", "UTF-16"),  # with a BOM added by encoded()
        ("utf-16-be", "utf-16", "UTF-16"),
        ("latin-1", "latin-1", "Latin-1"),
    ],
)
@pytest.mark.parametrize(
    ("delimiter", "word"), [(",", "comma"), (";", "semicolon"), ("\t", "tab"), ("|", "pipe")]
)
def test_same_table_in_any_encoding_and_delimiter_reads_the_same(
    encoding: str, detected: str, described: str, delimiter: str, word: str
) -> None:
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(TABLE)
    reader = read_csv(io.BytesIO(encoded(text.getvalue(), encoding)))
    assert reader.format == CsvFormat(detected, delimiter)
    assert reader.format.describe() == f"{described}, {word}-separated"
    assert reader.header.labels == TABLE[0]
    assert [record.fields for record in reader] == TABLE[1:]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_recognised_by_its_nul_bytes(encoding: str) -> None:
    text = "a,b\r\nZürich,1\r\n" * 20
    fmt = detect_format(text.encode(encoding))
    assert fmt == CsvFormat(encoding, ",")
    assert "no BOM" in fmt.describe()


def test_utf8_sample_cut_inside_a_character_is_still_utf8() -> None:
    sample = ("a,b\n" + "é,1\n" * 20).encode()
    assert detect_format(sample[:-3]).encoding == "utf-8"
    assert detect_format(sample[:-3] + b"\xe9,1\n").encoding == "latin-1"


def test_delimiter_detection_ignores_decimal_commas_and_quoted_delimiters() -> None:
    assert detect_format(b"name;price\nfoo;1,5\nbar;2,5\n").delimiter == ";"
    assert detect_format(b'a,b\n"x;y;z",1\n"p;q;r",2\n').delimiter == ","
    assert detect_format(b"just one column\nvalue\n").delimiter == ","


def test_header_names_are_normalised() -> None:
    labels = ["Unit price", "Tax 5%", "Date:", "", "lifeExp", "AAPL.Open", "Order #"]
    assert make_header(labels).names == [
        "unit_price",
        "tax_5_pct",
        "date",
        "column_4",
        "life_exp",
        "aapl_open",
        "order_num",
    ]


def test_hostile_header_cells_become_safe_unique_identifiers() -> None:
    hostile = [
        "=cmd|' /C calc'!A0",
        "<script>alert(1)</script>",
        '"; DROP TABLE users; --',
        "Name",
        "name",
        " NAME ",
        "",
        "Zürich Straße",
        "日本語",
        "2016 sales",
        "x" * 100,
        "x" * 100,
        "\ufeffid",
    ]
    text = io.StringIO()
    csv.writer(text).writerows([hostile, ["1"] * len(hostile)])
    header = read_csv(io.BytesIO(text.getvalue().encode())).header
    assert header.names == [
        "cmd_c_calc_a0",
        "script_alert_1_script",
        "drop_table_users",
        "name",
        "name_2",
        "name_3",
        "column_7",
        "zurich_strasse",
        "column_9",
        "_2016_sales",
        "x" * 63,
        "x" * 61 + "_2",
        "id",
    ]
    assert header.labels == [cell.strip().lstrip("\ufeff") for cell in hostile]
    assert len(set(header.names)) == len(header.names)
    assert all(IDENTIFIER.fullmatch(name) and len(name) <= 63 for name in header.names)


def test_repeated_header_names_are_numbered_in_order_skipping_names_taken() -> None:
    cells = ["a", "a_3", *["a"] * 5, "x" * 100, *["x" * 100] * 11, *["Name"] * 200]
    names = make_header(cells).names
    assert names[:7] == ["a", "a_3", "a_2", "a_4", "a_5", "a_6", "a_7"]
    assert names[7:19] == ["x" * 63] + ["x" * 61 + f"_{n}" for n in range(2, 10)] + [
        "x" * 60 + f"_{n}" for n in range(10, 13)
    ]
    assert names[19:] == ["name"] + [f"name_{n}" for n in range(2, 201)]


def test_a_header_with_more_columns_than_a_dataset_may_have_is_refused() -> None:
    assert len(make_header(["v"] * MAX_COLUMNS).names) == MAX_COLUMNS
    with pytest.raises(HeaderError, match=f"{MAX_COLUMNS + 1} columns; a dataset may have at most"):
        make_header(["v"] * (MAX_COLUMNS + 1))


@FAST
@given(st.lists(st.text(max_size=80), min_size=1, max_size=12))
def test_any_header_cells_give_unique_identifiers(cells: list[str]) -> None:
    try:
        header = make_header(cells)
    except HeaderError:
        blank = not any(cell.strip().lstrip("\ufeff").strip() for cell in cells)
        assert blank or any("\x00" in cell for cell in cells)
        return
    assert len(set(header.names)) == len(header.names) == len(cells)
    assert all(IDENTIFIER.fullmatch(name) and len(name) <= 63 for name in header.names)


def assert_reads_or_refuses(data: bytes) -> None:
    try:
        reader = read_csv(io.BytesIO(data))
        records = list(reader)
    except CsvError:
        return
    assert all(name.isascii() for name in reader.header.names)
    for record in records:
        assert record.line >= 2
        # Whatever came in, what comes out can be stored and reported.
        "".join([*record.fields, record.raw]).encode("utf-8")
        assert "\x00" not in record.raw


@FAST
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_either_read_or_raise_csv_error(data: bytes) -> None:
    assert_reads_or_refuses(data)


CSV_HEAVY_TEXT = st.text(
    alphabet=st.sampled_from(list(',;\t|"\r\n \x00aé€\ufeff')) | st.characters(), max_size=500
)


@FAST
@given(CSV_HEAVY_TEXT, st.sampled_from(["utf-8", "utf-16", "latin-1", "utf-16-be"]))
def test_arbitrary_text_either_reads_or_raises_csv_error(text: str, encoding: str) -> None:
    assert_reads_or_refuses(text.encode(encoding, errors="replace"))


CELL = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
NAME = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


@st.composite
def tables(draw: st.DrawFn) -> list[list[str]]:
    header = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    row = st.lists(CELL, min_size=len(header), max_size=len(header))
    return [header, *draw(st.lists(row, max_size=20))]


@FAST
@given(tables())
def test_tables_written_by_csv_writer_read_back_exactly(table: list[list[str]]) -> None:
    lines = []
    for row in table:
        text = io.StringIO()
        csv.writer(text).writerow(row)
        lines.append(text.getvalue())
    reader = read_csv(io.BytesIO("".join(lines).encode()), CsvFormat("utf-8", ","))
    records = list(reader)
    assert reader.header.labels == table[0]
    assert [record.fields for record in records] == table[1:]
    starts = [1]
    for line in lines:
        starts.append(starts[-1] + len(re.findall(r"\r\n|\r|\n", line)))
    assert [record.line for record in records] == starts[1:-1]
    assert [record.raw for record in records] == [line.removesuffix("\r\n") for line in lines[1:]]
