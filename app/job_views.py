"""Scheduled ingest jobs and their runs, as the jobs page sees them, with every right checked.

Analysts see and change their own jobs; admins see and change all of them and alone may
retry runs. Every function here checks that again: ids and form values come from a browser.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from flask import current_app
from sqlalchemy import Select, or_, select

from app import audit
from app.access import dataset_exists, find_visible_dataset, visible_datasets_query
from app.database import connect
from app.extensions import db
from app.models import RUN_STATUSES, Dataset, IngestJob, IngestRun, Role, User
from etl.jobs import (
    DEMO_COLUMNS,
    JOB_SOURCE_KINDS,
    JobError,
    check_source,
    create_job,
    delete_job,
    enqueue_job_run,
    make_trigger,
    set_paused,
    unfinished_run,
    update_job,
)
from etl.pipeline import IngestOptions
from etl.runs import RetryRefused, retry_run
from etl.sources import check_public_url

RECENT_RUNS = 100
# A job name is a label; slashes and control characters make it look like a path or
# garble the logs, so they are refused.
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


class JobViewError(ValueError):
    """A request about a job or a run was refused; the message is for the user."""


def is_admin(user: User) -> bool:
    return Role(user.role) == Role.ADMIN


def inbox_dir() -> Path:
    """Return ``<data dir>/inbox``, the only place a job made in the browser may read files."""
    directory = Path(current_app.config["INSIGHTWAVE"].data_dir) / "inbox"
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


def selected_id(rows: object) -> object:
    """Return the id of the first row a grid's ``selectedRows`` holds (unchecked), or None."""
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        return rows[0].get("id")
    return None


def _checked_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise JobViewError(f"Select a {what} first.")
    return value


# --- the jobs list and its actions ----------------------------------------------------------


def _schedule_text(kind: str, spec: str) -> str:
    return f"every {spec} s" if kind == "interval" else f"cron {spec}"


def _where(kind: str, source: dict[str, Any]) -> str:
    if kind == "url":
        return str(source.get("url", ""))
    if kind == "demo":
        return f"{source.get('rows', '?')} rows per tick"
    return str(source.get("path", ""))


def list_jobs_for(user: User) -> list[dict[str, Any]]:
    """Return the jobs ``user`` may act on (all of them for an admin), oldest first, as rows."""
    query = (
        select(IngestJob, Dataset.name, User.email)
        .join(Dataset, Dataset.id == IngestJob.dataset_id)
        .outerjoin(User, User.id == IngestJob.owner_id)
        .order_by(IngestJob.id)
        .execution_options(populate_existing=True)  # the etl layer changes jobs under the ORM
    )
    if not is_admin(user):
        query = query.where(IngestJob.owner_id == user.id)
    return [
        {
            "id": job.id,
            "name": job.name,
            "dataset": dataset,
            "source": job.source_kind,
            "where": _where(job.source_kind, job.source),
            "schedule": _schedule_text(job.trigger_kind, job.trigger_spec),
            "paused": job.paused,
            "owner": owner or "(command line)",
        }
        for job, dataset, owner in db.session.execute(query)
    ]


def _job_for(user: User, job_id: object) -> IngestJob:
    """Return the job ``job_id`` if ``user`` may act on it, else raise JobViewError."""
    checked = _checked_id(job_id, "job")
    job: IngestJob | None = db.session.get(IngestJob, checked, populate_existing=True)
    if job is None:
        raise JobViewError(f"There is no job {checked}: it may have been deleted.")
    if not is_admin(user) and job.owner_id != user.id:
        raise JobViewError("You may act only on your own jobs; this one is someone else's.")
    return job


def _pause(conn: psycopg.Connection[Any], job_id: int, name: str) -> str:
    set_paused(conn, job_id, True)
    return f"Job {name!r} is paused."


def _resume(conn: psycopg.Connection[Any], job_id: int, name: str) -> str:
    set_paused(conn, job_id, False)
    return f"Job {name!r} is active again."


def _run_now(conn: psycopg.Connection[Any], job_id: int, name: str) -> str:
    run_ids = enqueue_job_run(conn, job_id)
    if not run_ids:
        waiting = unfinished_run(conn, job_id)
        if waiting is not None:
            raise JobViewError(
                f"Job {name!r} queued nothing: its run {waiting} is still loading or "
                "waiting to retry."
            )
        raise JobViewError(
            f"Job {name!r} queued nothing: it is paused, or its folder has no new files."
        )
    return f"Job {name!r} queued run {', '.join(map(str, run_ids))}; a worker will take it."


def _delete(conn: psycopg.Connection[Any], job_id: int, name: str) -> str:
    delete_job(conn, job_id)
    return f"Job {name!r} is deleted; its past runs are kept."


JOB_ACTIONS: dict[str, Callable[[psycopg.Connection[Any], int, str], str]] = {
    "pause": _pause,
    "resume": _resume,
    "run": _run_now,
    "delete": _delete,
}


