"""The ingest worker against a real PostgreSQL: retries, crashes, lost connections, the CLI."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from app.worker_cli import register_worker_commands
from etl.connection import connect
from etl.pipeline import IngestOptions
from etl.runs import BACKOFF_FIRST, LOCK_CLASS, create_run, retry_run, run_now
from etl.worker import APPLICATION_NAME, Worker, work_once
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
BIG_ROWS = 100_000  # enough that a load outlasts the half second before a kill
WORKER_SCRIPT = """
import logging, sys
from etl.worker import run_worker
logging.basicConfig(level=logging.INFO)
run_worker(sys.argv[1], poll=0.1)
"""


@pytest.fixture
def conn(database_url):
    with connect(database_url, "test") as connection:
        yield connection


def write_series(path: Path, rows: int) -> Path:
    """Write ``rows`` distinct readings as a time,value CSV."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w") as handle:
        handle.write("time,value\n")
        for n in range(rows):
            handle.write(f"{(start + timedelta(seconds=n)).isoformat()},{n * 0.5}\n")
    return path


def run_state(conn, run_id):
    return conn.execute(
        "SELECT status, attempts, rows_read, rows_loaded, rows_duplicate, rows_rejected, "
        "next_attempt_at - now() FROM ingest_runs WHERE id = %s",
        (run_id,),
    ).fetchone()


def events_in(conn, dataset):
    return conn.execute(
        "SELECT count(*) FROM events e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = %s",
        (dataset,),
    ).fetchone()[0]


def file_run(conn, path: Path, dataset: str, max_attempts: int = 5) -> int:
    return create_run(
        conn, IngestOptions(dataset=dataset), "file", {"path": str(path)}, max_attempts=max_attempts
    )


def due_now(conn, run_id):
    conn.execute("UPDATE ingest_runs SET next_attempt_at = now() WHERE id = %s", (run_id,))


def test_a_missing_file_fails_with_backoff_then_loads_once_it_appears(conn, tmp_path):
    path = tmp_path / "late.csv"
    run_id = file_run(conn, path, "late")

    assert work_once(conn)
    status, attempts, *_, wait = run_state(conn, run_id)
    assert (status, attempts) == ("failed", 1)
    assert abs(wait - BACKOFF_FIRST) < timedelta(seconds=2)
    assert not work_once(conn), "a failed run waits for its backoff"

    write_series(path, 500)
    due_now(conn, run_id)
    assert work_once(conn)
    assert run_state(conn, run_id)[:6] == ("succeeded", 2, 500, 500, 0, 0)
    assert events_in(conn, "late") == 500


def test_a_run_that_keeps_failing_becomes_dead_and_retry_queues_it_again(conn, tmp_path):
    path = tmp_path / "never.csv"
    run_id = file_run(conn, path, "never", max_attempts=2)
    for _ in range(2):
        due_now(conn, run_id)
        assert work_once(conn)
    assert run_state(conn, run_id)[:2] == ("dead", 2)
    due_now(conn, run_id)
    assert not work_once(conn), "a dead run is never claimed"

    write_series(path, 10)
    retry_run(conn, run_id)
    assert work_once(conn)
    assert run_state(conn, run_id)[:4] == ("succeeded", 3, 10, 10)


def test_a_run_that_crashes_unexpectedly_is_recorded_and_the_worker_goes_on(conn, tmp_path):
    broken = create_run(conn, IngestOptions(dataset="broken"), "file", {})  # no path: a bug
    good = file_run(conn, write_series(tmp_path / "good.csv", 20), "good")

    assert work_once(conn) and work_once(conn)
    assert run_state(conn, broken)[:2] == ("failed", 1)
    assert run_state(conn, good)[:4] == ("succeeded", 1, 20, 20)


def test_a_foreground_run_that_crashes_is_recorded_as_an_internal_error_at_once(conn):
    with pytest.raises(KeyError):  # no path: a bug, as above, in an upload's own attempt
        run_now(conn, IngestOptions(dataset="broken"), "file", {})
    status, attempts, error = conn.execute(
        "SELECT status, attempts, error FROM ingest_runs"
    ).fetchone()
    assert (status, attempts, error) == ("dead", 1, "internal error: KeyError")


