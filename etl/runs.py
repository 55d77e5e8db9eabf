"""Ingest runs: recorded, claimed by one worker at a time, retried with backoff, then dead.

A run whose input is refused (a broken header, a file that does not fit its dataset) is
marked refused at once: retrying the same input cannot help.

A run executes in one transaction, so a crash or a lost database connection leaves nothing
half-loaded; the run stays claimable and the next attempt loads it all (the dedupe key makes
a repeat harmless). The worker running a run holds a session advisory lock on it, which
PostgreSQL releases when that worker's connection goes away.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import psycopg
from prometheus_client import Counter
from psycopg.types.json import Jsonb

from etl.audit import Actor, record_audit
from etl.pipeline import IngestError, IngestOptions, IngestSummary, ingest_csv, ingest_records
from etl.sources import SourceError, open_source

LOCK_CLASS = 7301  # advisory lock namespace for runs: (LOCK_CLASS, run id)
BACKOFF_FIRST = timedelta(seconds=15)
BACKOFF_MAX = timedelta(hours=1)
INGEST_ROWS = Counter(
    "insightwave_ingest_rows",
    "Rows of ingest runs committed in this process, by source and outcome.",
    ["source", "outcome"],
)


def create_run(
    conn: psycopg.Connection[Any],
    options: IngestOptions,
    source_kind: str,
    source: dict[str, Any],
    *,
    created_by: int | None = None,
    job_id: int | None = None,
    max_attempts: int = 5,
) -> int:
    """Record a queued run and return its id."""
    row = conn.execute(
        "INSERT INTO ingest_runs (dataset_name, job_id, source_kind, source, options, "
        "max_attempts, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            options.dataset,
            job_id,
            source_kind,
            Jsonb(source),
            Jsonb(options.to_json()),
            max_attempts,
            created_by,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def run_now(
    conn: psycopg.Connection[Any],
    options: IngestOptions,
    source_kind: str,
    source: dict[str, Any],
    *,
    created_by: int | None = None,
    records: Sequence[Any] | None = None,
    progress: Callable[[int], None] | None = None,
    actor: Actor | None = None,
) -> IngestSummary:
    """Record a one-attempt run and execute it in this process (someone is waiting for it).

    The run is locked before it is committed, so no worker can claim it first; its id is
    in the summary. ``actor`` is who asked, for the audit log. ``conn`` must be in
    autocommit mode. Raises what ``execute_run`` raises.
    """
    with conn.transaction():
        run_id = create_run(
            conn, options, source_kind, source, created_by=created_by, max_attempts=1
        )
        try_lock_run(conn, run_id)
    try:
        return execute_run(conn, run_id, progress, records, actor)
    finally:
        # A dead connection took its lock with it; raising here would hide execute_run's error.
        with contextlib.suppress(psycopg.Error):
            unlock_run(conn, run_id)


def claim_run(conn: psycopg.Connection[Any]) -> int | None:
    """Lock the next due run for this connection and return its id, or None.

    Due: queued or failed with its retry time passed, or running with no worker holding it
    (its worker died). An orphaned run that has used up its attempts is marked dead instead,
    so an input that kills its worker every time is not retried forever. ``conn`` must be in
    autocommit mode.
    """
    with conn.transaction():
        candidates = conn.execute(
            "SELECT id, status = 'running' AND attempts >= max_attempts FROM ingest_runs "
            "WHERE (status IN ('queued', 'failed') AND next_attempt_at <= now()) "
            "   OR status = 'running' "
            "ORDER BY next_attempt_at, id LIMIT 20 FOR UPDATE SKIP LOCKED"
        ).fetchall()
        for run_id, exhausted in candidates:
            if not try_lock_run(conn, run_id):
                continue
            if not exhausted:
                return int(run_id)
            conn.execute(
                "UPDATE ingest_runs SET status = 'dead', finished_at = now(), "
                "error = coalesce(error, 'the worker stopped during every attempt') WHERE id = %s",
                (run_id,),
            )
            unlock_run(conn, run_id)
    return None


def try_lock_run(conn: psycopg.Connection[Any], run_id: int) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_CLASS, run_id)).fetchone()
    return bool(row and row[0])


def unlock_run(conn: psycopg.Connection[Any], run_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_CLASS, run_id))


def execute_run(
    conn: psycopg.Connection[Any],
    run_id: int,
    progress: Callable[[int], None] | None = None,
    records: Sequence[Any] | None = None,
    actor: Actor | None = None,
) -> IngestSummary:
    """Run a claimed (advisory-locked) run to success or a recorded failure.

    ``conn`` must be in autocommit mode; ``records`` carries a push run's JSON objects (they
    are not stored, so a push run is never retried later). An upload, and a dataset the run
    creates, are audited in the run's transaction, as ``actor`` (default: the run's owner).
    Returns the summary on success.
    :raises IngestError: the input was refused (so is the run: retrying cannot help).
    :raises SourceError, psycopg.Error: the attempt failed (the run is retried later).
    :raises Exception: anything else is a bug, recorded as an internal error and retried.
    """
    with conn.transaction():
        row = conn.execute(
            "UPDATE ingest_runs SET status = 'running', attempts = attempts + 1, "
            "started_at = now(), finished_at = NULL, error = NULL WHERE id = %s "
            "RETURNING source_kind, source, options",
            (run_id,),
        ).fetchone()
    if row is None:
        raise ValueError(f"no run {run_id}")
    kind, source, raw_options = row
    options = IngestOptions.from_json(raw_options)
    try:
        with conn.transaction():
            if kind == "push":
                summary = ingest_records(conn, records or [], options, run_id=run_id)
            else:
                summary = _load(conn, run_id, kind, source, options, progress)
            conn.execute(
                "UPDATE ingest_runs SET status = 'succeeded', finished_at = now(), "
                "dataset_id = (SELECT id FROM datasets WHERE name = dataset_name), "
                "rows_read = %s, rows_loaded = %s, rows_rejected = %s, rows_duplicate = %s "
                "WHERE id = %s",
                (
                    summary.rows_read,
                    summary.rows_loaded,
                    summary.rows_rejected,
                    summary.rows_duplicate,
                    run_id,
                ),
            )
            _audit_run(conn, run_id, kind, summary, actor or _owner(options))
    except IngestError as exc:
        record_refusal(conn, run_id, str(exc))
        raise
    except (SourceError, psycopg.Error) as exc:
        record_failure(conn, run_id, _describe(exc), retry=True)
        raise
    except Exception as exc:
        # A bug, not bad input: recorded at once (not left running for a worker to find
        # orphaned), with backoff so it neither spins nor kills a worker.
        record_failure(conn, run_id, f"internal error: {type(exc).__name__}", retry=True)
        raise
    _count_rows(kind, summary)
    return summary


def _count_rows(kind: str, summary: IngestSummary) -> None:
    """Add a committed run's rows to the /metrics counters."""
    INGEST_ROWS.labels(kind, "loaded").inc(summary.rows_loaded)
    INGEST_ROWS.labels(kind, "rejected").inc(summary.rows_rejected)
    INGEST_ROWS.labels(kind, "duplicate").inc(summary.rows_duplicate)


