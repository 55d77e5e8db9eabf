"""Scheduled ingest jobs: their definitions, and the runs each firing creates.

A job names a dataset, a source and a trigger (an interval in seconds or a cron expression).
The scheduler (etl.scheduler) fires it; a firing only records queued runs, which workers
(etl.worker) claim and execute.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from etl.audit import Actor, record_audit
from etl.datasets import DatasetError, check_dataset_name, create_dataset, get_dataset
from etl.pipeline import IngestOptions
from etl.runs import create_run
from etl.sources import check_url
from etl.types import Column, ColumnType

JOB_SOURCE_KINDS = ("file", "folder", "url", "demo")
TRIGGER_KINDS = ("interval", "cron")
SETTLE_SECONDS = 2.0  # a dropped file modified this recently may still be being written
DEMO_ROWS_MAX = 100_000
DEMO_COLUMNS = (
    Column("time", "time", ColumnType.TIMESTAMP, nullable=False),
    Column("sensor", "sensor", ColumnType.TEXT, nullable=False),
    Column("temperature", "temperature", ColumnType.FLOAT, nullable=False),
    Column("humidity", "humidity", ColumnType.FLOAT, nullable=False),
)


class JobError(ValueError):
    """A job definition was refused; the message is for the user."""


@dataclass(frozen=True)
class IngestJob:
    """A scheduled ingest job as stored."""

    id: int
    name: str
    dataset: str
    source_kind: str
    source: dict[str, Any]
    options: IngestOptions
    trigger_kind: str
    trigger_spec: str
    paused: bool

    @property
    def trigger(self) -> BaseTrigger:
        return make_trigger(self.trigger_kind, self.trigger_spec)


def make_trigger(trigger_kind: str, trigger_spec: str) -> BaseTrigger:
    """Build the APScheduler trigger for a job's trigger.

    :raises JobError: for an unknown kind, a bad interval or a bad cron expression.
    """
    if trigger_kind == "interval":
        return IntervalTrigger(seconds=interval_seconds(trigger_spec))
    if trigger_kind == "cron":
        try:
            return CronTrigger.from_crontab(trigger_spec)
        except ValueError as exc:
            raise JobError(
                f"cron expression {trigger_spec!r} is not valid ({exc}); "
                "use five fields: minute hour day month weekday, e.g. '*/15 * * * *'"
            ) from None
    raise JobError(f"unknown trigger {trigger_kind!r}: use 'interval' or 'cron'")


MAX_INTERVAL_SECONDS = 366 * 24 * 3600  # a year: a longer one is a cron job's work


def interval_seconds(spec: str) -> int:
    """Return an interval spec as whole seconds (1 to a year), else raise JobError."""
    text = spec.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_INTERVAL_SECONDS:
        raise JobError(
            f"interval {spec!r} is not a whole number of seconds of at least 1 "
            f"and at most {MAX_INTERVAL_SECONDS} (a year)"
        )
    return int(text)


def create_job(
    conn: psycopg.Connection[Any],
    name: str,
    dataset: str,
    source_kind: str,
    source: dict[str, Any],
    trigger_kind: str,
    trigger_spec: str,
    options: IngestOptions,
    owner_id: int | None,
    actor: Actor | None = None,
) -> int:
    """Check and record a job, audited as ``actor`` (None: the system); return its id.

    A demo job creates its dataset when new; other jobs load into an existing dataset.
    :raises JobError: saying what is wrong with the definition.
    """
    name, trigger_spec = _check_definition(name, trigger_kind, trigger_spec)
    checked = check_source(source_kind, source)
    job_options = dataclasses.replace(options, dataset=dataset, owner_id=owner_id)
    with conn.transaction():  # a demo dataset made here goes if the job is refused
        dataset_id, created = _dataset_id(conn, dataset, source_kind, owner_id)
        try:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO ingest_jobs (name, dataset_id, source_kind, source, options, "
                    "trigger_kind, trigger_spec, owner_id) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        name,
                        dataset_id,
                        source_kind,
                        Jsonb(checked),
                        Jsonb(job_options.to_json()),
                        trigger_kind,
                        trigger_spec,
                        owner_id,
                    ),
                ).fetchone()
        except psycopg.errors.UniqueViolation:
            raise JobError(f"dataset {dataset!r} already has a job called {name!r}") from None
        assert row is not None
        job_id = int(row[0])
        if created:
            record_audit(conn, "dataset.create", actor, dataset, {"job_id": job_id})
        details = {"job_id": job_id, "dataset": dataset, "source": source_kind}
        record_audit(conn, "job.create", actor, name, details)
    return job_id


def _check_definition(name: str, trigger_kind: str, trigger_spec: str) -> tuple[str, str]:
    name, trigger_spec = name.strip(), trigger_spec.strip()
    if not name or len(name) > 100:
        raise JobError("a job needs a name of 1 to 100 characters")
    if len(trigger_spec) > 100:
        raise JobError("a schedule is at most 100 characters long")
    make_trigger(trigger_kind, trigger_spec)
    return name, trigger_spec


def update_job(
    conn: psycopg.Connection[Any],
    job_id: int,
    name: str,
    source: dict[str, Any],
    trigger_kind: str,
    trigger_spec: str,
) -> bool:
    """Change a job's name, source settings (same kind of source) and schedule.

    The scheduling leader sees the changed schedule at its next sync and reschedules the
    job, so the next firing follows the new schedule. True if there is such a job.
    :raises JobError: saying what is wrong with the new definition.
    """
    name, trigger_spec = _check_definition(name, trigger_kind, trigger_spec)
    found = conn.execute("SELECT source_kind FROM ingest_jobs WHERE id = %s", (job_id,)).fetchone()
    if found is None:
        return False
    checked = check_source(found[0], source)
    try:
        with conn.transaction():
            row = conn.execute(
                "UPDATE ingest_jobs SET name = %s, source = %s, trigger_kind = %s, "
                "trigger_spec = %s, updated_at = now() WHERE id = %s RETURNING id",
                (name, Jsonb(checked), trigger_kind, trigger_spec, job_id),
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise JobError(f"the dataset already has a job called {name!r}") from None
    return row is not None


def check_source(source_kind: str, source: dict[str, Any]) -> dict[str, Any]:
    """Return the source as it will be stored, or raise JobError saying what is wrong."""
    if source_kind == "url":
        try:
            url = check_url(str(source.get("url", "")))
        except ValueError as exc:
            raise JobError(str(exc)) from None
        data_format = str(source.get("format", "csv"))
        if data_format not in {"csv", "json"}:
            raise JobError(f"format {data_format!r} is unknown: use 'csv' or 'json'")
        return {"url": url, "format": data_format}
    if source_kind == "demo":
        rows = source.get("rows", 20)
        if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= DEMO_ROWS_MAX:
            raise JobError(f"demo rows must be a whole number from 1 to {DEMO_ROWS_MAX}")
        return {"rows": rows}
    if source_kind in {"file", "folder"}:
        if not isinstance(source.get("path"), str) or not source["path"]:
            raise JobError(f"a {source_kind} source needs a 'path'")
        # Stored absolute: the worker that loads it may run in another directory.
        path = Path(source["path"]).expanduser().absolute()
        if source_kind == "folder" and not path.is_dir():
            raise JobError(f"{path} is not an existing directory")
        return {"path": str(path)}
    raise JobError(f"unknown source kind {source_kind!r}: use one of {', '.join(JOB_SOURCE_KINDS)}")


def _dataset_id(
    conn: psycopg.Connection[Any], dataset: str, source_kind: str, owner_id: int | None
) -> tuple[int, bool]:
    """The job's dataset id, and whether it was created here (a demo job's new dataset)."""
    created = False
    try:
        check_dataset_name(dataset)
        spec = get_dataset(conn, dataset)
        if spec is None and source_kind == "demo":
            spec = create_dataset(
                conn, dataset, DEMO_COLUMNS, time_column="time", owner_id=owner_id
            )
            created = True
    except DatasetError as exc:
        raise JobError(str(exc)) from None
    if spec is None:
        raise JobError(
            f"there is no dataset called {dataset!r}: load a first file into it "
            f"(insightwave ingest FILE --dataset {dataset}) before scheduling a job"
        )
    return spec.id, created


def get_job(conn: psycopg.Connection[Any], job_id: int) -> IngestJob | None:
    """Return the job with ``job_id``, or None."""
    jobs = _select_jobs(conn, job_id)
    return jobs[0] if jobs else None


def list_jobs(conn: psycopg.Connection[Any]) -> list[IngestJob]:
    """Return every job, oldest first."""
    return _select_jobs(conn, None)


def _select_jobs(conn: psycopg.Connection[Any], job_id: int | None) -> list[IngestJob]:
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            "SELECT j.id, j.name, d.name AS dataset, j.source_kind, j.source, j.options, "
            "j.trigger_kind, j.trigger_spec, j.paused "
            "FROM ingest_jobs AS j JOIN datasets AS d ON d.id = j.dataset_id "
            "WHERE %(id)s::bigint IS NULL OR j.id = %(id)s ORDER BY j.id",
            {"id": job_id},
        ).fetchall()
    return [
        IngestJob(**{**row, "options": IngestOptions.from_json(row["options"])}) for row in rows
    ]


def set_paused(conn: psycopg.Connection[Any], job_id: int, paused: bool) -> bool:
    """Pause or resume a job; True if there is such a job."""
    row = conn.execute(
        "UPDATE ingest_jobs SET paused = %s, updated_at = now() WHERE id = %s RETURNING id",
        (paused, job_id),
    ).fetchone()
    return row is not None


def delete_job(conn: psycopg.Connection[Any], job_id: int) -> bool:
    """Delete a job (its past runs stay); True if there was such a job."""
    row = conn.execute("DELETE FROM ingest_jobs WHERE id = %s RETURNING id", (job_id,)).fetchone()
    return row is not None


def enqueue_job_run(conn: psycopg.Connection[Any], job_id: int) -> list[int]:
    """Record the queued runs for one firing of a job and return their ids.

    A folder job gets one run per new CSV file in its folder; other jobs get one run, unless
    their last run is loading or waiting to retry. A deleted or paused job gets none.
    """
    job = get_job(conn, job_id)
    if job is None or job.paused:
        return []
    if job.source_kind == "folder":
        return _enqueue_new_files(conn, job)
    with conn.transaction():
        # A firing while the job's last run is loading or waiting to retry adds nothing (as
        # APScheduler coalesces missed firings), so a failing source does not pile up runs
        # retrying side by side. Queued runs, not yet tried, still count one per firing.
        # The job's row lock makes two firings at once (a tick and "Run now") agree.
        conn.execute("SELECT 1 FROM ingest_jobs WHERE id = %s FOR UPDATE", (job.id,))
        if unfinished_run(conn, job.id) is not None:
            return []
        return [create_run(conn, job.options, job.source_kind, job.source, job_id=job.id)]


def unfinished_run(conn: psycopg.Connection[Any], job_id: int) -> int | None:
    """The id of the job's run that is loading or waiting to retry, if any."""
    row = conn.execute(
        "SELECT id FROM ingest_runs WHERE job_id = %s AND status IN ('running', 'failed') "
        "ORDER BY id LIMIT 1",
        (job_id,),
    ).fetchone()
    return int(row[0]) if row else None


