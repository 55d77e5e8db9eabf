"""Scheduled jobs: one leader fires each tick once, failover, job changes, drop folders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from etl.connection import connect
from etl.jobs import JobError, create_job, delete_job, enqueue_job_run, set_paused
from etl.pipeline import IngestOptions
from etl.runs import create_run
from etl.scheduler import LEADER_LOCK, LeaderScheduler
from etl.worker import work_once
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[1]
# A scheduler process that contends for leadership until its standard input closes.
SCHEDULER_SCRIPT = """
import sys
from etl.scheduler import LeaderScheduler
with LeaderScheduler(sys.argv[1], sync_interval=0.2, retry_interval=0.2):
    sys.stdin.read()
"""
SETTLED = time.time() - 60  # an mtime old enough for a dropped file to count as complete


@pytest.fixture
def conn(database_url):
    with connect(database_url, "test") as connection:
        yield connection


@pytest.fixture
def start_scheduler(database_url, tmp_path):
    """Start scheduler processes on the test database; stop any left at the end."""
    processes: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        log = (tmp_path / f"scheduler-{len(processes)}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-c", SCHEDULER_SCRIPT, database_url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=log,
            text=True,
        )
        log.close()
        processes.append(process)
        return process

    yield start
    for process in processes:
        stop(process)


def stop(process: subprocess.Popen[str]) -> int:
    """Close the process's standard input (its signal to stop) and wait for it."""
    if process.poll() is None:
        process.stdin.close()
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()
    if process.stdin and not process.stdin.closed:
        process.stdin.close()
    return process.returncode


def demo_job(conn, every: int = 1, name: str = "feed") -> int:
    return create_job(
        conn, name, "sensors", "demo", {"rows": 5}, "interval", str(every),
        IngestOptions(dataset="sensors"), None,
    )  # fmt: skip


def run_times(conn, job_id):
    rows = conn.execute(
        "SELECT created_at FROM ingest_runs WHERE job_id = %s ORDER BY created_at", (job_id,)
    ).fetchall()
    return [row[0] for row in rows]


def leader_pid(conn) -> int | None:
    """The OS pid of the process holding the scheduling lock, from its application name."""
    row = conn.execute(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        LEADER_LOCK,
    ).fetchone()
    return int(row[0].rsplit(":", 1)[1]) if row else None


def assert_never_doubled(times):
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap > timedelta(seconds=0.5) for gap in gaps), gaps


def test_two_workers_fire_a_scheduled_job_once_per_tick(conn, start_scheduler):
    job_id = demo_job(conn)
    first, second = start_scheduler(), start_scheduler()
    wait_for(lambda: run_times(conn, job_id), 20, "the first firing")
    time.sleep(3.5)
    assert first.poll() is None and second.poll() is None, "both contended to the end"
    assert leader_pid(conn) in {first.pid, second.pid}
    assert (stop(first), stop(second)) == (0, 0)

    times = run_times(conn, job_id)
    assert len(times) in {4, 5}, times  # ticks at +0, +1, +2, +3 (and +4 if stopping lagged)
    assert_never_doubled(times)


def test_when_the_leader_dies_another_process_takes_over_and_keeps_firing(conn, start_scheduler):
    job_id = demo_job(conn)
    processes = {process.pid: process for process in (start_scheduler(), start_scheduler())}
    wait_for(lambda: len(run_times(conn, job_id)) >= 2, 20, "two firings")
    leader = processes.pop(wait_for(lambda: leader_pid(conn), 5, "a leader"))
    leader.send_signal(signal.SIGKILL)
    leader.wait()
    fired_before = len(run_times(conn, job_id))

    (survivor,) = processes.values()
    assert wait_for(lambda: leader_pid(conn), 5, "a new leader") == survivor.pid
    wait_for(lambda: len(run_times(conn, job_id)) >= fired_before + 2, 5, "firings after")
    assert stop(survivor) == 0
    assert_never_doubled(run_times(conn, job_id))