def test_a_worker_killed_mid_load_leaves_the_run_to_the_next_worker(conn, database_url, tmp_path):
    run_id = file_run(conn, write_series(tmp_path / "big.csv", BIG_ROWS), "big")
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, database_url],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: run_state(conn, run_id)[0] == "running", 15, "the run to start")
        time.sleep(0.5)
        assert run_state(conn, run_id)[0] == "running", "the load ended before the kill"
    finally:
        process.kill()
        process.wait()

    with Worker(database_url, poll=0.1):
        wait_for(lambda: run_state(conn, run_id)[0] == "succeeded", 20, "the second attempt")
    assert run_state(conn, run_id)[:5] == ("succeeded", 2, BIG_ROWS, BIG_ROWS, 0)
    assert events_in(conn, "big") == BIG_ROWS


def test_a_run_whose_connection_is_terminated_mid_load_loads_exactly_once_later(
    conn, database_url, tmp_path
):
    rows = BIG_ROWS // 2
    run_id = file_run(conn, write_series(tmp_path / "cut.csv", rows), "cut")
    with Worker(database_url, poll=0.1):
        wait_for(lambda: run_state(conn, run_id)[0] == "running", 10, "the run to start")
        time.sleep(0.2)
        terminated = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = %s AND objid = %s AND objsubid = 2",
            (LOCK_CLASS, run_id),
        ).fetchall()
        assert terminated == [(True,)], "the worker's connection held the run's lock"
        wait_for(lambda: run_state(conn, run_id)[0] == "succeeded", 20, "the second attempt")
    assert run_state(conn, run_id)[:5] == ("succeeded", 2, rows, rows, 0)
    assert events_in(conn, "cut") == rows


def test_a_worker_reconnects_after_losing_its_idle_connection(conn, database_url, tmp_path):
    with Worker(database_url, poll=0.1):
        wait_for(lambda: worker_backends(conn), 5, "the worker to connect")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        )
        run_id = file_run(conn, write_series(tmp_path / "after.csv", 30), "after")
        wait_for(lambda: run_state(conn, run_id)[0] == "succeeded", 10, "the run")


def worker_backends(conn):
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APPLICATION_NAME,)
    ).fetchone()[0]


def test_several_worker_threads_share_the_queue_and_load_each_run_once(
    conn, database_url, tmp_path
):
    run_ids = [
        file_run(conn, write_series(tmp_path / f"part{n}.csv", 200 + n), f"part{n}")
        for n in range(6)
    ]
    with Worker(database_url, concurrency=3, poll=0.1):
        wait_for(lambda: all(run_state(conn, r)[0] == "succeeded" for r in run_ids), 20, "all runs")
    for n, run_id in enumerate(run_ids):
        assert run_state(conn, run_id)[:4] == ("succeeded", 1, 200 + n, 200 + n)


def test_the_worker_command_stops_cleanly_on_sigterm(conn, cli_env):
    command = (
        "import click; from app.worker_cli import register_worker_commands; "
        "group = click.Group(); register_worker_commands(group); "
        "group(['worker', '--concurrency', '2', '--poll', '0.1'])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", command],
        cwd=ROOT,
        env={**os.environ, **cli_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: worker_backends(conn) == 2, 20, "both worker threads to connect")
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, errors
    assert "worker stopped" in errors
    wait_for(lambda: worker_backends(conn) == 0, 5, "the worker's connections to close")


@pytest.fixture
def cli(cli_env):
    """Invoke the worker commands on a group of their own, as ``insightwave`` would."""
    group = click.Group("insightwave")
    register_worker_commands(group)
    runner = CliRunner(env=cli_env)
    return lambda *args: runner.invoke(group, [str(arg) for arg in args])


def test_cli_lists_runs_retries_a_dead_one_and_prints_rejected_rows_safely(cli, conn, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "time,value\n2024-01-01T00:00:00Z,1\n=1+2,2,3\n2024-01-01T00:00:02Z,3\n@SUM(1),4,5\n"
    )
    loaded = file_run(conn, path, "mixed")
    assert work_once(conn)
    missing = file_run(conn, tmp_path / "absent.csv", "absent", max_attempts=1)
    assert work_once(conn)

    listing = cli("runs", "list").output
    assert "succeeded" in listing and "dead" in listing
    assert "dead" not in cli("runs", "list", "--status", "succeeded").output
    assert f"Run {missing} is queued again." in cli("runs", "retry", missing).output
    assert run_state(conn, missing)[0] == "queued"

    result = cli("runs", "rejected", loaded)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert rows[0] == ["line", "reason", "raw"]
    assert [row[0] for row in rows[1:]] == ["3", "5"]
    assert [row[2] for row in rows[1:]] == ["'=1+2,2,3", "'@SUM(1),4,5"]


