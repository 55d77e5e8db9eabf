"""The embedded PostgreSQL: atomic first start, joining a running server, clean stop."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import psycopg
import pytest

from app.database import libpq_url
from app.embedded_db import PGDATA_DIRNAME, start_embedded

pytestmark = pytest.mark.slow

HOLDER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from app.embedded_db import start_embedded
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    handle = start_embedded(Path(sys.argv[1]))
    print(handle.pid, flush=True)
    try:
        time.sleep(120)
    finally:
        handle.release()
    """
)


@pytest.fixture
def scratch():
    """A directory PostgreSQL's system user can enter (pytest's tmp_path root is 0700)."""
    directory = Path(tempfile.mkdtemp(prefix="iw-embedded-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def postgres_running_on(pgdata):
    return [
        process
        for process in psutil.process_iter(["name", "cmdline"])
        if process.info["name"] == "postgres"
        and str(pgdata) in " ".join(process.info["cmdline"] or [])
    ]


def test_debris_of_an_interrupted_first_start_is_replaced(scratch):
    # What a crash during initdb leaves: a staging directory and, from an older layout, a
    # data directory without PG_VERSION.
    (scratch / f"{PGDATA_DIRNAME}.initialising" / "base").mkdir(parents=True)
    (scratch / PGDATA_DIRNAME).mkdir()
    (scratch / PGDATA_DIRNAME / "postgresql.conf").write_text("garbage")
    handle = start_embedded(scratch)
    try:
        with psycopg.connect(libpq_url(handle.url)) as connection:
            assert connection.execute("SELECT current_database()").fetchone() == ("insightwave",)
        assert (scratch / PGDATA_DIRNAME / "PG_VERSION").exists()
        assert not (scratch / f"{PGDATA_DIRNAME}.initialising").exists()
    finally:
        handle.release()
    assert not postgres_running_on(scratch / PGDATA_DIRNAME)
    assert not (scratch / PGDATA_DIRNAME / "postmaster.pid").exists()


def test_a_second_process_joins_the_running_server_and_the_last_one_stops_it(scratch):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(scratch)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        holder_pid = int(holder.stdout.readline())
        handle = start_embedded(scratch)
        assert handle.pid == holder_pid
        handle.release()
        # The holder still uses it, so it keeps running.
        assert postgres_running_on(scratch / PGDATA_DIRNAME)
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) == 0
        assert not postgres_running_on(scratch / PGDATA_DIRNAME)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