def test_the_leader_follows_paused_changed_and_deleted_jobs(conn, database_url):
    job_id = demo_job(conn, every=3600)
    with LeaderScheduler(database_url, sync_interval=0.1, retry_interval=0.1) as scheduler:
        wait_for(lambda: scheduled(conn), 5, "the job to be scheduled")
        assert scheduler.is_leader
        assert not run_times(conn, job_id), "an hourly job does not fire at once"

        conn.execute("UPDATE ingest_jobs SET trigger_spec = '1' WHERE id = %s", (job_id,))
        wait_for(lambda: run_times(conn, job_id), 5, "the rescheduled job to fire")

        set_paused(conn, job_id, True)
        wait_for(lambda: scheduled(conn) == [(f"ingest-{job_id}", None)], 5, "the pause")
        fired = len(run_times(conn, job_id))
        time.sleep(1.5)
        assert len(run_times(conn, job_id)) == fired, "a paused job does not fire"

        set_paused(conn, job_id, False)
        wait_for(lambda: len(run_times(conn, job_id)) > fired, 5, "the resumed job to fire")

        delete_job(conn, job_id)
        wait_for(lambda: scheduled(conn) == [], 5, "the job's removal")
    assert not scheduler.is_leader
    # The server drops the closed lock connection's backend a moment later.
    wait_for(lambda: leader_pid(conn) is None, 5, "stopping to hand leadership back")


def scheduled(conn):
    return conn.execute("SELECT id, next_run_time FROM apscheduler_jobs ORDER BY id").fetchall()


def test_two_in_process_schedulers_elect_one_leader(conn, database_url):
    with (
        LeaderScheduler(database_url, sync_interval=0.1, retry_interval=0.1) as one,
        LeaderScheduler(database_url, sync_interval=0.1, retry_interval=0.1) as two,
    ):
        wait_for(lambda: one.is_leader or two.is_leader, 5, "a leader")
        time.sleep(0.3)
        assert one.is_leader != two.is_leader
        leader, follower = (one, two) if one.is_leader else (two, one)
        leader.stop()
        wait_for(lambda: follower.is_leader, 5, "the follower to take over")


def drop(folder: Path, name: str, rows: int, *, settled: bool = True) -> Path:
    path = folder / name
    lines = [f"2024-02-01T00:{n // 60:02d}:{n % 60:02d}Z,{name},{n}" for n in range(rows)]
    path.write_text("time,source,value\n" + "\n".join(lines) + "\n")
    if settled:
        os.utime(path, (SETTLED, SETTLED))
    return path


def folder_job(conn, folder: Path) -> int:
    seed = drop(folder.parent, "seed.csv", 1)  # the job loads into an existing dataset
    create_run(conn, IngestOptions(dataset="drops"), "file", {"path": str(seed)})
    assert work_once(conn)
    return create_job(
        conn, "drops", "drops", "folder", {"path": str(folder)}, "interval", "60",
        IngestOptions(dataset="drops"), None,
    )  # fmt: skip


def test_a_drop_folder_loads_each_file_exactly_once(conn, database_url, tmp_path):
    folder = tmp_path / "inbox"
    folder.mkdir()
    job_id = folder_job(conn, folder)
    drop(folder, "a.csv", 10)
    drop(folder, "b.csv", 20)
    drop(folder, "c.csv", 30, settled=False)  # still being written
    (folder / "notes.txt").write_text("not data")

    created = fire_concurrently(database_url, job_id, times=4)
    assert len(created) == 2, "two settled files, two runs, however many firings"
    assert enqueue_job_run(conn, job_id) == []

    os.utime(folder / "c.csv", (SETTLED, SETTLED))
    copy = folder / "a-copy.csv"
    copy.write_bytes((folder / "a.csv").read_bytes())  # the same bytes: already ingested
    os.utime(copy, (SETTLED, SETTLED))
    assert len(enqueue_job_run(conn, job_id)) == 1
    assert enqueue_job_run(conn, job_id) == []

    while work_once(conn):
        pass
    loaded = conn.execute(
        "SELECT f.file_name, r.status, r.rows_loaded FROM ingested_files f "
        "JOIN ingest_runs r ON r.id = f.run_id ORDER BY f.file_name"
    ).fetchall()
    assert loaded == [
        ("a.csv", "succeeded", 10),
        ("b.csv", "succeeded", 20),
        ("c.csv", "succeeded", 30),
    ]


