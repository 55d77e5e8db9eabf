"""CSV uploads from the browser: stored under the data directory, previewed, then loaded.

An upload is known to the browser only by a random UUID; every function that takes one
checks it again, so a forged id can never name a file outside ``<data dir>/uploads``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path, PurePosixPath
from typing import Any

from flask import current_app
from sqlalchemy import or_, select

from app import audit
from app.access import dataset_exists, find_visible_dataset, visible_datasets_query
from app.database import connect
from app.extensions import db
from app.models import Dataset, IngestRun, Role, User
from etl.datasets import DatasetError, check_dataset_name
from etl.export import rejected_rows_csv
from etl.parse import MAX_NAME_LENGTH, CsvError, detect_format, normalise_name, read_csv
from etl.parse import SAMPLE_SIZE as PARSE_SAMPLE_BYTES
from etl.pipeline import SAMPLE_SIZE, IngestOptions, IngestSummary, describe_format
from etl.runs import run_now
from etl.sources import SourceError
from etl.types import (
    Column,
    ColumnType,
    combine_date_and_time,
    infer_columns,
    number_style,
    suggest_time_column,
)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
UPLOAD_KEPT_FOR = timedelta(days=7)  # runs from an upload may be retried until then
ALLOWED_SUFFIXES = (".csv", ".tsv", ".txt")
PREVIEW_ROWS = 20
RECENT_RUNS = 50
_BINARY_SNIFF_BYTES = 8192
# A data URL is "data:<type>;base64,<payload>"; base64 makes 3 bytes into 4 characters.
_MAX_DATA_URL_CHARS = 4 * (MAX_UPLOAD_BYTES // 3 + 1) + 1024


class UploadError(ValueError):
    """An upload or a request about one was refused; the message is for the user."""


@dataclass(frozen=True)
class UploadPreview:
    """How a stored upload will be read: its format, first rows and inferred columns."""

    upload_id: str
    format: str
    columns: list[Column]
    rows: list[dict[str, str]]
    time_column: str | None = None
    time_of_day_column: str | None = None
    decimal_mark: str = "point"  # as detected, or as chosen


@dataclass(frozen=True)
class UploadTarget:
    """Where the user wants an upload loaded, and how (the last three for a new dataset)."""

    dataset: str
    existing: bool = False
    time_column: str | None = None
    key_columns: tuple[str, ...] = ()
    column_types: dict[str, str] = field(default_factory=dict)
    decimal_mark: str | None = None  # None: detected from the file


@dataclass(frozen=True)
class LoadResult:
    run_id: int
    summary: IngestSummary


def uploads_dir() -> Path:
    """Return ``<data dir>/uploads``, creating it if needed."""
    directory = Path(current_app.config["INSIGHTWAVE"].data_dir) / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def check_file_name(filename: object) -> str:
    """Return ``filename`` if it is a plain .csv, .tsv or .txt name, else raise UploadError."""
    if not isinstance(filename, str) or not filename.strip():
        raise UploadError("The upload has no file name.")
    if any(char in filename for char in "/\\\x00"):
        # Browsers send the bare name only; a path here was written by hand.
        raise UploadError("The file name must be a plain name, without folders.")
    if not filename.lower().endswith(ALLOWED_SUFFIXES):
        raise UploadError("Only .csv, .tsv and .txt files can be uploaded.")
    return filename


def check_file_size(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise _too_large(size)


def _too_large(size: int) -> UploadError:
    mib = math.ceil(size / 2**20 * 10) / 10  # 50 MiB and a byte is "50.1", not "50.0"
    return UploadError(
        f"The file is {mib} MiB; uploads may be at most {MAX_UPLOAD_BYTES // 2**20} MiB. "
        "An admin can load bigger files with `insightwave ingest`."
    )


def check_chosen_file(event: object) -> str | None:
    """Say why the browser will not send a chosen or dropped file (too big, wrong type)."""
    if not isinstance(event, dict):
        return None
    for source in ("target", "dataTransfer"):
        name, size = event.get(f"{source}.files.0.name"), event.get(f"{source}.files.0.size")
        if not isinstance(name, str):
            continue
        try:
            check_file_name(name)
            check_file_size(size if isinstance(size, int) else 0)
        except UploadError as exc:
            return str(exc)
    return None


def decode_upload(filename: object, contents: object) -> bytes:
    """Return the bytes of a ``dcc.Upload`` data URL after checking its name and size."""
    check_file_name(filename)
    if not isinstance(contents, str) or not contents.startswith("data:"):
        raise UploadError("The upload holds no file.")
    if len(contents) > _MAX_DATA_URL_CHARS:  # too big to be worth decoding
        raise _too_large(len(contents) * 3 // 4)
    meta, _, payload = contents.partition(",")
    if not meta.endswith(";base64"):
        raise UploadError("The upload is not base64-encoded.")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise UploadError("The upload is damaged: its base64 does not decode.") from exc
    check_file_size(len(data))
    return data


def check_csv(data: bytes) -> None:
    """Raise UploadError unless ``data`` is text with a readable header row."""
    if not data.strip():
        raise UploadError("The file is empty.")
    try:
        fmt = detect_format(data[:PARSE_SAMPLE_BYTES])
        # UTF-16 is half NULs; in any other text one NUL marks a binary file.
        if not fmt.encoding.startswith("utf-16") and b"\x00" in data[:_BINARY_SNIFF_BYTES]:
            raise UploadError("This looks like a binary file, not CSV text.")
        read_csv(io.BytesIO(data), fmt)
    except CsvError as exc:
        raise UploadError(str(exc)) from exc


def save_upload(data: bytes) -> str:
    """Check and store an upload's bytes; return its id (a random UUID)."""
    check_file_size(len(data))
    check_csv(data)
    directory = uploads_dir()
    purge_old_uploads(directory)
    upload_id = str(uuid.uuid4())
    partial = directory / f".{upload_id}.part"
    try:
        partial.write_bytes(data)
        os.replace(partial, directory / f"{upload_id}.csv")  # readers never see half a file
    finally:
        partial.unlink(missing_ok=True)
    return upload_id


