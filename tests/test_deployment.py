"""The multi-process deployment: gunicorn, two hubs and two workers on one PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection, connect

from app import migrate
from app.config import Config, ConfigError
from app.database import READ_ENGINE, libpq_url
from etl.worker import APPLICATION_NAME
from tests.conftest import AuthActions, wait_for
from tests.test_hub import receive, subscribe

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@dataclass
class RunningCluster:
    database_url: str
    web: str
    hub_ports: tuple[int, int]
    worker_metrics_ports: tuple[int, int]
    env: dict[str, str]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def cluster(
    fresh_database: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCluster]:
    """Start ``python -m deploy.cluster`` on a database of its own; stop it with SIGTERM."""
    database_url = fresh_database()
    web_port, hub_a, hub_b, metrics_a, metrics_b = _free_ports(5)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "INSIGHTWAVE_DATA_DIR": str(tmp_path_factory.mktemp("cluster")),
        "INSIGHTWAVE_RATE_LIMITING": "false",
        "INSIGHTWAVE_LOG_FORMAT": "text",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable, "-m", "deploy.cluster",
        "--web-port", str(web_port), "--web-workers", "2",
        "--hub-ports", f"{hub_a},{hub_b}", "--workers", "2",
        "--worker-metrics-ports", f"{metrics_a},{metrics_b}",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        for line in process.stdout:
            if line.startswith("cluster ready"):
                break
            assert time.monotonic() < deadline, "the cluster did not start"
        else:
            pytest.fail(f"the cluster exited with {process.wait()} before it was ready")
        yield RunningCluster(
            database_url,
            f"http://127.0.0.1:{web_port}",
            (hub_a, hub_b),
            (metrics_a, metrics_b),
            env,
        )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=40)
        rest = process.stdout.read() if process.stdout else ""
        if process.stdout:
            process.stdout.close()
    assert code == 0 and "cluster stopped" in rest, rest


@pytest.fixture(scope="module")
def analyst_token(cluster: RunningCluster, make_app: Any) -> str:
    app = make_app(DATABASE_URL=cluster.database_url)
    return AuthActions(app, app.test_client()).api_token("ops@example.com", "analyst")


def _http(
    cluster: RunningCluster, method: str, path: str, token: str, body: Any = None
) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 (a local URL)
        cluster.web + path,
        method=method,
        data=None if body is None else orjson.dumps(body),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        result: dict[str, Any] = orjson.loads(answer.read())
    return result


def _open(cluster: RunningCluster, port: int, token: str) -> ClientConnection:
    live = _http(cluster, "GET", "/api/v1/live/token", token)["token"]
    url = f"ws://127.0.0.1:{port}/live?token={live}"
    # A program, not a page: no Origin header, as the token was asked for without one.
    return connect(url, open_timeout=5, max_queue=None)


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"time": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}Z", "n": i}
        for i in range(start, start + count)
    ]


@pytest.mark.slow
def test_every_pushed_update_reaches_each_client_of_either_hub_once(cluster, analyst_token):
    first = _http(cluster, "POST", "/api/v1/datasets/meters/events", analyst_token, _rows(0, 1))
    assert first["rows_loaded"] == 1
    with ExitStack() as stack:
        clients = [
            stack.enter_context(_open(cluster, port, analyst_token))
            for port in cluster.hub_ports
            for _ in range(2)
        ]
        for ws in clients:
            assert subscribe(ws, "meters")["type"] == "subscribed"
        batches, size = 6, 5
        for batch in range(batches):  # several commits through different gunicorn workers
            _http(
                cluster,
                "POST",
                "/api/v1/datasets/meters/events",
                analyst_token,
                _rows(1 + batch * size, size),
            )
        expected = list(range(2, 2 + batches * size))
        for ws in clients:
            ids: list[int] = []
            while len(ids) < len(expected):
                message = receive(ws, timeout=10)
                assert message["type"] == "points", message
                ids.extend(message["ids"])
            assert ids == expected  # every row, in order, none twice
        time.sleep(0.5)  # a second delivery would have arrived by now
        for ws in clients:
            with pytest.raises(TimeoutError):
                while True:
                    assert receive(ws, timeout=0.3)["type"] != "points"


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (a local URL)
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.slow
def test_web_hubs_and_workers_each_serve_prometheus_metrics(cluster, analyst_token):
    pushed = {"source": "push", "outcome": "loaded"}
    rows = "insightwave_ingest_rows_total"
    before = _scrape(f"{cluster.web}/metrics").get((rows, tuple(sorted(pushed.items()))), 0.0)
    for batch in range(4):  # gunicorn's workers take them in turn, or not: the sum is the same
        path = "/api/v1/datasets/scraped/events"
        _http(cluster, "POST", path, analyst_token, _rows(batch * 3, 3))
    web = _scrape(f"{cluster.web}/metrics")
    assert web[(rows, tuple(sorted(pushed.items())))] == before + 12
    for port in cluster.hub_ports:
        hub = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert hub[("insightwave_hub_listening", ())] == 1
        assert ("insightwave_hub_notify_lag_seconds_count", ()) in hub
    for port in cluster.worker_metrics_ports:
        worker = _scrape(f"http://127.0.0.1:{port}/metrics")
        assert ("insightwave_worker_run_duration_seconds_count", ()) in worker
        assert worker[("process_resident_memory_bytes", ())] > 0


@pytest.mark.slow
def test_a_scheduled_job_runs_once_per_tick_across_two_workers(cluster):
    command = [
        str(BIN / "insightwave"), "jobs", "create", "pulse", "--dataset", "pulse",
        "--source-kind", "demo", "--source", json.dumps({"rows": 2}), "--every", "1",
    ]  # fmt: skip
    subprocess.run(command, env=cluster.env, check=True, capture_output=True, timeout=60)
    with psycopg.connect(libpq_url(cluster.database_url), autocommit=True) as conn:
        workers = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_NAME,),
        ).fetchone()
        assert workers is not None and workers[0] >= 2  # both workers are polling

        def runs() -> list[tuple[Any, str, int]]:
            return conn.execute(
                "SELECT r.created_at, r.status, r.attempts FROM ingest_runs r JOIN ingest_jobs j "
                "ON j.id = r.job_id WHERE j.name = 'pulse' ORDER BY r.created_at"
            ).fetchall()

        wait_for(lambda: len(runs()) >= 6, timeout=30, what="six firings of the job")
        wait_for(
            lambda: all(status == "succeeded" for _, status, _ in runs()[:6]),
            timeout=30,
            what="the workers to finish the runs",
        )
        fired = runs()
        loaded = conn.execute(
            "SELECT count(*) FROM ingest_runs r JOIN ingest_jobs j ON j.id = r.job_id "
            "WHERE j.name = 'pulse' AND r.status = 'succeeded' AND r.attempts = 1"
        ).fetchone()
    times = [created for created, _, _ in fired]
    gaps = [
        (later - earlier).total_seconds() for earlier, later in zip(times, times[1:], strict=False)
    ]
    # One run per one-second tick: two schedulers would make about twice as many. (A late
    # tick, coalesced, may fire just before the next one, so gaps alone prove nothing.)
    span = (times[-1] - times[0]).total_seconds()
    assert len(times) <= span + 1.5, (len(times), span, gaps)
    assert min(gaps) > 0.01, gaps  # never two runs for the same instant
    assert loaded is not None and loaded[0] >= 6  # each run taken by one worker, once


@pytest.fixture
def replica_url(fresh_database: Any, make_app: Any) -> Iterator[str]:
    """A second database standing in for a replica, holding a dataset the primary lacks."""
    url: str = fresh_database()
    migrate.upgrade(url)
    app = make_app(DATABASE_URL=url)
    token = AuthActions(app, app.test_client()).api_token("writer@example.com", "analyst")
    _push(app, token, "only_on_replica", [{"time": "2024-05-01T10:00:00Z", "n": 7}])
    return url


def _push(app: Any, token: str, dataset: str, rows: list[dict[str, Any]]) -> Any:
    response = app.test_client().post(
        f"/api/v1/datasets/{dataset}/events",
        data=orjson.dumps(rows),
        headers={"Authorization": f"Bearer {token}"},
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_query_api_reads_from_read_database_url_and_writes_to_database_url(
    database_url, replica_url, make_app
):
    app = make_app(READ_DATABASE_URL=replica_url)
    try:
        token = AuthActions(app, app.test_client()).api_token("admin@example.com", "admin")
        _push(app, token, "only_on_primary", [{"time": "2024-05-01T10:00:00Z", "n": 1}])
        api = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}

        listed = api.get("/api/v1/datasets", headers=headers).get_json()
        assert [item["name"] for item in listed["datasets"]] == ["only_on_replica"]
        assert api.get("/api/v1/datasets/only_on_primary", headers=headers).status_code == 404
        described = api.get("/api/v1/datasets/only_on_replica", headers=headers)
        assert described.status_code == 200
        events = api.get("/api/v1/datasets/only_on_replica/events", headers=headers).get_json()
        assert [event["values"]["n"] for event in events["events"]] == [7]
        series = api.get(
            "/api/v1/datasets/only_on_replica/series?from=2024-05-01T00:00:00Z"
            "&to=2024-05-02T00:00:00Z&bucket=day",
            headers=headers,
        )
        assert series.status_code == 200 and series.get_json()["points"][0]["value"] == 1
    finally:
        app.extensions[READ_ENGINE].dispose()
    with psycopg.connect(libpq_url(database_url)) as conn:
        names = [name for (name,) in conn.execute("SELECT name FROM datasets")]
    assert names == ["only_on_primary"]  # the push went to DATABASE_URL


def test_read_database_url_must_name_a_postgresql_database(tmp_path):
    with pytest.raises(ConfigError, match="READ_DATABASE_URL"):
        Config.from_env({"INSIGHTWAVE_DATA_DIR": str(tmp_path), "READ_DATABASE_URL": "mysql://x/y"})
    with pytest.raises(ConfigError, match="READ_DATABASE_URL: names no database"):
        Config.from_env(
            {"INSIGHTWAVE_DATA_DIR": str(tmp_path), "READ_DATABASE_URL": "postgresql://h"}
        )
