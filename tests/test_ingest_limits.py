"""The most columns a dataset may have: refused early on a CSV header or a pushed batch."""

from __future__ import annotations

import time

import orjson
import psycopg
import pytest

from app.cli import main
from app.database import libpq_url
from etl.parse import MAX_COLUMNS


@pytest.fixture
def headers(auth):
    return {"Authorization": f"Bearer {auth.api_token('wide@example.com', 'analyst')}"}


def push(client, headers, rows, dataset="wide"):
    return client.post(
        f"/api/v1/datasets/{dataset}/events",
        data=orjson.dumps(rows),
        headers=headers,
        content_type="application/json",
    )


def count(database_url, table):
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608


def test_a_push_with_one_field_too_many_is_a_422_naming_the_limit(client, headers, database_url):
    row = {f"c{i}": i for i in range(MAX_COLUMNS + 1)}
    response = push(client, headers, [row])
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "too_many_columns"
    assert f"at most {MAX_COLUMNS} columns" in error["message"]
    assert f"{MAX_COLUMNS + 1}" in error["message"]
    for table in ("datasets", "events", "ingest_runs"):
        assert count(database_url, table) == 0, table


def test_a_push_of_as_many_numeric_fields_as_allowed_loads_with_its_rollups(
    client, headers, database_url
):
    rows = [{f"c{i}": i + row for i in range(MAX_COLUMNS)} for row in range(3)]
    response = push(client, headers, rows)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["rows_loaded"] == 3
    assert {column["type"] for column in body["columns"]} == {"integer"}
    with psycopg.connect(libpq_url(database_url)) as conn:
        fields = conn.execute(
            "SELECT count(DISTINCT field), sum(total) FILTER (WHERE field = 'c7' "
            "AND grain = 'minute') FROM rollups"
        ).fetchone()
    assert fields == (MAX_COLUMNS + 1, 7 + 8 + 9)  # every field, and the event count ''


def test_a_csv_of_as_many_numeric_columns_as_allowed_loads(runner, tmp_path):
    path = tmp_path / "wide.csv"
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS))
    rows = "\n".join(",".join(str(i + row) for i in range(MAX_COLUMNS)) for row in range(5))
    path.write_text(f"{header}\n{rows}\n")
    result = runner.invoke(main, ["ingest", str(path), "--dataset", "wide"])
    assert result.exit_code == 0, result.output
    assert "loaded 5" in result.output


@pytest.mark.parametrize("repeated", [False, True], ids=["distinct", "repeated"])
def test_a_csv_of_20000_columns_is_refused_in_a_moment(runner, tmp_path, database_url, repeated):
    path = tmp_path / "huge.csv"
    names = ["x"] * 20_000 if repeated else [f"c{i}" for i in range(20_000)]
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    started = time.monotonic()
    result = runner.invoke(main, ["ingest", str(path), "--dataset", "huge"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    message = result.output.strip()
    assert len(message.splitlines()) == 1, message
    assert f"20000 columns; a dataset may have at most {MAX_COLUMNS}" in message
    assert elapsed < 2, elapsed
    assert count(database_url, "datasets") == 0