def act_on_job(user: User, action: str, job_id: object) -> str:
    """Pause, resume, run now or delete a job ``user`` may act on; return what happened."""
    perform = JOB_ACTIONS.get(action)
    if perform is None:
        raise JobViewError(f"{action!r} is not something a job can do.")
    job = _job_for(user, job_id)
    checked, name = job.id, job.name  # the row may be gone once the etl layer is done
    with connect() as conn, conn.transaction():
        message = perform(conn, checked, name)
        audit.record_on(conn, f"job.{action}", user, name, job_id=checked)
    return message


# --- creating a job from the form -----------------------------------------------------------


def _text(value: object, missing: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise JobViewError(missing)
    return value.strip()


def _number_text(value: object, missing: str) -> str:
    """Return a number field's value as text (a NumberInput sends a number, or '' when empty)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _text(value, missing)


def _inbox_path(value: object, what: str) -> str:
    raw = _text(value, f"Give the {what} to read, inside the inbox folder.")
    inbox = inbox_dir()
    path = None if "\x00" in raw else (inbox / raw).resolve()  # resolve() refuses a NUL
    if path is None or not path.is_relative_to(inbox) or (path == inbox and what == "file"):
        raise JobViewError(
            f"The {what} must be inside the inbox folder ({inbox}): give a path relative "
            "to it, without '..'."
        )
    return str(path)


def _source(kind: str, form: Mapping[str, object]) -> dict[str, Any]:
    if kind == "file":
        return {"path": _inbox_path(form.get("path"), "file")}
    if kind == "folder":
        return {"path": _inbox_path(form.get("folder"), "folder")}
    if kind == "url":
        url = _text(form.get("url"), "Give the http:// or https:// URL to fetch.")
        try:
            check_public_url(url)
        except ValueError as exc:
            raise JobError(str(exc)) from exc
        return {"url": url}
    rows = form.get("rows")
    if isinstance(rows, float) and rows.is_integer():
        rows = int(rows)
    if rows is None or rows == "":
        raise JobViewError("Give the number of demo rows to add on each tick.")
    return {"rows": rows}


def _schedule(form: Mapping[str, object]) -> tuple[str, str]:
    kind = form.get("schedule_kind")
    if kind == "interval":
        return kind, _number_text(form.get("interval"), "Give the interval in seconds.")
    if kind == "cron":
        return kind, _text(form.get("cron"), "Give a cron expression, e.g. '*/15 * * * *'.")
    raise JobViewError("Choose a schedule: an interval in seconds or a cron expression.")


def _check_target(user: User, dataset: str, source_kind: str, time_column: str | None) -> None:
    """Refuse a dataset ``user`` may not load into (a demo job may name a new one)."""
    found = find_visible_dataset(user, dataset)
    if found is not None:
        columns = [str(column.get("name")) for column in found.columns]
    elif source_kind == "demo" and not dataset_exists(dataset):
        columns = [column.name for column in DEMO_COLUMNS]  # create_job makes the dataset
    elif source_kind == "demo":
        raise JobViewError(f"The name {dataset!r} is taken: choose another.")
    else:
        raise JobViewError(f"There is no dataset called {dataset!r} that you may use.")
    if time_column is not None and time_column not in columns:
        raise JobViewError(f"Dataset {dataset!r} has no column {time_column!r}.")


def _name(form: Mapping[str, object]) -> str:
    name = _text(form.get("name"), "Name the job.")
    if _UNSAFE_NAME.search(name):
        raise JobViewError("A job name is plain text, without slashes or control characters.")
    return name


def _user_message(exc: JobError) -> JobViewError:
    message = str(exc)
    return JobViewError(message[:1].upper() + message[1:])


def create_job_for(user: User, form: Mapping[str, object]) -> int:
    """Check the form's values, record the job for ``user`` and return its id.

    ``form`` holds name, dataset, source_kind, path, folder, url, rows, schedule_kind,
    interval, cron and time_column, as the browser sent them.
    """
    name = _name(form)
    dataset = _text(form.get("dataset"), "Choose the dataset to load into.")
    source_kind = form.get("source_kind")
    if not isinstance(source_kind, str) or source_kind not in JOB_SOURCE_KINDS:
        raise JobViewError("Choose a source: file, folder, URL or demo.")
    time_column = form.get("time_column") or None
    if time_column is not None and not isinstance(time_column, str):
        raise JobViewError("The time column could not be read.")
    options = IngestOptions(dataset=dataset, time_column=time_column, create=False)
    try:
        # create_job checks these too, but after the dataset: checked here, a bad URL or
        # schedule is named before a missing dataset, in the order the form asks them.
        source = check_source(source_kind, _source(source_kind, form))
        trigger_kind, trigger_spec = _schedule(form)
        make_trigger(trigger_kind, trigger_spec)
        _check_target(user, dataset, source_kind, time_column)
        with connect() as conn:
            job_id = create_job(
                conn,
                name,
                dataset,
                source_kind,
                source,
                trigger_kind,
                trigger_spec,
                options,
                user.id,
                actor=audit.actor_of(user),
            )
    except JobError as exc:
        raise _user_message(exc) from None
    return job_id


# --- editing a job ---------------------------------------------------------------------------


def _inbox_relative(path: str) -> str:
    """Show a stored path as the form asks for it: relative to the inbox when inside it."""
    inbox = inbox_dir()
    stored = Path(path)
    return str(stored.relative_to(inbox)) if stored.is_relative_to(inbox) else path


def job_form_for(user: User, job_id: object) -> dict[str, Any]:
    """Return a job ``user`` may change as the edit form's values (keys as create_job_for's)."""
    job = _job_for(user, job_id)
    source = job.source
    path = _inbox_relative(str(source.get("path", ""))) if "path" in source else None
    interval = job.trigger_kind == "interval"
    return {
        "id": job.id,
        "name": job.name,
        "source_kind": job.source_kind,
        "path": path if job.source_kind == "file" else None,
        "folder": path if job.source_kind == "folder" else None,
        "url": source.get("url"),
        "rows": source.get("rows"),
        "schedule_kind": job.trigger_kind,
        "interval": int(job.trigger_spec) if interval else None,
        "cron": None if interval else job.trigger_spec,
    }


def edit_job_for(user: User, job_id: object, form: Mapping[str, object]) -> str:
    """Change the name, source settings and schedule of a job ``user`` may change.

    ``form`` holds name, path, folder, url, rows, schedule_kind, interval and cron; the
    job keeps its dataset and kind of source. The leader reschedules it at its next sync.
    """
    job = _job_for(user, job_id)
    checked, kind = job.id, job.source_kind
    before = {
        "name": job.name,
        "source": job.source,
        "schedule": [job.trigger_kind, job.trigger_spec],
    }
    name = _name(form)
    try:
        # The form has no field for a URL's data format: the job keeps the one it has.
        fresh = _source(kind, form) | (
            {"format": job.source["format"]} if "format" in job.source else {}
        )
        source = check_source(kind, fresh)
        trigger_kind, trigger_spec = _schedule(form)
        make_trigger(trigger_kind, trigger_spec)
        with connect() as conn, conn.transaction():
            if not update_job(conn, checked, name, source, trigger_kind, trigger_spec):
                raise JobViewError(f"There is no job {checked}: it may have been deleted.")
            after = {"name": name, "source": source, "schedule": [trigger_kind, trigger_spec]}
            changed = {key: after[key] for key in after if after[key] != before[key]}
            audit.record_on(conn, "job.edit", user, name, job_id=checked, **changed)
    except JobError as exc:
        raise _user_message(exc) from None
    return f"Job {name!r} is saved; it runs {_schedule_text(trigger_kind, trigger_spec)}."


# --- runs ------------------------------------------------------------------------------------


def _runs_query(user: User) -> Select[IngestRun, str | None]:
    query = (
        select(IngestRun, IngestJob.name)
        .outerjoin(IngestJob, IngestJob.id == IngestRun.job_id)
        .order_by(IngestRun.id.desc())
        .limit(RECENT_RUNS)
        .execution_options(populate_existing=True)
    )
    if is_admin(user):
        return query
    visible = visible_datasets_query(user).order_by(None)
    return query.where(
        or_(
            IngestRun.job_id.in_(select(IngestJob.id).where(IngestJob.owner_id == user.id)),
            # A queued run has no dataset id yet, only its dataset's name.
            IngestRun.dataset_id.in_(visible.with_only_columns(Dataset.id)),
            IngestRun.dataset_name.in_(visible.with_only_columns(Dataset.name)),
            IngestRun.created_by == user.id,
        )
    )


def _stamp(run: IngestRun, field: str) -> str | None:
    value = getattr(run, field)
    return value.isoformat(timespec="seconds") if value is not None else None


def list_runs_for(user: User, status: object = None) -> list[dict[str, Any]]:
    """Return the newest runs of jobs and datasets ``user`` may see (all for an admin) as rows.

    ``status`` narrows them to one of RUN_STATUSES; anything else means every status.
    """
    query = _runs_query(user)
    if isinstance(status, str) and status in RUN_STATUSES:
        query = query.where(IngestRun.status == status)
    return [
        {
            "id": run.id,
            "dataset": run.dataset_name,
            "job": job or "",
            "status": run.status,
            "attempts": f"{run.attempts}/{run.max_attempts}",
            "read": run.rows_read,
            "loaded": run.rows_loaded,
            "rejected": run.rows_rejected,
            "duplicate": run.rows_duplicate,
            "error": run.error,
            "started": _stamp(run, "started_at"),
            "finished": _stamp(run, "finished_at"),
        }
        for run, job in db.session.execute(query)
    ]


def retry_run_for(user: User, run_id: object) -> str:
    """Queue an ended run again now: an admin any run, an analyst their own job's."""
    checked = _checked_id(run_id, "run")
    if not is_admin(user):
        run: IngestRun | None = db.session.get(IngestRun, checked)
        if run is None or run.job_id is None:
            raise JobViewError("Only admins can retry runs that no job of yours started.")
        _job_for(user, run.job_id)
    with connect() as conn, conn.transaction():
        try:
            retry_run(conn, checked)
        except RetryRefused as exc:
            raise JobViewError(str(exc)) from exc
        audit.record_on(conn, "run.retry", user, f"run {checked}")
    return f"Run {checked} is queued again."