def test_cli_refuses_to_retry_a_run_that_succeeded(cli, conn, tmp_path):
    run_id = file_run(conn, write_series(tmp_path / "ok.csv", 3), "ok")
    assert work_once(conn)
    result = cli("runs", "retry", run_id)
    assert result.exit_code == 1
    assert f"Run {run_id} is succeeded: only failed, dead or refused runs" in result.output
    assert "no run 999999" in cli("runs", "retry", 999999).output.lower()


def test_input_that_will_not_load_is_refused_at_once_and_retried_once_mended(cli, conn, tmp_path):
    file_run(conn, write_series(tmp_path / "first.csv", 3), "mended")
    assert work_once(conn)
    path = tmp_path / "other.csv"
    path.write_text("sensor,reading\nA,1\n")  # not the dataset's columns
    run_id = file_run(conn, path, "mended")
    assert work_once(conn)
    status, attempts, *_ = run_state(conn, run_id)
    assert (status, attempts) == ("refused", 1), "bad input is not worth four more attempts"
    error = conn.execute("SELECT error FROM ingest_runs WHERE id = %s", (run_id,)).fetchone()[0]
    assert error == "the data has a column 'sensor' that dataset 'mended' does not have"
    due_now(conn, run_id)
    assert not work_once(conn), "a refused run is not retried on its own"
    assert "refused" in cli("runs", "list", "--status", "refused").output

    write_series(path, 4)
    assert f"Run {run_id} is queued again." in cli("runs", "retry", run_id).output
    assert work_once(conn)
    assert run_state(conn, run_id)[:5] == ("succeeded", 2, 4, 1, 3)


def test_a_push_run_cannot_be_retried_because_its_rows_were_not_kept(cli, conn):
    (run_id,) = conn.execute(
        "INSERT INTO ingest_runs (dataset_name, source_kind, source, options, status, attempts,"
        " max_attempts) VALUES ('pushed', 'push', '{}', '{}', 'dead', 1, 1) RETURNING id"
    ).fetchone()
    result = cli("runs", "retry", run_id)
    assert result.exit_code == 1
    assert "was a push: its rows were not kept" in result.output
    assert run_state(conn, run_id)[0] == "dead"


def test_cli_creates_pauses_and_deletes_jobs_and_explains_a_bad_schedule(cli, conn):
    def create(name, *trigger):
        demo = ("--dataset", "sensors", "--source-kind", "demo", "--source", '{"rows": 5}')
        return cli("jobs", "create", name, *demo, *trigger)

    created = create("feed", "--every", 30)
    assert created.exit_code == 0, created.output
    assert created.output == "Created job 1 (feed): every 30 s.\n"
    assert "sensors" in cli("jobs", "list").output

    bad = create("nightly", "--cron", "61 * * * *")
    assert bad.exit_code == 1
    assert "cron expression '61 * * * *' is not valid" in bad.output
    both = create("x", "--cron", "* * * * *", "--every", 5)
    assert both.exit_code == 2
    assert "exactly one of --every" in both.output

    assert cli("jobs", "pause", 1).output == "Job 1 is paused.\n"
    assert " paused " in cli("jobs", "list").output
    assert cli("jobs", "resume", 1).output == "Job 1 is active.\n"
    assert cli("jobs", "delete", 1).output == "Deleted job 1.\n"
    missing = cli("jobs", "pause", 1)
    assert missing.exit_code == 1
    assert "there is no job 1" in missing.output


def test_background_handle_runs_jobs_and_stops(conn, database_url, tmp_path):
    from etl.worker import start_background

    handle = start_background(database_url, poll=0.1)
    try:
        run_id = file_run(conn, write_series(tmp_path / "bg.csv", 5), "bg")
        wait_for(lambda: run_state(conn, run_id)[0] == "succeeded", 10, "the run")
    finally:
        handle.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("insightwave-")]