def fire_concurrently(database_url, job_id, times):
    """Fire a job from several connections at once; return every run created."""
    created: list[int] = []
    start = threading.Barrier(times)

    def fire() -> None:
        with connect(database_url, "test") as conn:
            start.wait()
            created.extend(enqueue_job_run(conn, job_id))

    threads = [threading.Thread(target=fire) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return created


@pytest.mark.parametrize(
    ("kind", "source", "trigger", "spec", "message"),
    [
        ("demo", {}, "interval", "0", "interval '0' is not a whole number of seconds"),
        ("demo", {}, "interval", "1.5", "interval '1.5' is not a whole number"),
        ("demo", {}, "cron", "every minute", "cron expression 'every minute' is not valid"),
        ("demo", {}, "cron", "99 * * * *", "cron expression '99 * * * *' is not valid"),
        ("demo", {}, "hourly", "1", "unknown trigger 'hourly'"),
        ("url", {"url": "ftp://example.com/x.csv"}, "interval", "60", "is not an http://"),
        ("folder", {"path": "/no/such/folder"}, "interval", "60", "is not an existing directory"),
        ("file", {"path": "/tmp/x.csv"}, "interval", "60", "there is no dataset called"),
        ("demo", {"rows": 0}, "interval", "60", "demo rows must be"),
        ("ftp", {}, "interval", "60", "unknown source kind 'ftp'"),
    ],
)
def test_create_job_refuses_bad_definitions(conn, kind, source, trigger, spec, message):
    with pytest.raises(JobError, match=message.replace("*", r"\*").replace(".", r"\.")):
        create_job(conn, "bad", "sensors", kind, source, trigger, spec, IngestOptions("x"), None)
    assert conn.execute("SELECT count(*) FROM ingest_jobs").fetchone()[0] == 0


def test_a_demo_job_creates_its_dataset_and_its_runs_load_demo_rows(conn):
    job_id = demo_job(conn)
    (run_id,) = enqueue_job_run(conn, job_id)
    assert work_once(conn)
    status, loaded = conn.execute(
        "SELECT status, rows_loaded FROM ingest_runs WHERE id = %s", (run_id,)
    ).fetchone()
    assert (status, loaded) == ("succeeded", 5)
    with pytest.raises(JobError, match="already has a job called 'feed'"):
        demo_job(conn)


def test_a_failing_job_has_one_run_retrying_at_a_time(conn, database_url, tmp_path):
    seed = drop(tmp_path, "seed.csv", 1)  # a file job loads into an existing dataset
    create_run(conn, IngestOptions(dataset="late"), "file", {"path": str(seed)})
    assert work_once(conn)
    source = tmp_path / "later.csv"  # not there yet: every attempt fails and retries
    job_id = create_job(
        conn, "late", "late", "file", {"path": str(source)}, "interval", "10",
        IngestOptions(dataset="late"), None,
    )  # fmt: skip
    (first,) = enqueue_job_run(conn, job_id)
    assert work_once(conn)
    status = "SELECT status FROM ingest_runs WHERE id = %s"
    assert conn.execute(status, (first,)).fetchone()[0] == "failed"  # waits to retry

    assert fire_concurrently(database_url, job_id, times=3) == [], "no second run beside it"
    conn.execute("UPDATE ingest_runs SET next_attempt_at = now() WHERE id = %s", (first,))
    drop(tmp_path, "later.csv", 3)
    assert work_once(conn)
    assert conn.execute(status, (first,)).fetchone()[0] == "succeeded"
    assert len(enqueue_job_run(conn, job_id)) == 1, "its run ended: the job fires again"
