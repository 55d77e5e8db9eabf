"""Prometheus metrics of the standalone processes: ``insightwave hub`` and ``insightwave worker``.

Each test starts the real command on the test database and scrapes it over HTTP, as
Prometheus would: the hub on its own port, the worker on ``--metrics-port``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

from app.cli import main
from app.config import Config, ConfigError
from etl.connection import connect as connect_db
from etl.pipeline import IngestOptions
from etl.runs import create_run
from tests.conftest import wait_for
from tests.test_hub import receive, subscribe
from tests.test_operations import GOOD_ROWS, METRICS_TOKEN, MIXED_ROWS, push, value
from tests.test_serve import free_port

pytestmark = pytest.mark.slow

INSIGHTWAVE = Path(sys.executable).parent / "insightwave"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def start(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """Start ``insightwave ARGS...`` on the test database; SIGTERM (or kill) it at the end."""
    processes: list[subprocess.Popen[bytes]] = []

    def launch(*args: str, **env: str) -> subprocess.Popen[bytes]:
        # Only the test's settings: none of this shell's INSIGHTWAVE_* or DATABASE_URL.
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("INSIGHTWAVE_", "DATABASE_"))
        }
        with (tmp_path / f"{args[0]}-{len(processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [str(INSIGHTWAVE), *args],
                env={**environ, **cli_env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    yield launch
    for process in processes:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def get(port: int, path: str = "/metrics", **headers: str) -> tuple[int, str]:
    """GET a local URL; return the status and the body, whatever the status."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310 (a local URL)
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""  # not listening yet


def scrape(port: int, **headers: str) -> Samples:
    """Read a process's /metrics into {(sample name, sorted labels): value}."""
    status, body = get(port, **headers)
    assert status == 200, body
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def start_hub(start: Any, **env: str) -> int:
    port = free_port()
    start("hub", INSIGHTWAVE_HUB_PORT=str(port), **env)
    health = lambda: get(port, "/healthz")[0] == 200  # noqa: E731
    wait_for(health, 30, f"the hub on port {port}")
    return port


def test_a_standalone_hub_shows_its_clients_and_notify_lag_at_metrics(start, app, auth):
    port = start_hub(start)
    client = app.test_client()
    token = auth.api_token("live@example.com", "analyst")
    push(client, token, GOOD_ROWS)
    before = scrape(port)
    assert value(before, "insightwave_hub_clients") == 0
    assert value(before, "insightwave_hub_listening") == 1
    bearer = {"Authorization": f"Bearer {token}"}
    live = client.get("/api/v1/live/token", headers=bearer).get_json()["token"]
    with connect(f"ws://127.0.0.1:{port}/live?token={live}", open_timeout=5) as ws:
        assert subscribe(ws, "ops_sensors")["type"] == "subscribed"
        push(client, token, MIXED_ROWS)
        assert receive(ws)["type"] == "points"
        during = scrape(port)
    assert value(during, "insightwave_hub_clients") == 1
    assert value(during, "insightwave_hub_connections_total") == 1
    assert value(during, "insightwave_hub_batches_total") >= 1
    assert value(during, "insightwave_hub_messages_sent_total") >= 2  # subscribed, points
    assert value(during, "insightwave_hub_notify_lag_seconds_count") > 0
    assert ("insightwave_hub_messages_dropped_total", ()) in during
    assert value(during, "process_resident_memory_bytes") > 0  # the process's own figures
    wait_for(lambda: value(scrape(port), "insightwave_hub_clients") == 0, what="the client gone")


def test_a_standalone_hub_refuses_metrics_to_callers_it_cannot_trust(start):
    port = start_hub(start, INSIGHTWAVE_METRICS_TOKEN=METRICS_TOKEN)
    assert get(port)[0] == 200  # loopback, nothing forwarded
    status, body = get(port, **{"X-Forwarded-For": "203.0.113.9"})
    assert status == 403
    assert orjson.loads(body) == {
        "error": {"code": "forbidden", "message": "metrics are not public"}
    }
    assert get(port, Authorization="Bearer not-the-metrics-token")[0] == 403
    right = {"Authorization": f"Bearer {METRICS_TOKEN}", "X-Real-IP": "203.0.113.9"}
    assert get(port, **right)[0] == 200

    behind_proxy = start_hub(
        start, INSIGHTWAVE_METRICS_TOKEN=METRICS_TOKEN, INSIGHTWAVE_PROXY_COUNT="1"
    )
    assert get(behind_proxy)[0] == 403  # loopback alone is not enough behind a proxy
    assert get(behind_proxy, Authorization=f"Bearer {METRICS_TOKEN}")[0] == 200


def test_a_worker_with_a_metrics_port_counts_the_rows_of_its_runs(start, database_url, tmp_path):
    port = free_port()
    start("worker", "--poll", "0.1", INSIGHTWAVE_WORKER_METRICS_PORT=str(port))
    wait_for(lambda: get(port)[0] == 200, 30, f"the worker's metrics on port {port}")
    path = tmp_path / "meters.csv"
    path.write_text(
        "time,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,2\n"
        "2024-01-01T00:00:02Z,3,surplus\n2024-01-01T00:00:03Z,4\n"
    )
    with connect_db(database_url, "test") as conn:
        run_id = create_run(conn, IngestOptions(dataset="meters"), "file", {"path": str(path)})

        def status() -> str:
            row = conn.execute("SELECT status FROM ingest_runs WHERE id = %s", (run_id,))
            return str(row.fetchone()[0])

        wait_for(lambda: status() == "succeeded", 30, "the worker to run the file")

    def runs_counted() -> float:
        return value(scrape(port), "insightwave_worker_runs_total", status="succeeded")

    # The worker counts a run after reading back the status it recorded: the scrape waits.
    wait_for(lambda: runs_counted() >= 1, 30, "the worker to count the run")
    samples = scrape(port)
    assert value(samples, "insightwave_ingest_rows_total", source="file", outcome="loaded") == 3
    assert value(samples, "insightwave_ingest_rows_total", source="file", outcome="rejected") == 1
    assert value(samples, "insightwave_worker_runs_total", status="succeeded") == 1
    assert value(samples, "insightwave_worker_run_duration_seconds_count") == 1
    assert get(port, **{"X-Forwarded-For": "203.0.113.9"})[0] == 403
    assert get(port, "/elsewhere")[0] == 404


def test_worker_metrics_settings_are_checked_before_it_starts(cli_env, data_dir):
    env = {"INSIGHTWAVE_DATA_DIR": str(data_dir)}
    assert Config.from_env(env).worker_metrics_port is None
    assert Config.from_env({**env, "INSIGHTWAVE_WORKER_METRICS_PORT": "9101"}).worker_metrics_port
    with pytest.raises(ConfigError, match="INSIGHTWAVE_WORKER_METRICS_PORT: must be a port"):
        Config.from_env({**env, "INSIGHTWAVE_WORKER_METRICS_PORT": "metrics"})
    runner = CliRunner(env={**cli_env, "INSIGHTWAVE_METRICS_TOKEN": ""})
    wide = runner.invoke(main, ["worker", "--metrics-port", "0", "--metrics-host", "0.0.0.0"])
    assert wide.exit_code == 2
    assert "set INSIGHTWAVE_METRICS_TOKEN" in wide.output
    bad = runner.invoke(main, ["worker"], env={"INSIGHTWAVE_WORKER_METRICS_PORT": "70000"})
    assert bad.exit_code == 1
    assert "INSIGHTWAVE_WORKER_METRICS_PORT: must be a port number" in bad.output