def _enqueue_new_files(conn: psycopg.Connection[Any], job: IngestJob) -> list[int]:
    run_ids = []
    for path in settled_csv_files(Path(job.source["path"])):
        try:
            digest = file_sha256(path)
        except OSError:
            continue  # removed or unreadable for now: looked at again next firing
        # Claiming the file and recording its run commit together, so a file is taken by
        # exactly one firing even when several processes scan the folder at once.
        with conn.transaction():
            claimed = conn.execute(
                "INSERT INTO ingested_files (job_id, sha256, file_name) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING sha256",
                (job.id, digest, path.name),
            ).fetchone()
            if claimed is None:
                continue
            run_id = create_run(conn, job.options, "file", {"path": str(path)}, job_id=job.id)
            conn.execute(
                "UPDATE ingested_files SET run_id = %s WHERE job_id = %s AND sha256 = %s",
                (run_id, job.id, digest),
            )
        run_ids.append(run_id)
    return run_ids


def settled_csv_files(folder: Path) -> list[Path]:
    """Return the folder's CSV files, by name, leaving out any that may still be written."""
    settled_before = time.time() - SETTLE_SECONDS
    try:
        candidates = sorted(folder.iterdir())
    except OSError:
        return []  # a folder gone for now (an unmounted share) is scanned again next firing
    files = []
    for path in candidates:
        try:
            info = path.stat()
        except OSError:
            continue  # removed while we looked
        if path.suffix.lower() == ".csv" and path.is_file() and info.st_mtime < settled_before:
            files.append(path)
    return files


def file_sha256(path: Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class RunRow:
    """One ingest run, as listed for an operator."""

    id: int
    dataset_name: str
    job_id: int | None
    source_kind: str
    status: str
    attempts: int
    max_attempts: int
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int
    error: str | None
    created_at: datetime
    next_attempt_at: datetime


def list_runs(
    conn: psycopg.Connection[Any], status: str | None = None, limit: int = 50
) -> list[RunRow]:
    """Return the newest runs (only those with ``status`` when given), newest first."""
    fields = ", ".join(field.name for field in dataclasses.fields(RunRow))
    with conn.cursor(row_factory=class_row(RunRow)) as cursor:
        return cursor.execute(
            f"SELECT {fields} FROM ingest_runs "  # noqa: S608 (field names are ours)
            "WHERE %(status)s::text IS NULL OR status = %(status)s "
            "ORDER BY id DESC LIMIT %(limit)s",
            {"status": status, "limit": limit},
        ).fetchall()


def run_exists(conn: psycopg.Connection[Any], run_id: int) -> bool:
    """True if there is a run with ``run_id``."""
    return conn.execute("SELECT 1 FROM ingest_runs WHERE id = %s", (run_id,)).fetchone() is not None
