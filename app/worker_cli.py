"""``insightwave worker``, ``insightwave jobs ...`` and ``insightwave runs ...``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
import psycopg

from app.audit import record_on
from app.config import Config
from app.database import connect
from app.models import RUN_STATUSES

if TYPE_CHECKING:
    from app.metrics_server import MetricsServer


@contextmanager
def _database() -> Iterator[psycopg.Connection[Any]]:
    """Build the app (migrating its database) and open a connection to that database."""
    from app.cli import app_context  # imported late: app.cli imports this module

    with app_context(), connect() as conn:
        yield conn


def register_worker_commands(main: click.Group) -> None:
    """Add the worker, jobs and runs commands to the ``insightwave`` group."""
    main.add_command(worker)
    main.add_command(jobs)
    main.add_command(runs)


@click.command()
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--poll", default=1.0, show_default=True, type=click.FloatRange(0.05, 60))
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (0: any free port). "
    "Default: INSIGHTWAVE_WORKER_METRICS_PORT, else none.",
)
@click.option(
    "--metrics-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for --metrics-port; beyond loopback, INSIGHTWAVE_METRICS_TOKEN is required.",
)
def worker(concurrency: int, poll: float, metrics_port: int | None, metrics_host: str) -> None:
    """Run scheduled jobs (when elected leader) and ingest runs until SIGTERM or Ctrl-C."""
    from app.cli import app_context
    from app.extensions import db
    from etl.worker import run_worker

    with app_context() as server:  # its logging: app.logs, as every process's
        db.session.remove()  # the worker uses its own connections
        config: Config = server.config["INSIGHTWAVE"]
        port = metrics_port if metrics_port is not None else config.worker_metrics_port
        metrics = _serve_metrics(config, metrics_host, port) if port is not None else None
        try:
            run_worker(server.config["SQLALCHEMY_DATABASE_URI"], concurrency, poll)
        finally:
            if metrics is not None:
                metrics.close()


def _serve_metrics(config: Config, host: str, port: int) -> MetricsServer:
    """Start the worker's /metrics, refusing a setup where every scrape would get 403."""
    from app.metrics_server import MetricsServer, is_loopback_host

    if config.metrics_token is None and not is_loopback_host(host):
        raise click.UsageError(
            f"--metrics-host {host} is reachable from other machines: set "
            "INSIGHTWAVE_METRICS_TOKEN (scrapers send it as a bearer token)"
        )
    if config.metrics_token is None and config.proxy_count:
        raise click.UsageError(
            "with INSIGHTWAVE_PROXY_COUNT set, only INSIGHTWAVE_METRICS_TOKEN opens the "
            "worker's metrics: set it (scrapers send it as a bearer token)"
        )
    try:
        metrics = MetricsServer(host, port, config.metrics_token, config.proxy_count)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    click.echo(f"Worker metrics at http://{host}:{metrics.port}/metrics")
    return metrics


@click.group()
def jobs() -> None:
    """Scheduled ingest jobs."""


