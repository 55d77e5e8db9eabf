"""``insightwave doctor``: check the configuration, database, migrations, hub and data directory.

Each check returns one plain sentence; nothing is changed (no migration, no admin seeded).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from app.config import Config, ConfigError

MIN_SERVER_VERSION = 150000  # PostgreSQL 15
MIN_FREE_BYTES = 1024**3  # below 1 GiB free, an upload or the embedded database may not fit


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


def run_checks() -> Iterator[Check]:
    """Yield each check's result in order; later checks are skipped when they cannot run."""
    try:
        config = Config.from_env()
    except ConfigError as exc:
        yield Check("configuration", False, str(exc))
        return
    yield Check("configuration", True, "every setting is well-formed")
    yield check_data_dir(config.data_dir)
    with _database_url(config) as (url, how):
        database = check_database(url, how) if url else Check("database", False, how)
        yield database
        if database.ok and url:
            yield check_migrations(url)
    yield check_hub(config.hub_host, config.hub_port)


@contextlib.contextmanager
def _database_url(config: Config) -> Iterator[tuple[str | None, str]]:
    if config.database_url is not None:
        yield config.database_url, "DATABASE_URL"
        return
    from app.embedded_db import EmbeddedDatabaseError, start_embedded

    try:
        embedded = start_embedded(config.data_dir)
    except EmbeddedDatabaseError as exc:
        yield None, f"DATABASE_URL is unset and the embedded PostgreSQL cannot start: {exc}"
        return
    try:
        yield embedded.url, f"the embedded PostgreSQL in {config.data_dir}"
    finally:
        embedded.release()


def check_database(url: str, how: str) -> Check:
    from app.database import libpq_url

    try:
        with psycopg.connect(libpq_url(url), connect_timeout=3) as conn:
            number = conn.info.server_version
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__  # libpq's lines, joined
        return Check("database", False, f"cannot connect through {how}: {reason}")
    shown = version[0] if version else str(number)
    if number < MIN_SERVER_VERSION:
        return Check("database", False, f"PostgreSQL {shown} is too old: 15 or newer is needed")
    return Check("database", True, f"connected to PostgreSQL {shown} ({how})")


def check_migrations(url: str) -> Check:
    from app.migrate import current_revision, head_revision

    current, head = current_revision(url), head_revision()
    if current == head:
        return Check("migrations", True, f"the schema is at the newest revision ({head})")
    state = "has never been migrated" if current is None else f"is at {current}, not {head}"
    return Check("migrations", False, f"the database {state}: run insightwave db upgrade")


def check_hub(host: str, port: int) -> Check:
    """Can the hub listen on its address, or does a hub already answer there?"""
    if port == 0:
        return Check("hub", True, f"will listen on {host}, on any free port")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return Check("hub", False, f"cannot listen on {host}:{port}: {exc.strerror}")
        else:
            return Check("hub", True, f"{host}:{port} is free for the hub")
    clients = _running_hub_clients(host, port)
    if clients is None:
        return Check(
            "hub", False, f"{host}:{port} is taken by another program: set INSIGHTWAVE_HUB_PORT"
        )
    return Check("hub", True, f"a hub already answers on {host}:{port} ({clients} clients)")


def _running_hub_clients(host: str, port: int) -> int | None:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return int(json.load(connection.getresponse())["clients"])
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError):
        return None
    finally:
        connection.close()


def check_data_dir(path: Path) -> Check:
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check("data directory", False, f"cannot write in {path}: {exc.strerror}")
    free = shutil.disk_usage(path).free
    shown = f"{free / 1024**3:.1f} GiB free"
    if free < MIN_FREE_BYTES:
        return Check("data directory", False, f"{path} has only {shown}; free at least 1 GiB")
    return Check("data directory", True, f"{path} is writable, {shown}")