def _owner(options: IngestOptions) -> Actor | None:
    return Actor(id=options.owner_id) if options.owner_id is not None else None


def _audit_run(
    conn: psycopg.Connection[Any],
    run_id: int,
    kind: str,
    summary: IngestSummary,
    actor: Actor | None,
) -> None:
    if summary.created:
        columns = [column.get("name") for column in summary.columns]
        record_audit(
            conn, "dataset.create", actor, summary.dataset, {"run": run_id, "columns": columns}
        )
    if kind == "upload":
        counts = {
            "run": run_id,
            "rows_loaded": summary.rows_loaded,
            "rows_rejected": summary.rows_rejected,
            "rows_duplicate": summary.rows_duplicate,
        }
        record_audit(conn, "upload", actor, summary.dataset, counts)


def _load(
    conn: psycopg.Connection[Any],
    run_id: int,
    kind: str,
    source: dict[str, Any],
    options: IngestOptions,
    progress: Callable[[int], None] | None,
) -> IngestSummary:
    with open_source(kind, source) as stream:
        if kind == "url" and str(source.get("format", "csv")) == "json":
            try:
                items = json.load(stream)
            except ValueError as exc:
                raise IngestError(f"the URL did not return JSON: {exc}") from exc
            if not isinstance(items, list):
                raise IngestError("the URL's JSON is not an array of objects")
            return ingest_records(conn, items, options, run_id=run_id)
        return ingest_csv(conn, stream, options, run_id=run_id, progress=progress)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:500] if text else type(exc).__name__


def record_failure(conn: psycopg.Connection[Any], run_id: int, error: str, retry: bool) -> None:
    """Mark the run failed (to retry after a backoff) or dead; quietly if the database is gone."""
    # If the database is gone, the run stays 'running' and unlocked: the next claim takes it.
    with contextlib.suppress(psycopg.Error), conn.transaction():
        conn.execute(
            "UPDATE ingest_runs SET finished_at = now(), error = %s, "
            "status = CASE WHEN %s AND attempts < max_attempts THEN 'failed' ELSE 'dead' END, "
            "next_attempt_at = now() + make_interval("
            "    secs => least(%s * power(2, attempts - 1), %s)) "
            "WHERE id = %s",
            (error, retry, BACKOFF_FIRST.total_seconds(), BACKOFF_MAX.total_seconds(), run_id),
        )


def record_refusal(conn: psycopg.Connection[Any], run_id: int, error: str) -> None:
    """Mark the run refused, with why: its input will not load, so it is not retried."""
    with contextlib.suppress(psycopg.Error), conn.transaction():
        conn.execute(
            "UPDATE ingest_runs SET status = 'refused', finished_at = now(), error = %s "
            "WHERE id = %s",
            (error, run_id),
        )


class RetryRefused(ValueError):
    """A run that cannot be queued again; the message says why."""


def retry_run(conn: psycopg.Connection[Any], run_id: int) -> None:
    """Queue a dead, failed or refused run again at once (someone fixed its source).

    :raises RetryRefused: no such run, one that has not ended badly, or a push (its rows
        were never kept, so only the program that pushed them can send them again).
    """
    row = conn.execute(
        "UPDATE ingest_runs SET status = 'queued', next_attempt_at = now(), "
        "max_attempts = greatest(max_attempts, attempts + 1) "
        "WHERE id = %s AND status IN ('dead', 'failed', 'refused') AND source_kind <> 'push' "
        "RETURNING id",
        (run_id,),
    ).fetchone()
    if row is not None:
        return
    found = conn.execute(
        "SELECT status, source_kind FROM ingest_runs WHERE id = %s", (run_id,)
    ).fetchone()
    if found is None:
        raise RetryRefused(f"There is no run {run_id}.")
    status, kind = found
    if kind == "push":
        raise RetryRefused(
            f"Run {run_id} was a push: its rows were not kept, so the program that pushed "
            "them must send them again."
        )
    raise RetryRefused(f"Run {run_id} is {status}: only failed, dead or refused runs are retried.")
