"""CSV export that spreadsheets cannot mistake for formulas."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(cell: object) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with an apostrophe (OWASP).

    Numbers stay numbers: ``-3.5`` is a value, not a formula.
    """
    if isinstance(cell, int | float) and not isinstance(cell, bool):
        return str(cell)
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_lines(header: Iterable[str], rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """Yield CSV text, one record at a time, every cell neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(cell) for cell in header])
    for row in rows:
        writer.writerow([neutralise(cell) for cell in row])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def rejected_rows_csv(conn: psycopg.Connection[Any], run_id: int) -> Iterator[str]:
    """Yield a run's rejected rows as CSV: line, reason, raw."""
    cursor = conn.execute(
        "SELECT line, reason, raw FROM rejected_rows WHERE run_id = %s ORDER BY line", (run_id,)
    )
    yield from csv_lines(("line", "reason", "raw"), cursor)
