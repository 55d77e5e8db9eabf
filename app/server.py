"""Serve the app in this process (``insightwave serve``) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
import sys
from types import FrameType

import click
from flask import Flask
from waitress.server import create_server


def _exit(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through the serve loop, so the finally blocks and atexit hooks run
    # (they stop the embedded PostgreSQL when this was its last user).
    sys.exit(128 + signum)


def run(server: Flask, host: str, port: int, threads: int = 8) -> None:
    """Serve ``server`` with waitress; return after SIGTERM or SIGINT."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    try:
        wsgi = create_server(server, host=host, port=port, threads=threads, ident="insightwave")
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    bound = wsgi.effective_port  # type: ignore[union-attr]
    click.echo(f"Insight-Wave is running at http://{host}:{bound}/  (Ctrl-C stops it)")
    try:
        wsgi.run()  # returns once _exit's SystemExit reaches waitress's loop
    finally:
        click.echo("Stopping Insight-Wave.")
        wsgi.close()