def purge_old_uploads(directory: Path, max_age: timedelta = UPLOAD_KEPT_FOR) -> int:
    """Delete uploads older than ``max_age`` (a retry or a second load needs them until then)."""
    cutoff = time.time() - max_age.total_seconds()
    removed = 0
    for path in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):  # another process may purge it first
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def upload_path(upload_id: object) -> Path:
    """Return the stored file of an upload id sent by a browser, checked as never trusted."""
    if not isinstance(upload_id, str):
        raise UploadError("Upload a file first.")
    try:
        parsed = uuid.UUID(upload_id)
    except ValueError:
        parsed = None
    if parsed is None or str(parsed) != upload_id or parsed.version != 4:
        raise UploadError("That upload is unknown: upload the file again.")
    path = uploads_dir() / f"{upload_id}.csv"
    if not path.is_file():
        raise UploadError("That upload is gone: upload the file again.")
    return path


def preview_upload(upload_id: object, decimal_mark: object = None) -> UploadPreview:
    """Read a stored upload's format, first rows and inferred column types.

    ``decimal_mark`` ("point" or "comma") overrides the one detected in the file.
    """
    path = upload_path(upload_id)
    with path.open("rb") as stream:
        try:
            reader = read_csv(stream)
            sample = [record.fields for record in islice(reader, SAMPLE_SIZE)]
        except CsvError as exc:
            raise UploadError(str(exc)) from exc
    names = reader.header.names
    try:
        numbers = number_style(decimal_mark, sample, reader.format.delimiter)
    except ValueError:
        raise UploadError("The decimal mark is either point or comma.") from None
    columns = infer_columns(reader.header, sample, numbers)
    time_column = suggest_time_column(columns)
    pair = combine_date_and_time(columns, sample)
    return UploadPreview(
        upload_id=path.stem,
        format=describe_format(reader.format, numbers),
        columns=columns,
        rows=[dict(zip(names, fields, strict=False)) for fields in sample[:PREVIEW_ROWS]],
        time_column=time_column,
        time_of_day_column=pair[1] if pair is not None and pair[0] == time_column else None,
        decimal_mark=numbers.mark,
    )


def suggest_dataset_name(filename: str) -> str:
    """Turn a file name into a valid dataset name, e.g. '2016 Sales.csv' -> 'data_2016_sales'."""
    name = normalise_name(PurePosixPath(filename).stem).lstrip("_")
    if not name[:1].isalpha():
        name = f"data_{name}" if name else "upload"
    return name[:MAX_NAME_LENGTH].rstrip("_")


def type_overrides(upload: UploadPreview, chosen: object) -> dict[str, str]:
    """Return the column types the user changed, from the type grid's rows.

    :raises UploadError: when a row names no known column or no known type.
    """
    if chosen is None:
        return {}
    inferred = {column.name: column.type.value for column in upload.columns}
    if not isinstance(chosen, list):
        raise UploadError("The column types could not be read: upload the file again.")
    overrides = {}
    for row in chosen:
        name = row.get("name") if isinstance(row, dict) else None
        kind = row.get("type") if isinstance(row, dict) else None
        if not isinstance(name, str) or name not in inferred:
            raise UploadError("The column types name a column the file does not have.")
        if not isinstance(kind, str) or kind not in set(ColumnType):
            raise UploadError(f"{kind!r} is not a column type.")
        if kind != inferred[name]:
            overrides[name] = str(kind)
    return overrides


