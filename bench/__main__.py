"""Run one benchmark: ``python -m bench ingest --rows N [--json]``, ``... live --clients N``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bench import floor, ingest, live, load, query

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]

# One entry per subcommand; `query` joins here with the same two functions.
COMMANDS: dict[str, tuple[str, Configure, Run]] = {
    "ingest": (ingest.DESCRIPTION, ingest.configure, ingest.main),
    "live": (live.DESCRIPTION, live.configure, live.main),
    "query": (query.DESCRIPTION, query.configure, query.main),
    "load": (load.DESCRIPTION, load.configure, load.main),
    "floor": (floor.DESCRIPTION, floor.configure, floor.main),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    runners: dict[str, Run] = {}
    for name, (description, configure, run) in COMMANDS.items():
        configure(subcommands.add_parser(name, help=description, description=description))
        runners[name] = run
    args = parser.parse_args(argv)
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
