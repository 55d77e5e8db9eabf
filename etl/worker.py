"""The ingest worker: claim due runs, execute them, and keep going whatever happens.

Each worker thread has its own autocommit connection. A run is claimed with
``FOR UPDATE SKIP LOCKED`` plus a session advisory lock (etl.runs), so any number of
workers on any number of hosts share the queue, and a run whose worker died is claimed
again once PostgreSQL has dropped that worker's connection.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import psycopg
from prometheus_client import Counter, Histogram

from etl.connection import connect
from etl.pipeline import IngestError
from etl.runs import claim_run, execute_run, unlock_run
from etl.scheduler import LeaderScheduler
from etl.sources import SourceError

log = logging.getLogger(__name__)

APPLICATION_NAME = "insightwave-worker"
RECONNECT_FIRST = 0.5  # seconds
RECONNECT_MAX = 30.0
RUNS_DONE = Counter(
    "insightwave_worker_runs",
    "Run attempts this process finished, by the run's status after them (or interrupted).",
    ["status"],
)
RUN_DURATION = Histogram(
    "insightwave_worker_run_duration_seconds",
    "Time one run attempt took in this process, from claim to outcome.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)


class Worker:
    """Claim and execute ingest runs in ``concurrency`` threads until stopped."""

    def __init__(self, url: str, concurrency: int = 1, poll: float = 1.0) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.url = url
        self.concurrency = concurrency
        self.poll = poll
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._loop, name=f"insightwave-worker-{n}", daemon=True)
            for n in range(1, self.concurrency + 1)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop claiming runs and wait for the runs in progress to finish."""
        self._stopping.set()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _loop(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        delay = RECONNECT_FIRST
        try:
            while not self._stopping.is_set():
                try:
                    if conn is None or conn.closed:
                        conn = connect(self.url, APPLICATION_NAME)
                    worked = work_once(conn)
                    delay = RECONNECT_FIRST
                except Exception as exc:  # psycopg.Error mostly: the database went away
                    log.warning("cannot work (%s); trying again in %.1f s", exc, delay)
                    _close_quietly(conn)
                    conn = None
                    self._stopping.wait(delay)
                    delay = min(delay * 2, RECONNECT_MAX)
                    continue
                if conn.broken:  # the run lost its connection: reconnect at once
                    _close_quietly(conn)
                    conn = None
                elif not worked:
                    self._stopping.wait(self.poll)
        finally:
            _close_quietly(conn)


def _close_quietly(conn: psycopg.Connection[Any] | None) -> None:
    if conn is not None:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def work_once(conn: psycopg.Connection[Any]) -> bool:
    """Claim and execute one due run on ``conn``; False when none was due.

    The run's failures are recorded on the run and logged, never raised.
    :raises psycopg.Error: only when claiming fails (the database is unreachable).
    """
    run_id = claim_run(conn)
    if run_id is None:
        return False
    started = time.monotonic()
    problem: Exception | None = None
    try:
        execute_run(conn, run_id)
    except (IngestError, SourceError, psycopg.Error) as exc:
        problem = exc  # execute_run has recorded it: dead, or failed to retry later
    except Exception as exc:  # a bug, recorded by execute_run as an internal error
        log.exception("run %d failed unexpectedly", run_id)
        problem = exc
    finally:
        with contextlib.suppress(psycopg.Error):  # a dead connection took its lock with it
            unlock_run(conn, run_id)
    _report_outcome(conn, run_id, time.monotonic() - started, problem)
    return True


def _report_outcome(
    conn: psycopg.Connection[Any], run_id: int, seconds: float, problem: Exception | None
) -> None:
    """Log one line for a run as recorded (status, attempt, counts, duration, error); count it."""
    try:
        row = conn.execute(
            "SELECT status, attempts, max_attempts, rows_read, rows_loaded, rows_rejected, "
            "rows_duplicate, error FROM ingest_runs WHERE id = %s",
            (run_id,),
        ).fetchone()
    except psycopg.Error:
        row = None
    RUNS_DONE.labels(str(row[0]) if row is not None else "interrupted").inc()
    RUN_DURATION.observe(seconds)
    if row is None:
        log.warning(
            "run %d interrupted after %.2f s (%s); it will be claimed again",
            run_id,
            seconds,
            problem,
        )
        return
    status, attempt, attempts, read, loaded, rejected, duplicate, error = row
    log.log(
        logging.DEBUG if status == "succeeded" else logging.WARNING,  # the jobs page lists them
        "run %d %s (attempt %d of %d) in %.2f s: read %d, loaded %d, rejected %d, duplicate %d%s",
        run_id, status, attempt, attempts, seconds, read, loaded, rejected, duplicate,
        f"; {error}" if error else "",
    )  # fmt: skip


@dataclass
class BackgroundWorker:
    """A scheduler and a worker running in background threads; ``stop`` ends both."""

    scheduler: LeaderScheduler
    worker: Worker

    def stop(self) -> None:
        """Stop scheduling, then let the runs in progress finish."""
        self.scheduler.stop()
        self.worker.stop()


def start_background(url: str, concurrency: int = 1, poll: float = 1.0) -> BackgroundWorker:
    """Start the scheduler (when elected leader) and a worker in background threads."""
    scheduler = LeaderScheduler(url)
    worker = Worker(url, concurrency, poll)
    scheduler.start()
    worker.start()
    return BackgroundWorker(scheduler, worker)


def run_worker(url: str, concurrency: int = 1, poll: float = 1.0) -> None:
    """Schedule (when elected leader) and execute runs until SIGTERM or SIGINT."""
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the runs in progress", signum)
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    handle = start_background(url, concurrency, poll)
    log.info("worker started: %d thread(s), polling every %.1f s", concurrency, poll)
    try:
        while not stopping.wait(1.0):
            pass
    finally:
        handle.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("worker stopped")
