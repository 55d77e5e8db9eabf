"""Serve the app in this process (``insightwave serve``) until SIGTERM or Ctrl-C.

Plain HTTP is served by waitress. Waitress has no TLS, so with a certificate the same app is
served by cheroot (CherryPy's pure-Python, threaded WSGI server, TLS through the standard
``ssl`` module): one process like waitress, so the live hub and the scheduler started by
``serve`` stay single, and it runs wherever Python runs. Gunicorn can do TLS too, but it forks
worker processes (each would need its own hub and scheduler) and does not run on Windows.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import click
from flask import Flask
from waitress.server import create_server


def _exit(signum: int, _frame: FrameType | None) -> None:
    # SystemExit unwinds through the serve loop, so the finally blocks and atexit hooks run
    # (they stop the embedded PostgreSQL when this was its last user).
    sys.exit(128 + signum)


def run(
    server: Flask,
    host: str,
    port: int,
    threads: int = 8,
    certfile: Path | None = None,
    keyfile: Path | None = None,
) -> None:
    """Serve ``server`` (over HTTPS when given a certificate); return after SIGTERM or SIGINT."""
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    if certfile is not None and keyfile is not None:
        _run_https(server, host, port, threads, certfile, keyfile)
        return
    try:
        wsgi = waitress_server(server, host, port, threads)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    bound = wsgi.effective_port
    click.echo(f"Insight-Wave is running at http://{host}:{bound}/  (Ctrl-C stops it)")
    try:
        wsgi.run()  # returns once _exit's SystemExit reaches waitress's loop
    finally:
        click.echo("Stopping Insight-Wave.")
        wsgi.close()


def waitress_server(server: Flask, host: str, port: int, threads: int = 8) -> Any:
    """Create (bind, not run) the plain-HTTP server of ``server``.

    Waitress drops X-Forwarded-* headers by default; with proxies declared
    (``INSIGHTWAVE_PROXY_COUNT``) it passes them on to the app's ProxyFix, which trusts only
    as many as there are proxies.
    """
    proxies = server.config["INSIGHTWAVE"].proxy_count
    return create_server(
        server,
        host=host,
        port=port,
        threads=threads,
        ident="insightwave",
        clear_untrusted_proxy_headers=not proxies,
    )


def _run_https(
    server: Flask, host: str, port: int, threads: int, certfile: Path, keyfile: Path
) -> None:
    from cheroot.ssl.builtin import BuiltinSSLAdapter

    from app.https_server import PromptStopServer

    try:
        adapter = BuiltinSSLAdapter(str(certfile), str(keyfile))
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise click.ClickException(f"cannot use the certificate or key: {exc}") from exc
    wsgi = PromptStopServer((host, port), server, numthreads=threads, server_name="insightwave")
    wsgi.ssl_adapter = adapter
    try:
        wsgi.prepare()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    bound = wsgi.bind_addr[1]
    click.echo(f"Insight-Wave is running at https://{host}:{bound}/  (Ctrl-C stops it)")
    try:
        wsgi.serve()  # returns (raising SystemExit) once _exit runs
    finally:
        click.echo("Stopping Insight-Wave.")
        wsgi.stop()  # within seconds, even with idle or kept-alive connections open
