"""The ingest-job scheduler: APScheduler 3 run by one elected leader among the workers.

APScheduler 3 cannot share a job store between schedulers: two running schedulers would
fire every job twice. So every worker process builds a ``LeaderScheduler``, and only the
one holding a session advisory lock runs APScheduler. The lock lives on a dedicated open
connection, so PostgreSQL releases it the moment the leader's process or connection dies;
the others try to take it every few seconds. The leader mirrors ``ingest_jobs`` into
APScheduler's job store (table ``apscheduler_jobs``, made by the migrations), and each
firing only records queued runs for the workers to claim.

Only worker roles start it (``insightwave worker``, and ``insightwave serve`` through
etl.worker.start_background); importing this module starts nothing, and the web processes
(gunicorn workers) never build one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from types import TracebackType
from typing import Any

import psycopg
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import undefined
from sqlalchemy import Engine, create_engine

from etl.connection import connect
from etl.jobs import IngestJob, JobError, enqueue_job_run, list_jobs
from etl.retention import purge_expired

log = logging.getLogger(__name__)

LEADER_LOCK = (7302, 0)  # advisory lock key (class, object) held by the scheduling leader
JOB_PREFIX = "ingest-"
MISFIRE_GRACE_SECONDS = 60
PURGE_EVERY_SECONDS = 300  # how often the leader drops events past their retention

# What fire() needs, set by this process's LeaderScheduler. APScheduler pickles each job
# (function reference and arguments) into apscheduler_jobs, so the database URL (it may hold
# a password) is kept here rather than in the job's arguments; the backend pid of the lock
# connection lets fire() check that this process still leads before recording anything.
_database_url: str | None = None
_leader_backend_pid: int | None = None


def fire(job_id: int) -> None:
    """Record the runs for one firing of ingest job ``job_id`` (called by APScheduler)."""
    url, leader_pid = _database_url, _leader_backend_pid
    if url is None or leader_pid is None:
        log.warning("job %d not fired: this process is not the scheduling leader", job_id)
        return
    try:
        with connect(url, "insightwave-scheduler") as conn:
            # A leader cut off from the database learns it only at its next sync; by then
            # another process may lead, and this firing would be a second one.
            if not _holds_leader_lock(conn, leader_pid):
                log.warning("job %d not fired: this process no longer leads", job_id)
                return
            run_ids = enqueue_job_run(conn, job_id)
    except psycopg.Error as exc:
        log.warning("job %d not fired: the database is unreachable: %s", job_id, exc)
        return
    # Every firing is a run on the jobs page and in /metrics; the log keeps to what needs eyes.
    log.debug("job %d fired: runs %s", job_id, run_ids or "none (nothing new)")


def _set_leader_backend(backend_pid: int | None) -> None:
    global _leader_backend_pid
    _leader_backend_pid = backend_pid


def _holds_leader_lock(conn: psycopg.Connection[Any], backend_pid: int) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid = %s AND objid = %s AND objsubid = 2 AND pid = %s)",
        (*LEADER_LOCK, backend_pid),
    ).fetchone()
    return bool(row and row[0])


class LeaderScheduler:
    """Run the job scheduler in this process while it is the elected leader."""

    def __init__(
        self, url: str, *, sync_interval: float = 5.0, retry_interval: float = 5.0
    ) -> None:
        self.url = url
        self.sync_interval = sync_interval
        self.retry_interval = retry_interval
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._engine: Engine | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_purge = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._scheduler is not None

    def start(self) -> None:
        """Start contending for leadership in a background thread."""
        global _database_url
        _database_url = self.url
        self._stopping.clear()
        self._thread = threading.Thread(target=self._lead, name="insightwave-leader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling and hand leadership over (it is released with the connection)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> LeaderScheduler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _lead(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    if self.is_leader:
                        self._sync_or_step_down()
                    else:
                        self._try_to_lead()
                except Exception:
                    log.exception("scheduling failed; standing down and trying again")
                    self._step_down()
                self._stopping.wait(self.sync_interval if self.is_leader else self.retry_interval)
        finally:
            self._step_down()

    def _try_to_lead(self) -> None:
        try:
            if self._lock_conn is None or self._lock_conn.closed:
                self._lock_conn = connect(self.url, f"insightwave-scheduler:{os.getpid()}")
            row = self._lock_conn.execute(
                "SELECT pg_try_advisory_lock(%s, %s)", LEADER_LOCK
            ).fetchone()
        except psycopg.Error as exc:
            log.warning("cannot reach the database to contend for leadership: %s", exc)
            self._close_lock_connection()
            return
        if row and row[0]:
            log.info("this process is now the scheduling leader")
            self._scheduler = self._new_scheduler()
            _set_leader_backend(self._lock_conn.info.backend_pid)
            self._scheduler.start()
            self._sync_or_step_down()

    def _new_scheduler(self) -> BackgroundScheduler:
        self._engine = create_engine(
            self.url, pool_pre_ping=True, connect_args={"connect_timeout": 5}
        )
        store = SQLAlchemyJobStore(engine=self._engine, tablename="apscheduler_jobs")
        return BackgroundScheduler(
            jobstores={"default": store},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": MISFIRE_GRACE_SECONDS,
            },
        )

    def _sync_or_step_down(self) -> None:
        assert self._lock_conn is not None and self._scheduler is not None
        try:
            jobs = list_jobs(self._lock_conn)
        except psycopg.Error as exc:
            # The lock went with the connection: someone else may be leading already.
            log.warning("lost the database connection holding leadership: %s", exc)
            self._step_down()
            return
        try:
            sync_jobs(self._scheduler, jobs)
        except Exception:
            log.exception("could not bring the schedule up to date; trying again shortly")
        if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = time.monotonic()
            try:
                if deleted := purge_expired(self._lock_conn):
                    log.info("retention: deleted %d expired events", deleted)
            except psycopg.Error as exc:
                log.warning("retention purge failed: %s", exc)

    def _step_down(self) -> None:
        # The scheduler stops before the lock is let go, so two never fire at once.
        if self._scheduler is not None:
            with contextlib.suppress(Exception):
                # Paused first, so its loop cannot hand a due job to a shut-down executor
                # (which would log an error and skip that firing).
                self._scheduler.pause()
                self._scheduler.shutdown(wait=True)
            self._scheduler = None
            _set_leader_backend(None)
            log.info("this process is no longer the scheduling leader")
        if self._engine is not None:
            # Again after shutdown: APScheduler's loop may query once more after its own
            # dispose, which would leave a connection open.
            self._engine.dispose()
            self._engine = None
        self._close_lock_connection()

    def _close_lock_connection(self) -> None:
        if self._lock_conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._lock_conn.close()
            self._lock_conn = None


def sync_jobs(scheduler: BackgroundScheduler, jobs: list[IngestJob]) -> None:
    """Make the scheduler's jobs match ``jobs``: add, reschedule, pause, resume, remove."""
    wanted = {f"{JOB_PREFIX}{job.id}": job for job in jobs}
    for scheduled in scheduler.get_jobs():
        if scheduled.id.startswith(JOB_PREFIX) and scheduled.id not in wanted:
            with contextlib.suppress(JobLookupError):
                scheduler.remove_job(scheduled.id)
    current: dict[str, Job] = {job.id: job for job in scheduler.get_jobs()}
    for job_key, job in wanted.items():
        try:
            _sync_job(scheduler, job_key, job, current.get(job_key))
        except JobError as exc:
            log.warning("ingest job %d cannot be scheduled: %s", job.id, exc)


def _sync_job(
    scheduler: BackgroundScheduler, job_key: str, job: IngestJob, scheduled: Job | None
) -> None:
    # The job's name records its trigger, to see when the definition changed.
    name = f"{job.trigger_kind} {job.trigger_spec}"
    if scheduled is None:
        scheduler.add_job(
            "etl.scheduler:fire",
            trigger=job.trigger,
            args=(job.id,),
            id=job_key,
            name=name,
            replace_existing=True,
            next_run_time=None if job.paused else undefined,
        )
        return
    if scheduled.name != name:
        scheduler.modify_job(job_key, name=name)
        scheduler.reschedule_job(job_key, trigger=job.trigger)
        scheduled = scheduler.get_job(job_key)
    paused = scheduled is not None and scheduled.next_run_time is None
    if job.paused and not paused:
        scheduler.pause_job(job_key)
    elif paused and not job.paused:
        scheduler.resume_job(job_key)