@jobs.command("create")
@click.argument("name")
@click.option("--dataset", required=True, help="Dataset to load into.")
@click.option("--source-kind", required=True, type=click.Choice(["file", "folder", "url", "demo"]))
@click.option(
    "--source",
    "source_json",
    required=True,
    help='JSON, e.g. {"path": "/data/in"}, {"url": "https://..."} or {"rows": 50}.',
)
@click.option("--every", type=click.IntRange(1), help="Fire every this many seconds.")
@click.option("--cron", help='Fire on a cron schedule, e.g. "*/15 * * * *".')
@click.option("--time-column", help="Column holding each row's time.")
@click.option("--key", help="Comma-separated columns that identify a row.")
def jobs_create(
    name: str,
    dataset: str,
    source_kind: str,
    source_json: str,
    every: int | None,
    cron: str | None,
    time_column: str | None,
    key: str | None,
) -> None:
    """Schedule an ingest job."""
    from etl.jobs import JobError, create_job
    from etl.pipeline import IngestOptions

    if (every is None) == (cron is None):
        raise click.UsageError("give exactly one of --every SECONDS or --cron EXPR")
    try:
        source = json.loads(source_json)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--source") from None
    if not isinstance(source, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--source")
    trigger_kind, trigger_spec = ("interval", str(every)) if cron is None else ("cron", cron)
    options = IngestOptions(
        dataset=dataset,
        time_column=time_column,
        key_columns=tuple(part.strip() for part in (key or "").split(",") if part.strip()),
    )
    with _database() as conn:
        try:
            job_id = create_job(
                conn,
                name,
                dataset,
                source_kind,
                source,
                trigger_kind,
                trigger_spec,
                options,
                None,
            )
        except JobError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Created job {job_id} ({name}): {_trigger_text(trigger_kind, trigger_spec)}.")


def _trigger_text(kind: str, spec: str) -> str:
    return f"every {spec} s" if kind == "interval" else f"cron {spec}"


@jobs.command("list")
def jobs_list() -> None:
    """List the scheduled jobs."""
    from etl.jobs import list_jobs

    with _database() as conn:
        found = list_jobs(conn)
    click.echo(f"{'ID':>5} {'NAME':24} {'DATASET':20} {'SOURCE':8} {'STATE':7} TRIGGER")
    for job in found:
        state = "paused" if job.paused else "active"
        trigger = _trigger_text(job.trigger_kind, job.trigger_spec)
        click.echo(
            f"{job.id:>5} {job.name:24} {job.dataset:20} {job.source_kind:8} {state:7} {trigger}"
        )


@jobs.command("pause")
@click.argument("job_id", type=int)
def jobs_pause(job_id: int) -> None:
    """Pause a job (it stops firing until resumed)."""
    _set_paused(job_id, True)


@jobs.command("resume")
@click.argument("job_id", type=int)
def jobs_resume(job_id: int) -> None:
    """Resume a paused job."""
    _set_paused(job_id, False)


def _set_paused(job_id: int, paused: bool) -> None:
    from etl.jobs import set_paused

    with _database() as conn, conn.transaction():
        if not set_paused(conn, job_id, paused):
            raise click.ClickException(f"there is no job {job_id}")
        record_on(
            conn,
            "job.pause" if paused else "job.resume",
            None,
            _job_name(conn, job_id),
            job_id=job_id,
        )
    click.echo(f"Job {job_id} is {'paused' if paused else 'active'}.")


@jobs.command("delete")
@click.argument("job_id", type=int)
def jobs_delete(job_id: int) -> None:
    """Delete a job; its past runs are kept."""
    from etl.jobs import delete_job

    with _database() as conn, conn.transaction():
        name = _job_name(conn, job_id)
        if not delete_job(conn, job_id):
            raise click.ClickException(f"there is no job {job_id}")
        record_on(conn, "job.delete", None, name, job_id=job_id)
    click.echo(f"Deleted job {job_id}.")


def _job_name(conn: psycopg.Connection[Any], job_id: int) -> str | None:
    from etl.jobs import get_job

    job = get_job(conn, job_id)
    return job.name if job is not None else None


@click.group()
def runs() -> None:
    """Ingest runs: their state, retries and rejected rows."""


@runs.command("list")
@click.option("--status", type=click.Choice(RUN_STATUSES))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def runs_list(status: str | None, limit: int) -> None:
    """List the newest runs."""
    from etl.jobs import list_runs

    with _database() as conn:
        found = list_runs(conn, status, limit)
    click.echo(
        f"{'ID':>6} {'DATASET':20} {'STATUS':9} {'TRIES':>5} {'READ':>9} {'LOADED':>9} "
        f"{'REJECTED':>8} {'DUP':>8} CREATED              ERROR"
    )
    for run in found:
        created = run.created_at.isoformat(timespec="seconds")
        click.echo(
            f"{run.id:>6} {run.dataset_name:20} {run.status:9} "
            f"{run.attempts:>2}/{run.max_attempts:<2} {run.rows_read:>9} {run.rows_loaded:>9} "
            f"{run.rows_rejected:>8} {run.rows_duplicate:>8} {created} {run.error or ''}"
        )


@runs.command("retry")
@click.argument("run_id", type=int)
def runs_retry(run_id: int) -> None:
    """Queue a failed, dead or refused run again now (after fixing its source)."""
    from etl.runs import RetryRefused, retry_run

    with _database() as conn, conn.transaction():
        try:
            retry_run(conn, run_id)
        except RetryRefused as exc:
            raise click.ClickException(str(exc)) from exc
        record_on(conn, "run.retry", None, f"run {run_id}")
    click.echo(f"Run {run_id} is queued again.")


@runs.command("rejected")
@click.argument("run_id", type=int)
def runs_rejected(run_id: int) -> None:
    """Print a run's rejected rows as CSV (line, reason, raw), safe to open in a spreadsheet."""
    from etl.export import rejected_rows_csv
    from etl.jobs import run_exists

    with _database() as conn:
        if not run_exists(conn, run_id):
            raise click.ClickException(f"there is no run {run_id}")
        for chunk in rejected_rows_csv(conn, run_id):
            click.echo(chunk, nl=False)
        with conn.transaction():
            record_on(conn, "export.rejected_rows", None, f"run {run_id}")
