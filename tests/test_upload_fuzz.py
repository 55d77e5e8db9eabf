"""Hostile and random files through the upload page's callbacks: never a 500, never a partial
dataset, and what loads is exactly what the run reports."""

from __future__ import annotations

import uuid

import psycopg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from app.database import libpq_url
from app.models import Role
from tests.test_upload_page import call, data_url

HOSTILE = st.sampled_from(
    [
        "=cmd|' /C calc'!A0",
        "+SUM(1,2)",
        "@import",
        "<script>alert(1)</script>",
        "'; DROP TABLE users; --",
        'a "quoted, field"',
        "line\nbreak",
        "\x00",
        "é" * 300,
    ]
)
CELLS = st.one_of(
    st.text(max_size=12),
    st.integers().map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    HOSTILE,
)
TABLES = st.lists(st.lists(CELLS, min_size=1, max_size=5), min_size=1, max_size=12)


@st.composite
def files(draw: st.DrawFn) -> bytes:
    """CSV-ish text in a random delimiter and encoding, random bytes, or one huge field."""
    kind = draw(st.sampled_from(["csv", "bytes", "huge"]))
    if kind == "bytes":
        return draw(st.binary(max_size=3000))
    if kind == "huge":
        return b"name,value\n" + b"x" * draw(st.integers(100_000, 400_000)) + b",1\n"
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    quote = draw(st.booleans())
    lines = []
    for row in draw(TABLES):
        cells = ['"' + c.replace('"', '""') + '"' if quote else c for c in row]
        lines.append(delimiter.join(cells))
    text = "\r\n".join(lines) if draw(st.booleans()) else "\n".join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


NAMES = st.one_of(
    st.just("fuzz_{unique}"),
    st.just("fuzz_{unique}"),
    HOSTILE,
    st.sampled_from(["Bad Name", "x" * 80, "", "events"]),
)


def dataset_rows(database_url: str, name: str) -> tuple[int, int, int] | None:
    """(events stored, rows_loaded by its runs, runs succeeded) for ``name``, or None."""
    if "\x00" in name:
        return None  # PostgreSQL text cannot hold NUL, so no dataset has such a name
    with psycopg.connect(libpq_url(database_url)) as conn:
        found = conn.execute("SELECT id FROM datasets WHERE name = %s", (name,)).fetchone()
        if found is None:
            return None
        stored = conn.execute("SELECT count(*) FROM events WHERE dataset_id = %s", found)
        runs = conn.execute(
            "SELECT coalesce(sum(rows_loaded), 0), count(*) FILTER (WHERE status = 'succeeded') "
            "FROM ingest_runs WHERE dataset_id = %s",
            found,
        ).fetchone()
        return int(stored.fetchone()[0]), int(runs[0]), int(runs[1])


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=files(), filename=st.sampled_from(["a.csv", "=evil.csv", "x.txt"]), name=NAMES)
def test_hostile_uploads_never_fail_with_500_nor_leave_a_partial_dataset(
    client, dash_app, auth, database_url, content, filename, name
):
    if client.get("/api/v1/me").status_code == 401:
        auth.login_as(Role.ANALYST)
    name = name.format(unique=uuid.uuid4().hex[:8]) if name.startswith("fuzz_") else name
    preview = call(
        client,
        dash_app,
        "datasets-upload-store.data",
        {"datasets-upload.contents": data_url(content), "datasets-upload.filename": filename},
    )
    assert preview.status_code < 500, preview.get_data(as_text=True)
    upload_id = preview.get_json()["response"].get("datasets-upload-store", {}).get("data")
    if not upload_id:
        event("refused at the preview")
        return  # refused at the preview, with a message
    form = {
        "datasets-load.n_clicks": 1,
        "datasets-upload-store.data": upload_id,
        "datasets-target.value": "new",
        "datasets-name.value": name,
    }
    loaded = call(client, dash_app, "datasets-result.children", form)
    assert loaded.status_code < 500, loaded.get_data(as_text=True)
    after = dataset_rows(database_url, name)
    event("loaded" if after is not None and after[0] else "refused at the load")
    if after is not None:
        stored, reported, succeeded = after
        assert succeeded >= 1  # a dataset exists only once a load of it has succeeded
        assert stored == reported  # every reported row is there, and nothing else
