"""``insightwave ingest``: load a file with a progress bar, or print a JSON summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from app.database import connect
from etl.datasets import DatasetError, check_dataset_name
from etl.pipeline import IngestError, IngestOptions, IngestSummary
from etl.runs import create_run, execute_run, try_lock_run, unlock_run
from etl.sources import SourceError


def run_ingest(
    path: Path, dataset: str, time_column: str | None, key: str | None, as_json: bool
) -> None:
    """Record a run for ``path`` and execute it here, reporting progress and the counts."""
    try:
        check_dataset_name(dataset)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    options = IngestOptions(
        dataset=dataset,
        time_column=time_column,
        key_columns=tuple(part.strip() for part in (key or "").split(",") if part.strip()),
    )
    with connect() as conn:
        with conn.transaction():  # locked before it is visible, so no worker claims it first
            source = {"path": str(path.resolve())}
            run_id = create_run(conn, options, "file", source, max_attempts=1)
            try_lock_run(conn, run_id)
        try:
            summary = _execute(conn, run_id, path, show_bar=not as_json and sys.stderr.isatty())
        finally:
            unlock_run(conn, run_id)
    if as_json:
        click.echo(orjson.dumps(summary.to_json()).decode())
    else:
        click.echo(
            f"{summary.dataset}: read {summary.rows_read}, loaded {summary.rows_loaded}, "
            f"rejected {summary.rows_rejected}, duplicate {summary.rows_duplicate} "
            f"(run {run_id}, {summary.format})"
        )
        if summary.rows_rejected:
            click.echo(f"Rejected rows and their reasons: insightwave runs rejected {run_id}")


def _execute(conn: object, run_id: int, path: Path, show_bar: bool) -> IngestSummary:
    size = path.stat().st_size
    with click.progressbar(
        length=size, label=f"Loading {path.name}", file=sys.stderr, hidden=not show_bar
    ) as bar:
        done = 0

        def progress(position: int) -> None:
            nonlocal done
            bar.update(max(position - done, 0))
            done = max(done, position)

        try:
            return execute_run(conn, run_id, progress)  # type: ignore[arg-type]
        except (IngestError, SourceError) as exc:
            raise click.ClickException(str(exc)) from exc
