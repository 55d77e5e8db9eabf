"""What every benchmark's command line shares: ``--json``, ``--database-url``, the output."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any


def add_output_and_server(parser: argparse.ArgumentParser) -> None:
    """Declare ``--json`` and ``--database-url``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--database-url",
        help="server to benchmark on, in a scratch database (default: TEST_DATABASE_URL or "
        "DATABASE_URL, else a temporary embedded PostgreSQL)",
    )


def server_url(args: argparse.Namespace) -> str | None:
    """The server chosen on the command line or in the environment; None: embedded."""
    url: str | None = (
        args.database_url
        or os.environ.get("TEST_DATABASE_URL")
        or os.environ.get("DATABASE_URL")
        or None
    )
    return url


def progress_printer(name: str, args: argparse.Namespace) -> Callable[[str], None]:
    """Progress lines on stderr, or nothing when the output is JSON."""

    def progress(text: str) -> None:
        if not args.json:
            print(f"bench {name}: {text}", file=sys.stderr, flush=True)

    return progress


def print_result(
    result: dict[str, Any], args: argparse.Namespace, table: Callable[[dict[str, Any]], str]
) -> None:
    """One JSON object with ``--json``, else the table for a person."""
    import orjson

    print(orjson.dumps(result).decode() if args.json else table(result))


def positive(kind: type[int] | type[float]) -> Any:
    """An argparse type: a number of ``kind`` above 0."""

    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
        return value

    return parse


def machine() -> dict[str, Any]:
    """Where and when a benchmark ran: Python, CPUs, memory and the date (UTC)."""
    import platform
    from datetime import UTC, datetime

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "python_version": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def pandas_missing() -> bool:
    """Say on stderr that the to_sql baseline needs pandas, when it is not installed."""
    try:
        import pandas  # noqa: F401
    except ImportError:
        print("the to_sql baseline needs pandas: pip install -e '.[bench]'", file=sys.stderr)
        return True
    return False
