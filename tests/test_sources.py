"""Pulling a CSV or JSON over HTTP from a real local server, through a run."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from etl.connection import connect
from etl.pipeline import IngestOptions
from etl.runs import claim_run, create_run, execute_run, unlock_run
from etl.sources import SourceError

BODIES = {
    "/readings.csv": ("text/csv", b"time,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,2\n"),
    "/readings.json": (
        "application/json",
        b'[{"time": "2024-01-01T00:00:00Z", "value": 1},'
        b' {"time": "2024-01-01T00:02:00Z", "value": 3}]',
    ),
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        if self.path not in BODIES:
            self.send_error(404)
            return
        content_type, body = BODIES[self.path]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def pull(database_url, source):
    with connect(database_url) as conn:
        run_id = create_run(conn, IngestOptions(dataset="pulled"), "url", source)
        assert claim_run(conn) == run_id
        try:
            return execute_run(conn, run_id)
        finally:
            unlock_run(conn, run_id)


def test_a_csv_url_is_pulled_and_loaded(database_url, base_url):
    summary = pull(database_url, {"url": f"{base_url}/readings.csv"})
    assert (summary.rows_read, summary.rows_loaded) == (2, 2)


def test_a_json_url_is_pulled_and_loaded(database_url, base_url):
    summary = pull(database_url, {"url": f"{base_url}/readings.json", "format": "json"})
    assert (summary.rows_read, summary.rows_loaded) == (2, 2)


def test_a_missing_url_fails_the_run_for_a_retry(database_url, base_url):
    with pytest.raises(SourceError):
        pull(database_url, {"url": f"{base_url}/missing.csv"})
    with connect(database_url) as conn:
        status, attempts, error = conn.execute(
            "SELECT status, attempts, error FROM ingest_runs"
        ).fetchone()
    assert (status, attempts) == ("failed", 1)
    assert "404" in error