def target_from_form(
    upload: UploadPreview,
    mode: object,
    name: object,
    existing: object,
    time_column: object,
    keys: object,
    types: object,
) -> UploadTarget:
    """Build the load target from the page's form values, as the browser sent them.

    The file is read with the decimal mark of ``upload``, its preview.
    """
    if mode == "existing":
        if not isinstance(existing, str) or not existing:
            raise UploadError("Pick the dataset to add the rows to.")
        return UploadTarget(dataset=existing, existing=True, decimal_mark=upload.decimal_mark)
    if not isinstance(name, str) or not name.strip():
        raise UploadError("Name the new dataset.")
    if time_column is not None and not isinstance(time_column, str):
        raise UploadError("The time column could not be read.")
    keys = [] if keys is None else keys
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise UploadError("The dedupe key could not be read.")
    return UploadTarget(
        dataset=name.strip(),
        time_column=time_column or None,
        key_columns=tuple(keys),
        column_types=type_overrides(upload, types),
        decimal_mark=upload.decimal_mark,
    )


def load_upload(upload_id: object, target: UploadTarget, user: User) -> LoadResult:
    """Record an upload run for ``user`` and execute it now.

    :raises UploadError: the upload, the dataset name or the user's right to it was refused.
    :raises IngestError: the file does not fit the dataset; nothing was loaded.
    """
    path = upload_path(upload_id)
    try:
        check_dataset_name(target.dataset)
    except DatasetError as exc:
        raise UploadError(str(exc)) from exc
    visible = find_visible_dataset(user, target.dataset) is not None
    if target.existing and not visible:
        raise UploadError(f"There is no dataset called {target.dataset!r} that you may use.")
    if not target.existing and dataset_exists(target.dataset):
        raise UploadError(
            f"A dataset called {target.dataset!r} already exists: choose 'Existing dataset' "
            "to add rows to it, or another name."
            if visible
            else f"The name {target.dataset!r} is taken: choose another."
        )
    options = IngestOptions(
        dataset=target.dataset,
        time_column=None if target.existing else target.time_column,
        key_columns=() if target.existing else target.key_columns,
        column_types={} if target.existing else target.column_types,
        create=not target.existing,
        owner_id=user.id,
        decimal_mark=target.decimal_mark,
    )
    source = {"path": str(path)}
    # One attempt: the user is watching, and a silent retry later would surprise them.
    with connect() as conn:
        try:
            summary = run_now(
                conn, options, "upload", source, created_by=user.id, actor=audit.actor_of(user)
            )
        except SourceError as exc:
            raise UploadError(f"The upload could not be read: {exc}") from exc
    assert summary.run_id is not None
    return LoadResult(summary.run_id, summary)


def _when(run: IngestRun) -> str | None:
    return run.finished_at.isoformat(timespec="seconds") if run.finished_at else None


FILE_LOADS = ("upload", "file")  # runs of a file loaded by hand: on the page or the CLI


def recent_runs(user: User, limit: int = RECENT_RUNS) -> list[dict[str, Any]]:
    """Return the newest uploads and command-line loads of datasets ``user`` may see (and
    their own), as rows. Scheduled runs are the jobs page's: a stream's run a second would
    push every file out of sight."""
    query = (
        select(IngestRun)
        .where(IngestRun.job_id.is_(None), IngestRun.source_kind.in_(FILE_LOADS))
        .order_by(IngestRun.id.desc())
        .limit(limit)
    )
    if Role(user.role) != Role.ADMIN:
        visible = visible_datasets_query(user).with_only_columns(Dataset.id).order_by(None)
        query = query.where(or_(IngestRun.dataset_id.in_(visible), IngestRun.created_by == user.id))
    return [
        {
            "id": run.id,
            "dataset": run.dataset_name,
            "source": run.source_kind,
            "status": run.status,
            "read": run.rows_read,
            "loaded": run.rows_loaded,
            "rejected": run.rows_rejected,
            "duplicate": run.rows_duplicate,
            "error": run.error,
            "finished": _when(run),
        }
        for run in db.session.scalars(query)
    ]


def _own_run(user: User, run_id: object) -> int:
    """Return ``run_id`` if it names a run ``user`` created (any run, for an admin)."""
    if isinstance(run_id, bool) or not isinstance(run_id, int) or not 0 < run_id < 2**63:
        raise UploadError("That run is unknown.")
    run = db.session.get(IngestRun, run_id)
    if run is None or not (Role(user.role) == Role.ADMIN or run.created_by == user.id):
        raise UploadError("You may download only the rejected rows of your own runs.")
    return run_id


def may_download_rejections(user: User, run_id: object) -> bool:
    """Tell whether ``user`` created the run (or is an admin); any id the browser sent."""
    try:
        _own_run(user, run_id)
    except UploadError:
        return False
    return True


def rejected_rows_text(user: User, run_id: object) -> str:
    """Return a run's rejected rows as formula-safe CSV text.

    :raises UploadError: the run is unknown or ``user`` did not create it (and is no admin).
    """
    checked = _own_run(user, run_id)
    with connect() as conn:
        text = "".join(rejected_rows_csv(conn, checked))
    audit.record_export("rejected_rows", user, f"run {checked}")
    return text
