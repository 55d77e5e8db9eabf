"""``insightwave ingest``: load a file with a progress bar, or print a JSON summary."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson
import psycopg

from app.database import connect
from etl.datasets import DatasetError, check_dataset_name
from etl.pipeline import IngestError, IngestOptions, IngestSummary
from etl.runs import run_now
from etl.sources import SourceError


def run_ingest(
    path: Path,
    dataset: str,
    time_column: str | None,
    key: str | None,
    as_json: bool,
    decimal_mark: str | None = None,
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
        decimal_mark=decimal_mark,
    )
    with connect() as conn:
        summary = _execute(conn, options, path, show_bar=not as_json and sys.stderr.isatty())
    if as_json:
        click.echo(orjson.dumps(summary.to_json()).decode())
    else:
        click.echo(
            f"{summary.dataset}: read {summary.rows_read}, loaded {summary.rows_loaded}, "
            f"rejected {summary.rows_rejected}, duplicate {summary.rows_duplicate} "
            f"(run {summary.run_id}, {summary.format})"
        )
        if summary.rows_rejected:
            click.echo(
                f"Rejected rows and their reasons: insightwave runs rejected {summary.run_id}"
            )


def _execute(
    conn: psycopg.Connection[Any], options: IngestOptions, path: Path, show_bar: bool
) -> IngestSummary:
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
            source = {"path": str(path.resolve())}
            return run_now(conn, options, "file", source, progress=progress)
        except (IngestError, SourceError) as exc:
            raise click.ClickException(str(exc)) from exc
        except psycopg.OperationalError as exc:
            raise click.ClickException(
                f"lost the connection to the database ({exc}); run the same command again "
                "once it is back: rows already loaded are not loaded twice"
            ) from exc
